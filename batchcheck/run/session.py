"""The runtime seam: what a backend's session does for the runner, whatever executes the model.

A session holds one prepared model, imported once. It lists the tensors worth comparing, measures their shapes
on a batch (a node that fails raises `NodeFailed`), and compares every watched tensor of a batch with the
probe's rows inside the runtime where it can (only one number per tensor leaves it). The runner
(`runner.py`) decides everything else: batch axes, batch limits, targets, the cached probe.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from ..graph.index import GraphIndex
from ..model import PreparedModel
from ..result import Mode


@dataclass(frozen=True)
class Target:
    """One tensor the runner compares."""
    tensor: str
    node: str
    op: str
    batch_axis: int | None  # None: compared as a whole (no batch axis)
    boundary: bool          # watched on screened trials too
    blocks: int = 0         # > 0: the batch is folded with this many spatial blocks (SpaceToBatchND)


@dataclass(frozen=True)
class Candidates:
    """The tensors worth comparing, and those left out with why (a while loop's frame, complex values)."""
    tensors: list[str]
    excluded: dict[str, str]


class Session(ABC):
    """One prepared model in a runtime. Batches are numpy arrays of images (the input's dtype and per-image
    shape with the batch axis first); `positions` are rows of a batch."""

    prepared: PreparedModel
    index: GraphIndex

    @abstractmethod
    def candidates(self, dead: set[str]) -> Candidates:
        """Tensors that depend on the input's values or on randomness, are not in `dead` nodes, can be fetched
        and hold numbers, in topological order."""

    @abstractmethod
    def shapes(self, tensors: list[str], batch: np.ndarray) -> dict[str, tuple[int, ...]]:
        """Each tensor's shape on `batch`, running the model as written (no rewrites that could hide a node that
        fails); `NodeFailed` when a node fails, `OutOfMemory` when the runtime runs out of memory."""

    @abstractmethod
    def fetch(self, tensors: list[str], batch: np.ndarray) -> list[np.ndarray]:
        """The values of `tensors` on `batch`, the model run as written; `NodeFailed` when a node fails."""

    @abstractmethod
    def is_boundary(self, tensor: str) -> bool:
        """Whether `tensor` survives the runtime's fusions: watched on every (screened) trial."""

    @abstractmethod
    def build(self, targets: list[Target], ranks: dict[str, int], probe_shapes: dict[str, tuple[int, ...]]) -> None:
        """Build the comparisons of `targets` (the probe's rows of each have `probe_shapes`): afterwards
        `watched[mode]` lists the targets each mode compares (indices into `targets`, ascending)."""

    watched: dict[Mode, list[int]]

    @abstractmethod
    def compile(self, one: np.ndarray) -> None:
        """Make both modes ready to run (`one` is a batch of one image to run them on once)."""

    @abstractmethod
    def solo(self, mode: Mode, one: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """The probe alone as `mode` runs it: each watched tensor's max |value| over its finite values (in
        `watched[mode]` order) and its rows, opaque values that `diffs` takes back."""

    @abstractmethod
    def diffs(self, mode: Mode, batch: np.ndarray, positions: list[int], rows: list[np.ndarray]) -> np.ndarray:
        """max |row - probe's row| per watched tensor (in `watched[mode]` order) over the rows of `batch` at
        `positions`: equal infinities and NaN pairs count as equal, a NaN against a number as infinitely far."""

    @abstractmethod
    def forward(self, batch: np.ndarray, outputs: list[str]) -> list[np.ndarray]:
        """A plain forward pass of `batch`: the tensors `outputs`."""

    @abstractmethod
    def close(self) -> None:
        """Release the runtime's resources."""
