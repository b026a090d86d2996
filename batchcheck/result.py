"""Result values: truthy when the model is batch-invariant, with the numbers, serialisable to JSON.

Every part is a dataclass; `serial.Report` is the one serialisation (and its inverse, `from_dict`), and its keys
are the `--json` contract that users' CI reads.
"""
from __future__ import annotations

import platform
from dataclasses import dataclass, field
from enum import Enum

from .safety.scan import Finding as Flagged
from .serial import Report

MIN_NETWORK_SHARE = 0.5  # a pass must have compared at least this share of the conv/matmul/BN ops


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
class Tolerance:
    """A tensor diverges when max |row - solo| > atol + rtol * max |solo|."""
    atol: float
    rtol: float
    source: str               # "measured" | "user" | "exact" | "default" (explain's fixed one)
    noise_floor: float | None  # largest relative rounding seen in a batch of copies, when measured

    def allowed(self, scales):
        """The largest |row - solo| each tensor of max |solo| `scales` may show (an array in, an array out)."""
        return self.atol + self.rtol * scales

    def describe(self) -> str:
        return f"atol {self.atol:.1e} + rtol {self.rtol:.1e} × max|solo|"


@dataclass(frozen=True)
class Coverage:
    """Compared vs comparable tensors, and the share of the network's conv/matmul/BN ops compared;
    `bool(coverage)` is True when the share is enough for a pass to mean something."""
    compared_tensors: int
    comparable_tensors: int      # compared + not compared (beyond a batch limit, inside a loop…)
    network_ops: int             # conv/matmul/BN nodes downstream of the input
    network_ops_compared: int
    network_share: float
    limited_by: str              # what kept the rest from being compared ("" when nothing did)
    suggestion: str              # the --input/--output that would test more ("" when none)

    def __bool__(self) -> bool:
        return self.network_share >= MIN_NETWORK_SHARE

    def summary(self) -> str:
        ops = (f", {self.network_ops_compared} of {self.network_ops} conv/matmul/BN ops "
               f"({self.network_share:.0%})" if self.network_ops else "")
        return f"{self.compared_tensors} of {self.comparable_tensors} tensors{ops}"

    def message(self, path) -> str:
        """The one line of a pass that compared too little."""
        limited = f"; limited by {self.limited_by}" if self.limited_by else ""
        suggestion = f"; {self.suggestion}" if self.suggestion else ""
        return (f"model `{path}`: passed, but compared only {self.summary()}, less than "
                f"{MIN_NETWORK_SHARE:.0%} of the network{limited}{suggestion}")


@dataclass(frozen=True)
class Finding:
    """A BatchNorm pitfall as `check` reports it in its `findings` (the JSON keys are a contract)."""
    kind: str
    node: str
    layer: str
    message: str


@dataclass(frozen=True)
class PlaceholderInfo:
    """A placeholder other than the image input, as the report lists it."""
    name: str
    op: str
    dtype: str
    shape: str
    fed: str | None  # the --feed value, or None (default kept)


@dataclass(frozen=True)
class BatchLimit:
    """A node that cannot run with a batch (e.g. a Reshape to a hard-coded [1, N]): nothing after it is tested."""
    node: str
    op: str
    reason: str
    tensors_beyond: int


@dataclass(frozen=True, kw_only=True)
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
    flagged: list[Flagged] = field(default_factory=list)  # constructs the op scan flagged: can hang or hold state


@dataclass(kw_only=True)
class CheckResult(Report):
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


def versions(runtime: dict[str, str]) -> dict[str, str]:
    """Versions that matter for reproducing a result: batchcheck, the `runtime`'s packages, numpy and Python."""
    import numpy

    from .version import __version__

    return {"batchcheck": __version__, **runtime, "numpy": numpy.__version__,
            "python": platform.python_version()}
