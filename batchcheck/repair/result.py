"""The fix's result value: what was rewritten, where each BatchNorm's statistics came from, the proof
and the before/after figures. `bool(result)` is True when the fixed graph was written and proven."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..options import CheckConfig
from ..serial import Report


@dataclass(frozen=True)
class Rewrite:
    """One change to the graph, with the nodes it touched."""
    kind: str  # flag_constant | branch_pruned | dropout_identity | bn_inference | bn_folded | identity_dropped
    nodes: list[str]
    detail: str


@dataclass(frozen=True)
class StatisticsSource:
    """Where one training-mode BatchNorm's inference statistics came from."""
    batchnorm: str
    scope: str
    source: str  # graph | checkpoint | keras | calibration
    detail: str


@dataclass(frozen=True)
class OutputAgreement:
    """One output of the fixed graph against the reference on the image pool."""
    output: str
    task: str  # classification (top-1) | segmentation (per-pixel argmax) | values
    max_abs_diff: float
    max_rel_diff: float
    agreement: float | None  # top-1 or pixel agreement, 0..1; None for plain values
    allowed_abs_diff: float  # the check's tolerance for this output (rtol at least plausible rounding)


@dataclass(frozen=True)
class GraphFigures:
    """Size and speed of one graph: nodes, BatchNorm nodes, median forward latency per batch size (ms)."""
    nodes: int
    batchnorm_nodes: int
    latency_ms: dict[int, float]


@dataclass
class Proof:
    """The three proof steps: re-check, comparison with the reference, before/after figures."""
    verdict: str  # the re-check's verdict on the fixed graph
    reference: str  # what the outputs were compared with
    images: int
    outputs: list[OutputAgreement]
    before: GraphFigures
    after: GraphFigures
    failed: list[str] = field(default_factory=list)  # which proof steps failed, in words

    def __bool__(self) -> bool:
        return not self.failed


@dataclass(kw_only=True)
class FixResult(Report):
    """A repaired graph and its evidence; `bool(result)` is True when every proof step passed."""
    model: str
    written: str
    input: str
    outputs: list[str]
    rewrites: list[Rewrite]
    statistics: list[StatisticsSource]
    calibration_images: int
    proof: Proof

    def __bool__(self) -> bool:
        return bool(self.proof)

    @property
    def exit_code(self) -> int:
        return 0 if self else 1

    def rewrite_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for rewrite in self.rewrites:
            counts[rewrite.kind] = counts.get(rewrite.kind, 0) + 1
        return counts

    def report_keys(self) -> dict:
        return {"verdict": "fixed" if self else "not_proven"}  # the page's and summary's headline


class RepairRuns(ABC):
    """The fixed model, the original and the reference, each runnable on a batch of images."""

    @abstractmethod
    def fixed(self, batch: np.ndarray) -> list[np.ndarray]:
        """The fixed model's outputs."""

    @abstractmethod
    def original(self, batch: np.ndarray) -> list[np.ndarray]:
        """The original model's plain forward pass (timed against the fixed one)."""

    @abstractmethod
    def reference(self, batch: np.ndarray) -> list[np.ndarray]:
        """The original's outputs with its inference semantics (flags, dropout off, BatchNorm statistics)."""

    @abstractmethod
    def sizes(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """(nodes, BatchNorm nodes) of the original and of the fixed model."""

    @abstractmethod
    def close(self) -> None:
        """Release the runtime's sessions."""


@dataclass
class Repaired:
    """What a backend's rewrite wrote, before the proof."""
    written: Path
    input: str
    outputs: list[str]
    rewrites: list[Rewrite]
    statistics: list[StatisticsSource]
    calibration_images: int
    reference: str          # what the outputs are compared with, in words
    recheck: CheckConfig    # the options that check the written model
    runs: RepairRuns
