"""The proof of a repair, whatever backend rewrote the model: the written model re-checked, its outputs against the
reference (the original with its inference semantics), and before/after figures.

A backend's `fix` returns a `Repaired`: the model it wrote, what it rewrote, and `RepairRuns` that run the fixed
model, the original and the reference in its runtime. The reference shares no surgery with the fix, so agreement
is evidence, not a tautology.
"""
from __future__ import annotations

import statistics as stats
import time
from pathlib import Path

import numpy as np

from ..judge.tolerance import PLAUSIBLE_ROUNDING
from ..safety.supervise import stage
from .result import (
    FixResult,
    GraphFigures,
    OutputAgreement,
    Proof,
    Repaired,
    RepairRuns,
)

LATENCY_BATCHES = (1, 32)


def prove(model: Path, repaired: Repaired, repeats: int) -> FixResult:
    """Re-check the written model, compare its outputs with the reference on the check's images, time both."""
    from ..checker import Checker

    checker = Checker.open(repaired.written, repaired.recheck)
    try:
        verdict = str(checker.check().verdict.value)
        images = checker.pool.array[:checker.main_images]
        tolerance = checker.calibration.tolerance
        fixed_batch = checker.runner.fixed_batch  # a model that runs at one batch size only is run at it
    finally:
        checker.close()
    if fixed_batch:
        images = np.resize(images, (fixed_batch, *images.shape[1:]))
    runs = repaired.runs
    stage("the proof (reference outputs and latency)")
    try:
        # folding and rewriting reorder float32 arithmetic: the check's tolerance, with its rtol at least what the
        # check deems plausible rounding
        rtol = max(tolerance.rtol, PLAUSIBLE_ROUNDING)
        outputs = [agreement(name, got, want, rtol, tolerance.atol)
                   for name, got, want in zip(repaired.outputs, runs.fixed(images), runs.reference(images))]
        before, after = before_after_figures(runs, images, repeats, (fixed_batch,) if fixed_batch else LATENCY_BATCHES)
    finally:
        runs.close()
    failed = [] if verdict == "invariant" else [f"re-check: the fixed graph is {verdict}"]
    failed += [f"outputs: `{o.output}` differs from the reference by {o.max_abs_diff:.3g} "
               f"(allowed {o.allowed_abs_diff:.3g})"
               for o in outputs if o.max_abs_diff > o.allowed_abs_diff]
    proof = Proof(verdict, repaired.reference, len(images), outputs, before, after, failed)
    return FixResult(model=str(model), written=str(repaired.written), input=repaired.input, outputs=repaired.outputs,
                     rewrites=repaired.rewrites, statistics=repaired.statistics,
                     calibration_images=repaired.calibration_images, proof=proof)


def before_after_figures(runs: RepairRuns, images: np.ndarray, repeats: int, sizes: tuple[int, ...],
                         warmup: int = 2) -> tuple[GraphFigures, GraphFigures]:
    """Sizes and median forward latency (ms) at each batch size of `sizes`; the two models' passes alternate, after
    `warmup` passes each, so that both see the same machine load."""
    latency: tuple[dict[int, float], dict[int, float]] = ({}, {})
    for size in sizes:
        batch = np.resize(images, (size, *images.shape[1:]))
        times: tuple[list[float], list[float]] = ([], [])
        for index in range(warmup + repeats):
            for run, timed in zip((runs.original, runs.fixed), times):
                start = time.perf_counter()
                run(batch)
                if index >= warmup:
                    timed.append((time.perf_counter() - start) * 1000.0)
        for figures, timed in zip(latency, times):
            figures[size] = round(float(stats.median(timed)), 3)
    (nodes_before, bn_before), (nodes_after, bn_after) = runs.sizes()
    return GraphFigures(nodes_before, bn_before, latency[0]), GraphFigures(nodes_after, bn_after, latency[1])


def agreement(name: str, fixed: np.ndarray, reference: np.ndarray, rtol: float, atol: float) -> OutputAgreement:
    """Max absolute/relative difference (allowed: atol + rtol × max|reference|) and, for class scores or
    per-pixel scores, argmax agreement."""
    fixed, reference = fixed.astype(np.float64), reference.astype(np.float64)
    diff = float(np.max(np.abs(fixed - reference))) if fixed.size else 0.0
    scale = float(np.max(np.abs(reference))) if reference.size else 0.0
    relative = diff / scale if scale else (0.0 if diff == 0 else float("inf"))
    task, share = "values", None
    if fixed.ndim in (2, 4) and fixed.shape[-1] > 1:
        task = "classification" if fixed.ndim == 2 else "segmentation"
        share = float(np.mean(np.argmax(fixed, -1) == np.argmax(reference, -1)))
    return OutputAgreement(name, task, diff, relative, share, atol + rtol * scale)
