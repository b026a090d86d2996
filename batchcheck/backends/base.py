"""The backend interface: what a runtime provides to batchcheck.

A backend loads a model file into its own representation with a neutral graph view (`graph.index.GraphIndex`,
ops mapped to `graph.kinds`), prepares it (input, outputs, feeds), opens sessions that run and compare
(`run.session.Session`), and names its versions. Each backend lives in one folder, `batchcheck/backends/NAME/`,
whose `BACKEND` is an instance of `Backend`; its runtime is imported when the backend is first used.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..graph.findings import LintFinding
    from ..graph.index import GraphIndex
    from ..model import LoadedModel, PreparedModel
    from ..options import CheckConfig
    from ..repair.result import Repaired
    from ..run.session import Session


class Backend(ABC):
    """One runtime behind the seam."""

    name: str  # the key of the format table's `backend` column

    @abstractmethod
    def load(self, path: Path, model_format: str, config: CheckConfig) -> LoadedModel:
        """Read `path` (of `model_format`) after the op scan; `UsageError` with one line when it cannot."""

    @abstractmethod
    def prepare(self, loaded: LoadedModel, *, input_name: str | None = None, outputs: list[str] | None = None,
                input_shape: tuple[int, ...] | None = None, feeds: dict[str, str] | None = None) -> PreparedModel:
        """Resolve the input (batch axis relaxed), outputs and feeds of `loaded`; `UsageError` when a name or size
        is missing."""

    @abstractmethod
    def index(self, loaded: LoadedModel) -> GraphIndex:
        """The neutral view of the whole loaded graph (before preparation prunes it)."""

    @abstractmethod
    def session(self, prepared: PreparedModel) -> Session:
        """A session running `prepared`."""

    @abstractmethod
    def fix(self, loaded: LoadedModel, out: Path, config: CheckConfig, *, calibrate: Path | None,
            fold_bn: bool) -> Repaired:
        """Rewrite `loaded` for inference into `out` (BatchNorm statistics from the model, else recalibrated over
        the images in `calibrate`), fold its BatchNorm if asked; with the runs that prove it."""

    @abstractmethod
    def lint_findings(self, loaded: LoadedModel) -> list[LintFinding]:
        """Findings that only this runtime's files can have (e.g. a meta graph's update ops never run)."""

    @abstractmethod
    def versions(self) -> dict[str, str]:
        """The versions of the runtime's packages that matter for reproducing a result."""

    def explanation(self, index: GraphIndex, node: str, cause: str) -> tuple[str, str]:
        """(what `node` does, how to fix it) for `cause`, in the terms of this runtime's exporters (default: the
        neutral `judge.causes.EXPLANATIONS`)."""
        from ..judge.causes import EXPLANATIONS

        return EXPLANATIONS[cause]

    def reworded(self, index: GraphIndex, finding: LintFinding) -> LintFinding:
        """A lint `finding` in this runtime's terms (default: as the neutral rules word it)."""
        return finding
