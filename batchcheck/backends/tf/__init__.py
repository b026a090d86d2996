"""The TensorFlow backend: frozen GraphDefs, SavedModels, Keras files and meta graphs, run in TensorFlow
sessions with the comparisons inside the graph. The only place that imports TensorFlow and Keras."""
from __future__ import annotations

from pathlib import Path

from ..base import Backend


class TFBackend(Backend):
    name = "tf"

    def load(self, path: Path, model_format: str, config):
        from .load import load_graph

        return load_graph(path, model_format, signature=config.signature, checkpoint=config.checkpoint,
                          outputs=list(config.outputs), allowed_ops=config.allow_ops)

    def prepare(self, loaded, **options):
        from .prepare import prepare

        return prepare(loaded, **options)

    def index(self, loaded):
        from .graph import graph_index

        return graph_index(loaded.graph)

    def session(self, prepared):
        from .session import TFSession

        return TFSession(prepared)

    def fix(self, loaded, out, config, *, calibrate, fold_bn):
        from .repair.pipeline import fix

        return fix(loaded, out, config, calibrate=calibrate, fold_bn=fold_bn)

    def lint_findings(self, loaded):
        from .lint import update_ops_findings

        return update_ops_findings(loaded)

    def versions(self) -> dict[str, str]:
        from .env import import_tf

        return {"tensorflow": import_tf().__version__}


BACKEND = TFBackend()
