"""Regression baseline: what each model looked like when it was accepted, and what changed since.

A baseline file is JSON: `{"batchcheck_baseline": 1, "models": {KEY: ENTRY}}` where KEY is the model's path
relative to the baseline file's folder and ENTRY holds the verdict, the roots, per-layer divergence under one
fixed plan, and task metrics on the image pool (solo vs batched agreement of each classifier or segmenter
output). `compare(baseline_entry, measured_entry)` lists the changes; the regressions among them fail the gate.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..result import Mode, Status
from ..serial import typed
from .baseline_file import (
    BaselineEntry,
    LayerFigures,
    RootSummary,
    TaskMetric,
    write_baseline,
)

if TYPE_CHECKING:
    import pytest

    from ..checker import Checker
    from ..plans import BatchPlan
    from ..result import CheckResult
    from ..safety.remote import RemoteChecker
    from .settings import Settings

REPORT_ATTRIBUTE = "batchcheck_baseline"  # on a baseline item's call report: JSON [key, entry]
FIGURE_SLACK = 1.5       # a divergent layer regresses when its relative difference grows past 1.5× the baseline's
METRIC_TOLERANCE = 0.01  # a task metric regresses when it drops by more than this (a fraction of images/pixels)
FIXED_PLAN_SIZE = 4


@dataclass(frozen=True)
class Change:
    """One difference from the baseline; `regression` ones fail the gate, the others are improvements."""
    what: str
    baseline: str
    now: str
    regression: bool


# -- measuring -----------------------------------------------------------------------------------

def fixed_plan(checker: Checker | RemoteChecker) -> BatchPlan:
    """The plan every baseline entry is measured under: probe 0 at position 1 with a flat black mate,
    another image and the last special, as far as the largest configured batch size allows."""
    from ..plans import BatchPlan

    size = min(FIXED_PLAN_SIZE, max(checker.config.sizes))
    mates = (checker.main_images, 1 % checker.main_images, len(checker.pool) - 1)[:size - 1]
    return BatchPlan(0, 1, mates)


def measure(checker: Checker | RemoteChecker, result: CheckResult) -> BaselineEntry:
    """The baseline entry for `checker`'s model, whose full check gave `result`."""
    plan = fixed_plan(checker)
    under_plan = checker.result([checker.run_plan(plan, Mode.DETAIL)], trials=[])
    return BaselineEntry(verdict=str(result.verdict), nondeterministic=checker.random_reaches_data,
                         roots=[RootSummary(r.node, r.layer, r.op, str(r.cause)) for r in result.roots],
                         plan=checker.describe(plan), layers=_layers(under_plan), metrics=task_metrics(checker))


def _layers(result: CheckResult) -> dict[str, LayerFigures]:
    """Per layer: ok | divergent | nondeterministic, and its figures (3 significant digits)."""
    status: dict[str, str] = {}
    for tensor in result.tensors:
        if tensor.status == Status.NOT_COMPARED:
            continue
        current = status.get(tensor.layer, Status.OK)
        if tensor.status == Status.DIVERGENT or (tensor.status == Status.NONDETERMINISTIC and current == Status.OK):
            current = tensor.status
        status[tensor.layer] = current
    return {row["layer"]: LayerFigures(str(status[row["layer"]]), _round(row["max_abs_diff"]),
                                       _round(row["max_rel_diff"])) for row in result.layers()}


def task_metrics(checker: Checker | RemoteChecker) -> dict[str, TaskMetric]:
    """Solo vs batched agreement of each output over the pool's main images: top-1 for classifier outputs
    [N, classes], per-pixel class for segmenter outputs [N, H, W, classes] or label maps [N, H, W]."""
    outputs = checker.compared_outputs()
    pool_size = len(checker.pool)
    size = min(max(checker.config.sizes), pool_size)
    batches = [[(start + k) % pool_size for k in range(size)] for start in range(0, checker.main_images, size)]
    batched = [checker.forward(rows) for rows in batches]
    solos = [checker.forward([i]) for i in range(checker.main_images)]
    metrics: dict[str, TaskMetric] = {}
    for j, (name, axis) in enumerate(outputs.items()):
        kind = _metric_kind(solos[0][j])
        if kind is None or axis != 0:
            continue
        agreement = [_agreement(kind, solo[j][0], batched[i // size][j][i % size]) for i, solo in enumerate(solos)]
        metrics[name] = TaskMetric(kind, _round(float(np.mean(agreement))), len(solos))
    return metrics


def _metric_kind(solo: np.ndarray) -> str | None:
    """'top1' for [1, classes], 'pixels' for [1, H, W, classes] scores or [1, H, W] integer labels."""
    if solo.dtype.kind == "f" and solo.ndim in (2, 4) and solo.shape[-1] > 1:
        return "top1" if solo.ndim == 2 else "pixels"
    if solo.dtype.kind in "iu" and solo.ndim == 3:
        return "pixels"
    return None


def _agreement(kind: str, solo: np.ndarray, row: np.ndarray) -> float:
    if kind == "pixels" and solo.dtype.kind in "iu":
        return float(np.mean(solo == row))
    return float(np.mean(np.argmax(solo, axis=-1) == np.argmax(row, axis=-1)))


def _round(value: float) -> float:
    return float(f"{value:.3g}")


# -- comparing -----------------------------------------------------------------------------------

METRIC_NAMES = {"top1": "top-1 agreement", "pixels": "pixel agreement"}


def compare(baseline: BaselineEntry, measured: BaselineEntry) -> list[Change]:
    """What changed from `baseline` to `measured` (two entries of the same model)."""
    changes = []
    if baseline.plan != measured.plan:
        changes.append(Change("fixed plan (images or options changed; refresh the baseline)",
                              baseline.plan, measured.plan, True))
    if baseline.verdict != measured.verdict:
        changes.append(Change("verdict", _verdict(baseline), _verdict(measured), measured.verdict != "invariant"))
    if baseline.nondeterministic != measured.nondeterministic:
        changes.append(Change("run to run", _determinism(baseline), _determinism(measured),
                              measured.nondeterministic))
    for layer, now in measured.layers.items():
        before = baseline.layers.get(layer, UNSEEN_LAYER)
        if now.status != before.status:
            changes.append(Change(f"layer `{layer}`", _layer(before), _layer(now), now.status != "ok"))
        elif now.status == "divergent" and now.max_rel_diff > FIGURE_SLACK * before.max_rel_diff:
            changes.append(Change(f"layer `{layer}` diverges more", _layer(before), _layer(now), True))
    for output, before in baseline.metrics.items():
        now = measured.metrics.get(output)
        if now is None or abs(now.agreement - before.agreement) <= METRIC_TOLERANCE:
            continue
        changes.append(Change(f"{METRIC_NAMES[before.kind]} `{output}` ({now.images} images, solo vs batched)",
                              f"{before.agreement:.3f}", f"{now.agreement:.3f}", now.agreement < before.agreement))
    return changes


UNSEEN_LAYER = LayerFigures("ok", 0.0, 0.0)  # a layer the baseline did not have


def _verdict(entry: BaselineEntry) -> str:
    return f"{entry.verdict} (root `{entry.roots[0].node}`)" if entry.roots else entry.verdict


def _determinism(entry: BaselineEntry) -> str:
    return "nondeterministic" if entry.nondeterministic else "deterministic"


def _layer(figures: LayerFigures) -> str:
    return "ok" if figures.status == "ok" else f"{figures.status}, relative {figures.max_rel_diff:.3g}"


# -- writing, once per session -----------------------------------------------------------------------

class BaselineWriter:
    """Collects the measured entries (from this process or, under xdist, from the workers' reports) and
    writes them to the baseline once, at the end of the session, in the controlling process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.measured: dict[str, BaselineEntry] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        measured = getattr(report, REPORT_ATTRIBUTE, None)
        if measured is not None:
            key, entry = json.loads(measured)
            self.measured[key] = typed(BaselineEntry, entry)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.measured:
            assert self.settings.baseline is not None
            write_baseline(self.settings.baseline, self.measured)

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.measured:
            terminalreporter.write_line(f"batchcheck: wrote {len(self.measured)} model(s) to baseline "
                                        f"{self.settings.baseline}: {', '.join(sorted(self.measured))}")
