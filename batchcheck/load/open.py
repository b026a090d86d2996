"""One way to open a model for every command: the format table picks the backend, which loads the file into its
own representation with a neutral graph view, then prepares it: the input found or named and its batch axis
relaxed, the outputs, the other placeholders resolved into feeds."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import UsageError
from ..formats import SUPPORTED, detect_format, format_named
from ..model import LoadedModel, PreparedModel
from ..safety.supervise import stage

if TYPE_CHECKING:
    from ..backends.base import Backend
    from ..graph.index import GraphIndex
    from ..options import CheckConfig


def backend_of(model_format: str) -> Backend:
    """The backend that loads `model_format` (a `--format` name; its runtime is imported only now)."""
    from ..backends import backend_named

    return backend_named(format_named(model_format).backend)


def backend_for(model: LoadedModel | PreparedModel) -> Backend:
    """The backend that loaded `model`."""
    from ..backends import backend_named

    return backend_named(model.backend)


def load_model(path: Path | str, config: CheckConfig) -> LoadedModel:
    """Load `path` with the backend of its format (`config.format`, else from the path); `UsageError` with one
    line when it cannot be used or holds a refused op."""
    path = Path(path)
    if not path.exists():
        raise UsageError(f"model `{path}`: no such file or folder; pass {SUPPORTED}")
    if not (path.is_file() or path.is_dir()):
        raise UsageError(f"model `{path}`: not a regular file or folder (a FIFO, socket or device), never opened; "
                         f"pass {SUPPORTED}")
    model_format = detect_format(path) if config.format == "auto" else config.format
    stage("loading")
    return backend_of(model_format).load(path, model_format, config)


def whole_graph(loaded: LoadedModel) -> GraphIndex:
    """The neutral view of everything `loaded` holds (before preparation prunes it to the outputs)."""
    return backend_for(loaded).index(loaded)


def prepare(loaded: LoadedModel, config: CheckConfig) -> PreparedModel:
    """Prepare `loaded` with `config`'s input, outputs, input shape and feeds."""
    return backend_for(loaded).prepare(loaded, input_name=config.input, outputs=list(config.outputs),
                                                 input_shape=config.input_shape, feeds=config.feeds)


def open_model(path: Path | str, config: CheckConfig) -> tuple[LoadedModel, PreparedModel]:
    """Load and prepare `path` as every command does: (what the file holds, what will run)."""
    loaded = load_model(path, config)
    prepared = prepare(loaded, config)
    prepared.flagged = loaded.scan.flagged
    return loaded, prepared
