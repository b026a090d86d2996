"""`batchcheck fix` for ONNX models: rewrite (`rewrite.py`), recalibrate (`calibrate.py`), fold (`fold.py`), and the
proof's runs (`prove.py`), put together by `pipeline.fix`."""
