"""Result values: truthy when the model is batch-invariant, with the numbers, serialisable to JSON.

Every part is a dataclass; `to_dict()` is the one serialisation (`dataclasses.asdict`), and its keys are
the `--json` contract that users' CI reads.
"""
from __future__ import annotations

import json
import math
import platform
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .graph.findings import Finding
    from .judge.coverage import Coverage
    from .judge.tolerance import Tolerance
    from .load.prepare import PlaceholderInfo
    from .run.runner import BatchLimit


class _Name(str, Enum):
    """A name that is also its JSON string."""

    def __str__(self) -> str:
        return self.value


class Verdict(_Name):
    INVARIANT = "invariant"
    BATCH_DEPENDENT = "batch_dependent"
    NONDETERMINISTIC = "nondeterministic"


class Status(_Name):
    OK = "ok"
    DIVERGENT = "divergent"
    NONDETERMINISTIC = "nondeterministic"
    UNJUDGED = "unjudged"          # after randomness that reaches the data: cannot be judged for the batch
    NOT_COMPARED = "not_compared"


class Mode(_Name):
    DETAIL = "detail"  # every comparable tensor
    SCREEN = "screen"  # fusion boundaries only


class Cause(_Name):
    BATCHNORM_TRAINING = "batchnorm_training"
    RANDOM_OP = "random_op"
    BATCH_REDUCTION = "batch_reduction"
    BATCH_SIZE = "batch_size"
    POSITION = "position"
    ROW_SELECTION = "row_selection"
    UNKNOWN = "unknown"


HEADLINES = {
    Verdict.INVARIANT: "is invariant: every compared tensor of the probe matched alone and in every batch",
    Verdict.BATCH_DEPENDENT: "is batch-dependent: the probe's activations change with its batch-mates",
    Verdict.NONDETERMINISTIC: "is nondeterministic: the same feed run twice gives different activations",
}


def describe_batch(size: int, probe: str, position: int, mates: list[str]) -> str:
    """'batch of 2, probe `noise-0` at 1, mates: flat black'."""
    return f"batch of {size}, probe `{probe}` at {position}, mates: {', '.join(mates)}"


@dataclass(frozen=True)
class Divergence:
    """A root: a node whose output diverges while its inputs agree."""
    node: str
    op: str
    output: int
    layer: str
    cause: Cause
    max_abs_diff: float
    max_rel_diff: float
    hint: str


@dataclass(frozen=True)
class TensorReport:
    """One tensor's figures over the trials that compared it."""
    tensor: str
    op: str
    layer: str
    batch_axis: int | None
    status: Status
    max_abs_diff: float | None
    max_rel_diff: float | None
    trials: int
    note: str = ""


@dataclass(frozen=True)
class TrialReport:
    """One batch tried: its plan and whether the probe's row diverged."""
    index: int
    batch_size: int
    position: int
    seed: list[int]
    probe: str
    mates: list[str]
    mode: Mode
    diverged: bool
    localised: bool

    def describe(self) -> str:
        return describe_batch(self.batch_size, self.probe, self.position, self.mates)


@dataclass(frozen=True)
class ModelInfo:
    """What was checked: the model, its input and outputs, the other placeholders, the images."""
    path: str
    format: str
    input: str
    input_dtype: str
    per_image_shape: list[int]
    shipped_batch: int | None
    batch_relaxed: bool
    outputs: list[str]
    placeholders: list[PlaceholderInfo]
    images: str  # a folder, or "synthetic"
    compared_tensors: int
    screened_tensors: int
    requested_trials: int  # --trials; more ran when needed to run every batch size once
    notes: list[str] = field(default_factory=list)  # what was inferred or worked around (core, shape, loader)
    outputs_chosen: str = ""  # how the outputs were chosen: given, declared by the model, or found (and why)
    flagged: list[dict] = field(default_factory=list)  # constructs the op scan flagged: can hang or hold state


@dataclass
class CheckResult:
    """The outcome of a check; `bool(result)` is True when the model is batch-invariant."""
    verdict: Verdict
    first_divergence: Divergence | None
    roots: list[Divergence]
    tensors: list[TensorReport]
    trials: list[TrialReport]
    model: ModelInfo
    tolerance: Tolerance
    limits: list[BatchLimit] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)  # BatchNorm pitfalls that are not batch dependence
    versions: dict[str, str] = field(default_factory=dict)
    coverage: Coverage | None = None  # None: not measured (a partial result, e.g. one fuzzed plan)

    def __bool__(self) -> bool:
        """Invariant, over enough of the network for the pass to mean something."""
        return self.verdict == Verdict.INVARIANT and (self.coverage is None or bool(self.coverage))

    @property
    def exit_code(self) -> int:
        """0 invariant, 1 batch-dependent or nondeterministic, 2 a pass that compared too little."""
        return 0 if self else 2 if self.verdict == Verdict.INVARIANT else 1

    @property
    def headline(self) -> str:
        return HEADLINES[self.verdict]

    def to_dict(self) -> dict[str, Any]:
        """The JSON report as plain values (enums as their strings)."""
        return json.loads(self.to_json())

    def to_json(self) -> str:
        return json.dumps(finite_for_json(asdict(self)), indent=2, default=_jsonable, allow_nan=False) + "\n"

    def write_json(self, path: Path) -> None:
        path.write_text(self.to_json())

    def layers(self) -> list[dict]:
        """Per-layer summary in topological order: tensors compared, divergent, worst figures."""
        rows: dict[str, dict] = {}
        for tensor in self.tensors:
            if tensor.status == Status.NOT_COMPARED:
                continue
            row = rows.setdefault(tensor.layer, {"layer": tensor.layer, "tensors": 0, "divergent": 0,
                                                 "max_abs_diff": 0.0, "max_rel_diff": 0.0})
            row["tensors"] += 1
            row["divergent"] += tensor.status in (Status.DIVERGENT, Status.NONDETERMINISTIC)
            row["max_abs_diff"] = max(row["max_abs_diff"], tensor.max_abs_diff or 0.0)
            row["max_rel_diff"] = max(row["max_rel_diff"], tensor.max_rel_diff or 0.0)
        return list(rows.values())


def versions() -> dict[str, str]:
    """Versions that matter for reproducing a result."""
    import numpy
    import tensorflow

    from . import __version__

    return {"batchcheck": __version__, "tensorflow": tensorflow.__version__, "numpy": numpy.__version__,
            "python": platform.python_version()}


def finite_for_json(value):
    """Strict JSON: non-finite figures become the strings "inf", "-inf", "nan" (read back with `float`)."""
    if isinstance(value, dict):
        return {k: finite_for_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_for_json(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _jsonable(value):
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")
