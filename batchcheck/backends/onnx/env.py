"""Import onnx and onnxruntime, an optional extra: without them, one line saying what to install."""
from __future__ import annotations

import gc
import sys
from pathlib import Path
from types import ModuleType

from ...errors import UsageError

INSTALL = "pip install 'batchcheck[onnx]' (or pip install onnx onnxruntime)"


def import_onnx(path: Path | str) -> ModuleType:
    """The `onnx` module; `UsageError` naming `path` and what to install when onnx or onnxruntime is missing."""
    import_ort(path)
    return _imported("onnx", path)


def import_ort(path: Path | str) -> ModuleType:
    """The `onnxruntime` module with its default logger quiet (errors reach batchcheck as exceptions)."""
    first = "onnxruntime" not in sys.modules
    ort = _imported("onnxruntime", path)
    ort.set_default_logger_severity(4)
    if first:  # the long-lived objects so far (modules) leave the collector's generations: a shorter exit
        gc.freeze()
    return ort


def _imported(name: str, path: Path | str) -> ModuleType:
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError:
        raise UsageError(f"model `{path}`: an ONNX model needs the optional packages onnx and onnxruntime, and "
                         f"`{name}` is not installed; install them with {INSTALL}") from None
