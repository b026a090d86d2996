"""The ONNX backend: ONNX files run in onnxruntime sessions with the comparisons inside the model. The only place
that imports onnx and onnxruntime (an optional extra: without them, one line says what to install)."""
from __future__ import annotations

from pathlib import Path

from ..base import Backend


class OnnxBackend(Backend):
    name = "onnx"

    def load(self, path: Path, model_format: str, config):
        from .load import load_onnx

        return load_onnx(path, config.allow_ops)

    def prepare(self, loaded, **options):
        from .prepare import prepare

        return prepare(loaded, **options)

    def index(self, loaded):
        from .graph import graph_index

        return graph_index(loaded.graph)

    def session(self, prepared):
        from .session import OnnxSession

        return OnnxSession(prepared)

    def fix(self, loaded, out, config, *, calibrate, fold_bn):
        from .repair.pipeline import fix

        return fix(loaded, out, config, calibrate=calibrate, fold_bn=fold_bn)

    def lint_findings(self, loaded):
        return []

    def explanation(self, index, node, cause):
        from .words import explanation

        return explanation(index, node, cause)

    def reworded(self, index, finding):
        from .words import reworded

        return reworded(index, finding)

    def versions(self) -> dict[str, str]:
        import onnxruntime

        from .lite import version

        return {"onnx": version(), "onnxruntime": onnxruntime.__version__}


BACKEND = OnnxBackend()
