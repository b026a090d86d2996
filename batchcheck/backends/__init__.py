"""Runtime backends: one folder each (`tf/`), imported only when a model of theirs is opened."""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .base import Backend


def backend_named(name: str) -> Backend:
    """The backend in `batchcheck/backends/NAME/` (importing its runtime)."""
    return importlib.import_module(f"{__name__}.{name}").BACKEND
