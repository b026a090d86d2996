"""The check: load once, calibrate, try batch plans, localise divergences, build the result."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from .graph.findings import batchnorm_findings
from .judge.causes import classify_cause, find_roots, hint_for
from .judge.coverage import measure_coverage
from .judge.tolerance import Tolerance, measured_tolerance, user_tolerance
from .graph.index import layer_of, value_kinds
from .load.images import ImagePool, pool_from_dir, special_pool, synthetic_pool
from .load.formats import load_model
from .load.prepare import PreparedModel, prepare
from .options import CheckConfig
from .result import CheckResult, Divergence, TensorReport, TrialReport, versions
from .run.runner import GraphRunner

DETAIL_BATCH = 4  # the first trial, which compares every tensor, uses at most this many images


@dataclass(frozen=True)
class BatchPlan:
    """One batch: the probe and its batch-mates (indices into the checker's pool), probe at `position`."""
    probe: int
    position: int
    mates: tuple[int, ...]

    @property
    def batch_size(self) -> int:
        return len(self.mates) + 1

    def rows(self) -> list[int]:
        return [*self.mates[:self.position], self.probe, *self.mates[self.position:]]


@dataclass
class PlanOutcome:
    """What one plan showed: divergent tensors (indices into runner.targets) with their figures."""
    plan: BatchPlan
    mode: str
    divergent: set[int]
    abs_diff: dict[int, float]
    rel_diff: dict[int, float]
    localised: bool = False

    def __bool__(self) -> bool:
        return not self.divergent


@dataclass
class Checker:
    """A model loaded and analysed once, ready to run many batch plans (CLI, pytest, fuzzing)."""
    path: Path
    config: CheckConfig
    prepared: PreparedModel
    runner: GraphRunner
    pool: ImagePool
    main_images: int  # pool[:main_images] are probes; the rest are special batch-mates
    tolerance: Tolerance
    unjudged: set[int] = field(default_factory=set)  # differ run to run, or come after what does: not judged
    run_to_run: set[int] = field(default_factory=set)        # differ when the same feed runs twice
    random_reaches_data: bool = False
    _cached: tuple[int, np.ndarray] | None = None  # (probe, scales) whose solo run the TF variables hold

    @classmethod
    def open(cls, path: Path | str, config: CheckConfig | None = None) -> "Checker":
        """Load, prepare and analyse `path`; measure the noise floor and run-to-run determinism."""
        path, config = Path(path), config or CheckConfig()
        loaded = load_model(path, config.format, signature=config.signature, checkpoint=config.checkpoint,
                            outputs=list(config.outputs))
        prepared = prepare(loaded, input_name=config.input, outputs=list(config.outputs),
                           input_shape=config.input_shape, feeds=config.feeds)
        spec = prepared.input
        dtype = np.dtype(spec.dtype) if spec.dtype != "bfloat16" else np.dtype(np.float32)
        main = (pool_from_dir(config.images, spec.per_image_shape, dtype, config.preprocess)
                if config.images else synthetic_pool(spec.per_image_shape, dtype, config.preprocess, config.seed))
        pool = main + special_pool(spec.per_image_shape, dtype, config.preprocess)
        runner = GraphRunner(prepared)
        runner.analyse(pool.array[:1], pool.array[[0, min(1, len(pool) - 1)]])
        checker = cls(path, config, prepared, runner, pool, len(main), Tolerance(0, 0, "exact", None))
        checker._calibrate()
        return checker

    def close(self) -> None:
        """Release the TensorFlow session (the model's graph and cached activations)."""
        self.runner.session.close()

    # -- plans -----------------------------------------------------------------------------------

    def default_plans(self) -> list[tuple[BatchPlan, list[int]]]:
        """The seeded trial plans, each with the seed that drew it. The first compares every tensor on a
        small batch (cheap at any model size); the others draw their size from the batch sizes."""
        plans = []
        sizes = sorted(self.config.batch_sizes)
        for index in range(self.config.trials):
            seed = [self.config.seed, index]
            rng = np.random.default_rng(seed)
            size = min(sizes[0], DETAIL_BATCH) if index == 0 else int(rng.choice(sizes))
            probe = int(rng.integers(self.main_images))
            others = [i for i in range(len(self.pool)) if i != probe]
            mates = tuple(int(m) for m in rng.choice(others, size - 1, replace=len(others) < size - 1))
            plans.append((BatchPlan(probe, int(rng.integers(size)), mates), seed))
        return plans

    def batch(self, plan: BatchPlan) -> np.ndarray:
        return self.pool.array[plan.rows()]

    def describe(self, plan: BatchPlan) -> str:
        """'batch of 2, probe `noise-0` at 1, mates: flat black'."""
        mates = ", ".join(self.pool.names[m] for m in plan.mates)
        return (f"batch of {plan.batch_size}, probe `{self.pool.names[plan.probe]}` at {plan.position}, "
                f"mates: {mates}")

    def _cache(self, probe: int) -> np.ndarray:
        if self._cached is None or self._cached[0] != probe:
            self._cached = (probe, self.runner.cache_solo(self.pool.array[[probe]]))
        return self._cached[1]

    def run_plan(self, plan: BatchPlan, mode: str = "screen") -> PlanOutcome:
        """Compare the probe alone with its row in `plan`'s batch; a screened divergence is localised
        by re-running the plan with every tensor compared."""
        scales = self._cache(plan.probe)
        diffs = self.runner.compare(mode, self.batch(plan), [plan.position])
        outcome = self._judge(plan, mode, diffs, scales[self.runner.watched[mode]])
        if outcome.divergent and mode == "screen":
            outcome = self.run_plan(plan, "detail")
            outcome.localised = True
        return outcome

    def _judge(self, plan: BatchPlan, mode: str, diffs: np.ndarray, scales: np.ndarray) -> PlanOutcome:
        watched = self.runner.watched[mode]
        over = diffs > self.tolerance.allowed(scales)
        relative = relative_diff(diffs, scales)
        divergent = {watched[j] for j in np.flatnonzero(over)} - self.unjudged
        return PlanOutcome(plan, mode, divergent,
                           {t: float(d) for t, d in zip(watched, diffs)},
                           {t: float(r) for t, r in zip(watched, relative)})

    # -- calibration -----------------------------------------------------------------------------

    def _calibrate(self) -> None:
        """Noise floor from the probe alone vs batches of its copies; determinism from the same feed twice."""
        one = self.pool.array[:1]
        scales = self._cache(0)
        noise = []
        for mode, size in (("screen", max(self.config.batch_sizes)), ("detail", DETAIL_BATCH)):
            rows = sorted({0, size // 2, size - 1})  # first, middle and last: kernels may treat the tail apart
            diffs = self.runner.compare(mode, np.repeat(one, size, axis=0), rows)
            noise.append(relative_diff(diffs, scales[self.runner.watched[mode]]))
        self.tolerance = (user_tolerance(self.config.atol, self.config.rtol, self.config.exact)
                          or measured_tolerance(np.concatenate(noise)))
        rerun = self.runner.compare("detail", one, [0])
        self.run_to_run = set(np.flatnonzero(rerun > self.tolerance.allowed(scales)).tolist())
        kinds = value_kinds(self.runner.index, self.prepared.input.node)
        targets = self.runner.targets
        reaching_data = [targets[i].node for i in self.run_to_run if kinds[targets[i].node] == "data"]
        # Randomness that reaches the data (dropout at rate > 0) makes everything after it unjudgeable
        # for batch dependence; random values that never do (dropout at rate 0) are harmless.
        tainted = self.runner.index.descendants(reaching_data)
        self.unjudged = self.run_to_run | {i for i, t in enumerate(targets) if t.node in tainted}
        self.random_reaches_data = bool(reaching_data)

    # -- the whole check -------------------------------------------------------------------------

    def check(self, progress: Callable[[int, int], None] | None = None) -> CheckResult:
        """Run the seeded plans (the first in detail) and judge."""
        outcomes, trials = [], []
        plans = self.default_plans()
        for index, (plan, seed) in enumerate(plans):
            mode = "detail" if index == 0 else "screen"
            outcome = self.run_plan(plan, mode)
            outcomes.append(outcome)
            trials.append(TrialReport(index, plan.batch_size, plan.position, seed,
                                      self.pool.names[plan.probe], [self.pool.names[m] for m in plan.mates],
                                      mode, bool(outcome.divergent), outcome.localised))
            if progress:
                progress(index + 1, len(plans))
        return self.result(outcomes, trials)

    def result(self, outcomes: Iterable[PlanOutcome], trials: list[TrialReport]) -> CheckResult:
        """Judge outcomes: roots with causes, per-tensor figures, verdict."""
        outcomes = list(outcomes)
        runner, index = self.runner, self.runner.index
        targets = runner.targets
        abs_diff, rel_diff, counts = {}, {}, {}
        for outcome in outcomes:
            for t, value in outcome.abs_diff.items():
                abs_diff[t] = max(abs_diff.get(t, 0.0), value)
                rel_diff[t] = max(rel_diff.get(t, 0.0), outcome.rel_diff[t])
                counts[t] = counts.get(t, 0) + 1
        divergent = set().union(*(o.divergent for o in outcomes)) if outcomes else set()
        batch_roots = self._roots(divergent, abs_diff, rel_diff)
        nondet_roots = (self._roots(self.run_to_run, abs_diff, rel_diff, cause_default="random_op")
                        if self.random_reaches_data else [])
        verdict = "batch_dependent" if batch_roots else "nondeterministic" if nondet_roots else "invariant"
        roots = batch_roots or nondet_roots
        tensors = []
        for i, target in enumerate(targets):
            status = ("nondeterministic" if i in self.run_to_run and self.random_reaches_data else
                      "unjudged" if i in self.unjudged else
                      "divergent" if i in divergent else "ok")
            tensors.append(TensorReport(target.tensor, target.op, layer_of(target.node), target.batch_axis,
                                        status, abs_diff.get(i), rel_diff.get(i), counts.get(i, 0)))
        tensors += [TensorReport(tensor, index.nodes[tensor.split(":")[0]].op, layer_of(tensor.split(":")[0]),
                                 None, "not_compared", None, None, 0, why)
                    for tensor, why in runner.excluded.items()]
        tensors.sort(key=lambda t: (index.position.get(t.tensor.split(":")[0], 0), t.tensor))
        spec = self.prepared.input
        model = {"path": str(self.path), "format": self.prepared.format, "input": spec.tensor,
                 "input_dtype": spec.dtype, "per_image_shape": list(spec.per_image_shape),
                 "shipped_batch": spec.shipped_batch, "batch_relaxed": spec.shipped_batch is not None,
                 "outputs": self.prepared.outputs,
                 "placeholders": [vars(p) for p in self.prepared.placeholders],
                 "images": str(self.config.images) if self.config.images else "synthetic",
                 "compared_tensors": len(targets), "screened_tensors": len(runner.watched["screen"]),
                 "notes": self.prepared.notes}
        limits = [vars(limit) for limit in runner.limits]
        findings = [vars(f) for f in batchnorm_findings(index)]
        coverage = measure_coverage(index, spec.node, [t.tensor for t in targets], runner.excluded,
                                    runner.limits, runner.dead)
        return CheckResult(verdict, roots[0] if roots else None, roots, tensors, trials, model,
                           self.tolerance.to_dict(), limits, findings, versions(), coverage)

    def _roots(self, divergent: set[int], abs_diff, rel_diff, cause_default: str | None = None) -> list[Divergence]:
        runner, index = self.runner, self.runner.index
        targets = runner.targets
        by_tensor = {targets[i].tensor: i for i in divergent}
        kinds = value_kinds(index, self.prepared.input.node)
        axes = {t.tensor: t.batch_axis for t in targets}
        ranks = runner.ranks
        roots = []
        for node in find_roots(index, set(by_tensor)):
            outputs = [i for tensor, i in by_tensor.items() if tensor.split(":")[0] == node]
            first = min(outputs, key=lambda i: targets[i].tensor)
            cause = classify_cause(index, node, kinds, axes, ranks)
            if cause_default and cause == "unknown":
                cause = cause_default
            roots.append(Divergence(node, targets[first].op, int(targets[first].tensor.split(":")[1]),
                                    layer_of(node), cause, max(abs_diff.get(i, 0.0) for i in outputs),
                                    max(rel_diff.get(i, 0.0) for i in outputs),
                                    hint_for(index, node, cause, self.prepared.input.node)))
        return roots


def relative_diff(diffs: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """|diff| / max|solo|; 0 where both are 0, inf where only the solo tensor is all zeros."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(diffs == 0, 0.0, diffs / scales)


def check(path: Path | str, config: CheckConfig | None = None,
          progress: Callable[[int, int], None] | None = None) -> CheckResult:
    """Check that `path` gives each image the same activations whatever batch it runs in."""
    return Checker.open(path, config).check(progress)
