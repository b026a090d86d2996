"""Calibration, measured once before any trial: the tolerance (from the noise floor of the probe alone vs
batches of its own copies) and run-to-run determinism (the same feed twice)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..graph.index import value_kinds
from ..options import CheckConfig
from ..result import Mode, Tolerance
from ..run.runner import Runner
from .tolerance import measured_tolerance, relative_diff, user_tolerance

DETAIL_BATCH = 4  # the first trial, which compares every tensor, uses at most this many images


@dataclass(frozen=True)
class Calibration:
    """What every trial is judged against."""
    tolerance: Tolerance
    run_to_run: frozenset[int]      # targets that differ when the same feed runs twice
    unjudged: frozenset[int]        # those, and what comes after randomness that reaches the data
    reaching_data: frozenset[str]   # nodes whose data differs run to run (dropout at rate > 0); empty: none does

    @property
    def random_reaches_data(self) -> bool:
        """Whether random values reach the data (dropout at rate > 0), not only nodes that never do (rate 0)."""
        return bool(self.reaching_data)


def calibrate(runner: Runner, probe: np.ndarray, config: CheckConfig) -> Calibration:
    """Calibrate on `probe` (a batch of one image) under `config`'s tolerance options."""
    noise = []
    for mode, size in ((Mode.SCREEN, max(config.sizes)), (Mode.DETAIL, DETAIL_BATCH)):
        scales = runner.cache_solo(probe, 0, mode)
        rows = sorted({0, size // 2, size - 1})  # first, middle and last: kernels may treat the tail apart
        diffs = runner.compare(mode, np.repeat(probe, size, axis=0), rows)
        noise.append(relative_diff(diffs, scales))
    tolerance = user_tolerance(config.atol, config.rtol, config.exact) or measured_tolerance(np.concatenate(noise))
    rerun = runner.compare(Mode.DETAIL, probe, [0])  # detail watches every target: indices are targets
    run_to_run = set(np.flatnonzero(rerun > tolerance.allowed(scales)).tolist())
    kinds = value_kinds(runner.index, runner.prepared.input.node)
    targets = runner.targets
    reaching_data = [targets[i].node for i in run_to_run if kinds[targets[i].node] == "data"]
    # Randomness that reaches the data (dropout at rate > 0) makes everything after it unjudgeable for
    # batch dependence; random values that never do (dropout at rate 0) are harmless.
    tainted = runner.index.descendants(reaching_data)
    unjudged = run_to_run | {i for i, t in enumerate(targets) if t.node in tainted}
    return Calibration(tolerance, frozenset(run_to_run), frozenset(unjudged), frozenset(reaching_data))
