"""The check: load once, calibrate, try batch plans, localise divergences, build the result."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from .errors import BatchFailed, UsageError
from .graph import kinds
from .graph.batchnorm import find_batchnorms
from .graph.findings import batchnorm_findings
from .graph.index import layer_of, value_kinds
from .judge.calibrate import Calibration, calibrate
from .judge.causes import classify_cause, find_roots, hidden_mixer, hint_for
from .judge.coverage import measure_coverage
from .judge.tolerance import relative_diff
from .load.images import ImagePool, input_pool, special_input_pool
from .load.open import backend_for, open_model
from .model import PreparedModel
from .options import CheckConfig
from .plans import BatchPlan, PlanOutcome, draw_plans
from .result import (
    Cause,
    CheckResult,
    Coverage,
    Divergence,
    Mode,
    ModelInfo,
    Status,
    TensorReport,
    TrialReport,
    Verdict,
    describe_batch,
    versions,
)
from .run.runner import Runner
from .safety.slow_stage import doing
from .safety.supervise import stage


@dataclass
class Checker:
    """A model loaded, analysed and calibrated once, ready to run many batch plans (CLI, pytest, fuzzing)."""
    path: Path
    config: CheckConfig
    prepared: PreparedModel
    runner: Runner
    pool: ImagePool
    main_images: int  # pool[:main_images] are probes; the rest are special batch-mates
    calibration: Calibration
    dropped: set[int] = field(default_factory=set)  # special batch-mates that break the model: never used

    @classmethod
    def open(cls, path: Path | str, config: CheckConfig | None = None) -> Checker:
        """Load, prepare and analyse `path`; measure the noise floor and run-to-run determinism."""
        path, config = Path(path), config or CheckConfig()
        _, prepared = open_model(path, config)
        spec = prepared.input
        dtype = spec.numpy_dtype
        if config.preprocess is not None and dtype == np.uint8:
            raise UsageError(f"--preprocess {config.preprocess}: input `{spec.node}` is uint8 and is fed raw 0..255 "
                             f"pixels, so no scaling applies; drop --preprocess")
        stage("reading images")
        main = input_pool(spec, config)
        pool = main + special_input_pool(spec, config)
        stage("analysis", doing("running the graph on one image and on two", prepared.flagged))
        runner = Runner(backend_for(prepared).session(prepared))
        sizes = config.batch_sizes or ()
        runner.analyse(pool.array[:1], pool.array[[0, min(1, len(pool) - 1)]], sizes[0] if len(sizes) == 1 else None)
        if runner.fixed_batch:  # the graph runs at its shipped batch size only: every trial uses it
            config = replace(config, batch_sizes=(runner.fixed_batch,))
        stage("calibration", doing("running one image alone and in batches of its copies", prepared.flagged))
        return cls(path, config, prepared, runner, pool, len(main), calibrate(runner, pool.array[:1], config))

    def close(self) -> None:
        """Release the TensorFlow session (the model's graph and cached activations)."""
        self.runner.close()

    # -- what the model looks like ---------------------------------------------------------------

    @property
    def random_reaches_data(self) -> bool:
        """Whether random values (dropout at rate > 0) reach the data: the model is nondeterministic."""
        return self.calibration.random_reaches_data

    def image_name(self, index: int) -> str:
        return self.pool.names[index]

    def compared_outputs(self) -> dict[str, int | None]:
        """The model outputs that are compared, with their batch axis (None: no batch axis)."""
        axes = {t.tensor: t.batch_axis for t in self.runner.targets}
        return {name: axes[name] for name in self.prepared.outputs if name in axes}

    def forward(self, rows: list[int]) -> list[np.ndarray]:
        """Plain forward pass of the pool images `rows`: the compared outputs, in `compared_outputs` order."""
        return self.runner.forward(self.pool.array[rows], list(self.compared_outputs()))

    # -- plans -----------------------------------------------------------------------------------

    def default_plans(self) -> list[tuple[BatchPlan, list[int]]]:
        """The seeded trial plans of this model (see `draw_plans`)."""
        return draw_plans(self.config, self.main_images, len(self.pool), self.runner.fixed_batch)

    def describe(self, plan: BatchPlan) -> str:
        """'batch of 2, probe `noise-0` at 1, mates: flat black'."""
        return describe_batch(plan.batch_size, self.image_name(plan.probe), plan.position,
                              [self.image_name(m) for m in plan.mates])

    def run_plan(self, plan: BatchPlan, mode: Mode = Mode.SCREEN) -> PlanOutcome:
        """Compare the probe alone with its row in `plan`'s batch; a screened divergence is localised
        by re-running the plan with every tensor compared. Dropped batch-mates are replaced by natural images;
        a batch that fails because of special batch-mates drops them and runs again."""
        plan = self._without_dropped(plan)
        scales = self.runner.cache_solo(self.pool.array[[plan.probe]], plan.probe, mode)
        try:
            diffs = self.runner.compare(mode, self.pool.array[plan.rows()], [plan.position])
        except BatchFailed as failed:
            if not self._drop_breaking_mates(plan, mode, failed):
                raise
            return self.run_plan(plan, mode)
        outcome = self._judge(plan, mode, diffs, scales)
        if outcome.divergent and mode == Mode.SCREEN:
            outcome = self.run_plan(plan, Mode.DETAIL)
            outcome.localised = True
        return outcome

    def _without_dropped(self, plan: BatchPlan) -> BatchPlan:
        """`plan` with each dropped batch-mate replaced by a natural image other than the probe."""
        if not self.dropped & set(plan.mates):
            return plan
        naturals = [i for i in range(self.main_images) if i != plan.probe] or [plan.probe]
        mates = tuple(naturals[m % len(naturals)] if m in self.dropped else m for m in plan.mates)
        return BatchPlan(plan.probe, plan.position, mates)

    def _drop_breaking_mates(self, plan: BatchPlan, mode: Mode, failed: BatchFailed) -> bool:
        """When special batch-mates make `plan` fail (a quantized graph's range, an exposure check) while natural
        mates in their place do not, drop every special batch-mate that fails beside the probe, for the rest of the
        check, with a note; whether so."""
        if not any(m >= self.main_images for m in plan.mates):
            return False
        specials = [m for m in range(self.main_images, len(self.pool)) if m not in self.dropped]

        def fails(mates: tuple[int, ...]) -> bool:
            try:
                self.runner.compare(mode, self.pool.array[BatchPlan(plan.probe, 0, mates).rows()], [0])
            except BatchFailed:
                return True
            return False

        breaking = {m for m in specials if fails((m,))}
        if not breaking:
            return False
        self.dropped |= breaking
        if fails(self._without_dropped(plan).mates):  # natural mates in their place fail too: not the specials'
            self.dropped -= breaking
            return False
        where = f" at node `{failed.node}`" if failed.node else ""
        self.prepared.notes.append(
            f"dropped batch-mate(s) {', '.join(self.image_name(m) for m in sorted(breaking))}: the model fails on a "
            f"batch with them{where} ({failed.message}), not with natural images in their place; the trials use "
            f"natural images instead")
        return True

    def rerun(self) -> PlanOutcome:
        """The first probe alone, run again after its cached solo run: the determinism check."""
        return self.run_plan(BatchPlan(0, 0, ()), Mode.DETAIL)

    def _judge(self, plan: BatchPlan, mode: Mode, diffs: np.ndarray, scales: np.ndarray) -> PlanOutcome:
        watched = self.runner.watched[mode]
        over = diffs > self.calibration.tolerance.allowed(scales)
        relative = relative_diff(diffs, scales)
        divergent = {watched[j] for j in np.flatnonzero(over)} - self.calibration.unjudged
        return PlanOutcome(plan, mode, divergent,
                           {t: float(d) for t, d in zip(watched, diffs)},
                           {t: float(r) for t, r in zip(watched, relative)})

    # -- the whole check -------------------------------------------------------------------------

    def check(self, progress: Callable[[int, int], None] | None = None) -> CheckResult:
        """Run the seeded plans (the first in detail) and judge."""
        outcomes, trials = [], []
        plans = self.default_plans()
        for index, (plan, seed) in enumerate(plans):
            mode = Mode.DETAIL if index == 0 else Mode.SCREEN
            stage(f"trial {index}", doing(f"a batch of {plan.batch_size}", self.prepared.flagged))
            outcome = self.run_plan(plan, mode)
            outcomes.append(outcome)
            ran = outcome.plan  # with any dropped batch-mate replaced
            trials.append(TrialReport(index, ran.batch_size, ran.position, seed, self.image_name(ran.probe),
                                      [self.image_name(m) for m in ran.mates], mode, bool(outcome.divergent),
                                      outcome.localised))
            if progress:
                progress(index + 1, len(plans))
        return self.result(outcomes, trials)

    def result(self, outcomes: Iterable[PlanOutcome], trials: list[TrialReport]) -> CheckResult:
        """Judge outcomes: roots with causes, per-tensor figures, verdict."""
        outcomes = list(outcomes)
        abs_diff, rel_diff, counts = {}, {}, {}
        for outcome in outcomes:
            for t, value in outcome.abs_diff.items():
                abs_diff[t] = max(abs_diff.get(t, 0.0), value)
                rel_diff[t] = max(rel_diff.get(t, 0.0), outcome.rel_diff[t])
                counts[t] = counts.get(t, 0) + 1
        divergent = set().union(*(o.divergent for o in outcomes)) if outcomes else set()
        batch_roots = self._roots(divergent, abs_diff, rel_diff)
        sources = self._randomness_reaching_data()
        nondet_roots = [root for root in self._roots(set(self.calibration.run_to_run), abs_diff, rel_diff,
                                                     cause_default=Cause.RANDOM_OP) if root.node in sources]
        verdict = (Verdict.BATCH_DEPENDENT if batch_roots else
                   Verdict.NONDETERMINISTIC if nondet_roots else Verdict.INVARIANT)
        roots = batch_roots or nondet_roots
        return CheckResult(verdict=verdict, first_divergence=roots[0] if roots else None, roots=roots,
                           tensors=self._tensor_reports(divergent, abs_diff, rel_diff, counts), trials=trials,
                           model=self._model_info(), tolerance=self.calibration.tolerance,
                           limits=list(self.runner.limits), findings=batchnorm_findings(self.runner.index),
                           versions=versions(backend_for(self.prepared).versions()), coverage=self._coverage())

    def _randomness_reaching_data(self) -> set[str]:
        """The random nodes whose values enter the data where it starts to differ run to run (a dropout mask where
        it multiplies the data), not those that reach it without changing it (a dropout fed rate 0 upstream)."""
        index, values = self.runner.index, value_kinds(self.runner.index, self.prepared.input.node)
        differing = self.calibration.reaching_data
        def random(name: str) -> bool:  # random values, or a random op taking the data in (ONNX Dropout)
            return values.get(name) == "random" or index.nodes[name].kind in kinds.RANDOMS

        entries = [n for n in differing if not any(s in differing for s, _ in index.nodes[n].data_inputs)]
        sources: set[str] = set()
        stack = [n for n in entries if index.nodes[n].kind in kinds.RANDOMS]
        stack += [s for n in entries for s, _ in index.nodes[n].data_inputs if random(s)]
        while stack:
            name = stack.pop()
            if name not in sources:
                sources.add(name)
                stack += [s for s, _ in index.nodes[name].data_inputs if random(s)]
        return sources

    def _tensor_reports(self, divergent: set[int], abs_diff, rel_diff, counts) -> list[TensorReport]:
        runner, index, calibration = self.runner, self.runner.index, self.calibration
        tensors = []
        for i, target in enumerate(runner.targets):
            status = (Status.NONDETERMINISTIC if i in calibration.run_to_run and self.random_reaches_data else
                      Status.UNJUDGED if i in calibration.unjudged else
                      Status.DIVERGENT if i in divergent else Status.OK)
            tensors.append(TensorReport(target.tensor, target.op, layer_of(target.node), target.batch_axis,
                                        status, abs_diff.get(i), rel_diff.get(i), counts.get(i, 0)))
        tensors += [TensorReport(tensor, index.nodes[tensor.rsplit(":", 1)[0]].op, layer_of(tensor.rsplit(":", 1)[0]),
                                 None, Status.NOT_COMPARED, None, None, 0, why)
                    for tensor, why in runner.excluded.items()]
        tensors.sort(key=lambda t: (index.position.get(t.tensor.rsplit(":", 1)[0], 0), t.tensor))
        return tensors

    def _coverage(self) -> Coverage:
        runner = self.runner
        return measure_coverage(runner.index, self.prepared.input.node, [t.tensor for t in runner.targets],
                                runner.excluded, runner.limits, runner.dead)

    def _model_info(self) -> ModelInfo:
        spec, runner = self.prepared.input, self.runner
        return ModelInfo(path=str(self.path), format=self.prepared.format, input=spec.tensor, input_dtype=spec.dtype,
                         per_image_shape=list(spec.per_image_shape), shipped_batch=spec.shipped_batch,
                         batch_relaxed=spec.shipped_batch is not None, outputs=self.prepared.outputs,
                         placeholders=list(self.prepared.placeholders),
                         images=str(self.config.images) if self.config.images else "synthetic",
                         compared_tensors=len(runner.targets), screened_tensors=len(runner.watched[Mode.SCREEN]),
                         requested_trials=self.config.trials, notes=list(self.prepared.notes),
                         outputs_chosen=self.prepared.outputs_chosen, flagged=list(self.prepared.flagged))

    def _roots(self, divergent: set[int], abs_diff, rel_diff, cause_default: Cause | None = None) -> list[Divergence]:
        runner, index = self.runner, self.runner.index
        targets = runner.targets
        by_tensor = {targets[i].tensor: i for i in divergent}
        values = value_kinds(index, self.prepared.input.node)
        spec, backend = self.prepared.input, backend_for(self.prepared)
        # the input keeps its batch on axis 0: a root reading it directly is classified like any other
        axes = {spec.tensor: 0, **{t.tensor: t.batch_axis for t in targets}}
        ranks = {spec.tensor: 1 + len(spec.per_image_shape), **runner.ranks}
        compared = {t.tensor for t in targets}
        batch_norms = {bn.name for bn in find_batchnorms(index) if bn.batch_statistics}
        roots = []
        for node in find_roots(index, set(by_tensor), compared):
            outputs = [i for tensor, i in by_tensor.items() if tensor.rsplit(":", 1)[0] == node]
            first = min(outputs, key=lambda i: targets[i].tensor)
            cause = Cause(classify_cause(index, node, values, axes, ranks, runner.folded, batch_norms))
            shown, op, output, seen_at = node, targets[first].op, int(targets[first].tensor.rsplit(":", 1)[1]), ""
            hidden = hidden_mixer(index, node, compared, values) if cause == Cause.UNKNOWN else None
            if hidden is not None:  # the culprit had no row to compare: the change showed at `node`
                shown, op, output, cause = hidden.node, hidden.op, 0, Cause(hidden.cause)
                seen_at = f"; its output has no per-image row to compare, the change shows at `{node}`"
            if cause_default and cause == Cause.UNKNOWN:
                cause = cause_default
            hint = hint_for(index, shown, cause, spec.node, backend.explanation(index, shown, str(cause)))
            roots.append(Divergence(shown, op, output, layer_of(shown), cause, abs_diff.get(first, 0.0),
                                    rel_diff.get(first, 0.0), hint + seen_at))
        return roots


def check(path: Path | str, config: CheckConfig | None = None,
          progress: Callable[[int, int], None] | None = None) -> CheckResult:
    """Check that `path` gives each image the same activations whatever batch it runs in."""
    checker = Checker.open(path, config)
    try:
        return checker.check(progress)
    finally:
        checker.close()

