"""Result values: truthy when the model is batch-invariant, with the numbers, serialisable to JSON."""
from __future__ import annotations

import json
import math
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .judge.coverage import Coverage


@dataclass(frozen=True)
class Divergence:
    """A root: a node whose output diverges while its inputs agree."""
    node: str
    op: str
    output: int
    layer: str
    cause: str
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
    status: str  # ok | divergent | nondeterministic | unjudged (after real randomness) | not_compared
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
    mode: str  # detail | screen
    diverged: bool
    localised: bool


@dataclass
class CheckResult:
    """The outcome of a check; `bool(result)` is True when the model is batch-invariant."""
    verdict: str
    first_divergence: Divergence | None
    roots: list[Divergence]
    tensors: list[TensorReport]
    trials: list[TrialReport]
    model: dict
    tolerance: dict
    limits: list[dict] = field(default_factory=list)
    findings: list[dict] = field(default_factory=list)  # BatchNorm pitfalls that are not batch dependence
    versions: dict = field(default_factory=dict)
    coverage: Coverage | None = None  # None: not measured (a partial result, e.g. one fuzzed plan)

    def __bool__(self) -> bool:
        """Invariant, over enough of the network for the pass to mean something."""
        return self.verdict == "invariant" and (self.coverage is None or bool(self.coverage))

    @property
    def exit_code(self) -> int:
        """0 invariant, 1 batch-dependent or nondeterministic, 2 a pass that compared too little."""
        return 0 if self else 2 if self.verdict == "invariant" else 1

    def to_dict(self) -> dict:
        return asdict(self)

    def write_json(self, path: Path) -> None:
        path.write_text(json.dumps(finite_for_json(self.to_dict()), indent=2, default=_jsonable, allow_nan=False) + "\n")

    def layers(self) -> list[dict]:
        """Per-layer summary in topological order: tensors compared, divergent, worst figures."""
        rows: dict[str, dict] = {}
        for tensor in self.tensors:
            if tensor.status == "not_compared":
                continue
            row = rows.setdefault(tensor.layer, {"layer": tensor.layer, "tensors": 0, "divergent": 0,
                                                 "max_abs_diff": 0.0, "max_rel_diff": 0.0})
            row["tensors"] += 1
            row["divergent"] += tensor.status in ("divergent", "nondeterministic")
            row["max_abs_diff"] = max(row["max_abs_diff"], tensor.max_abs_diff or 0.0)
            row["max_rel_diff"] = max(row["max_rel_diff"], tensor.max_rel_diff or 0.0)
        return list(rows.values())


def versions() -> dict:
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
