"""`explain`: what one node does with the batch, measured on real images.

For a BatchNorm: its parameters and mode, then its actual output against two computations by hand
in NumPy (with the moving statistics, and with the batch's own mean/variance). For any other node: its
attributes and axes, and whether its output for an image changes when a second image joins the batch.
The same measurement confirms lint's findings (`lint --confirm`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import UsageError, did_you_mean, op_error_text
from .graph.batch_rules import batch_axis, batch_mixing
from .graph.batchnorm import BatchNorm
from .graph.findings import LintFinding
from .graph.index import RANDOM_OPS, layer_of
from .graph.values import constant_value
from .judge.causes import EXPLANATIONS, LAST_AXIS_OPS, REDUCTION_OPS, ROW_SELECTION_OPS
from .judge.tolerance import Tolerance, user_tolerance
from .lint import GraphFacts, graph_facts, load
from .load.images import pool_from_dir, synthetic_pool
from .options import CheckConfig
from .result import _jsonable, finite_for_json
from .safety.supervise import stage
from .tfenv import import_tf

RTOL = 1e-4          # a measured difference counts when above atol + RTOL × max|solo value| (default tolerance)
ATOL = 1e-6
HAND_RTOL = 1e-3     # hand computations in float64 against float32 kernels (whatever --atol/--rtol/--exact say)
BATCH_IMAGES = 8     # images in the batch a BatchNorm is explained on
ROW_KINDS = ("batchnorm_training", "batch_reduction", "batch_size", "position", "row_selection")
SHOWN_ATTRS = ("data_format", "epsilon", "is_training", "keep_dims", "begin_mask", "end_mask", "shrink_axis_mask",
               "ellipsis_mask", "new_axis_mask", "axis", "batch_dims", "transpose_a", "transpose_b", "seed", "seed2")


@dataclass
class Explanation:
    """What a node computes; `bool()` is True when its output for an image does not depend on the batch."""
    node: str
    op: str
    kind: str                      # fused | decomposed (BatchNorm) or the op's family
    layer: str
    depends_on_batch: bool | None
    conclusion: str
    parameters: dict = field(default_factory=dict)
    computes: str | None = None    # BatchNorm: batch_statistics | moving_statistics | per_sample_statistics | neither
    attributes: dict = field(default_factory=dict)
    figures: dict = field(default_factory=dict)

    def __bool__(self) -> bool:
        return not self.depends_on_batch

    @property
    def exit_code(self) -> int:
        return 0 if self else 1

    def to_dict(self) -> dict:
        return dict(vars(self))

    def to_json(self) -> str:
        return json.dumps(finite_for_json(self.to_dict()), indent=2, default=_jsonable, allow_nan=False) + "\n"


class Probe:
    """The prepared graph imported once, with a pool of images to run it on, and the tolerance its
    measurements judge with (--atol/--rtol/--exact, else ATOL and RTOL)."""

    def __init__(self, facts: GraphFacts, config: CheckConfig) -> None:
        tf = import_tf()
        prepared = facts.prepared
        self.facts = facts
        self.graph = tf.Graph()
        with self.graph.as_default():
            tf.graph_util.import_graph_def(prepared.graph_def, name="")
        self.session = tf.compat.v1.Session(graph=self.graph)
        spec = prepared.input
        dtype = np.dtype(spec.dtype) if spec.dtype != "bfloat16" else np.dtype(np.float32)
        pool = (pool_from_dir(config.images, spec.per_image_shape, dtype, config.scaling,
                              skip_bad=config.skip_bad_images) if config.images
                else synthetic_pool(spec.per_image_shape, dtype, config.scaling, config.seed))
        if len(pool) < 2:
            raise UsageError(f"--images {config.images}: explain needs at least two images")
        self.images = pool.array
        self.feeds = {self.graph.get_tensor_by_name(n): v for n, v in prepared.feeds.items()}
        self.input = self.graph.get_tensor_by_name(spec.tensor)
        self.tolerance = (user_tolerance(config.atol, config.rtol, config.exact)
                          or Tolerance(ATOL, RTOL, "default", None))

    def close(self) -> None:
        self.session.close()

    def run(self, tensors: list[str], rows: list[int]) -> list[np.ndarray]:
        """`tensors` on the pool images `rows`; `UsageError` when the graph cannot run that batch."""
        tf = import_tf()
        fetches = [self.graph.get_tensor_by_name(t) for t in tensors]
        try:
            return self.session.run(fetches, {self.input: self.images[rows], **self.feeds})
        except tf.errors.OpError as exc:
            raise UsageError(f"explain runs the node on batches of 1, 2 and 8 images, and the graph fails on a "
                             f"batch of {len(rows)} ({op_error_text(exc)}); a graph fixed to one batch size cannot "
                             f"be explained this way: `batchcheck check` tests it at its own batch") from None

    def mixes_rows(self, tensors: list[str]) -> dict[str, dict]:
        """Per tensor: does image 0's value change when image 1 joins the batch? (4 runs for all tensors)"""
        solo_a, solo_b, pair, swapped = (self.run(tensors, rows) for rows in ([0], [1], [0, 1], [1, 0]))
        results = {}
        for i, tensor in enumerate(tensors):
            axis = batch_axis(self.facts.shapes.get(tensor))
            if axis is not None and pair[i].shape[axis] == 2:
                diffs = [_max_diff(np.take(pair[i], row, axis), np.take(solo[i], 0, axis))
                         for row, solo in ((0, solo_a), (1, solo_b))]
                scale = max(_max_abs(solo_a[i]), _max_abs(solo_b[i]))
                how = "rows of a batch of two vs each image alone"
            else:
                diffs = [_max_diff(pair[i], solo_a[i]), _max_diff(pair[i], swapped[i])]
                scale = _max_abs(solo_a[i])
                how = "whole output: batch of two vs the first image alone, and vs the batch swapped"
            worst = max(diffs)
            results[tensor] = {"mixes_rows": bool(worst > self.tolerance.allowed(scale)), "max_abs_diff": worst,
                               "max_abs_value": scale, "batch_axis": axis, "compared": how,
                               "tolerance": self.judged_with()}
        return results

    def varies_between_runs(self, tensor: str) -> dict:
        first, second = (self.run([tensor], [0])[0] for _ in range(2))
        worst = _max_diff(first, second)
        return {"differs_between_runs": bool(worst > self.tolerance.allowed(_max_abs(first))), "max_abs_diff": worst,
                "tolerance": self.judged_with()}

    def judged_with(self) -> dict:
        """The tolerance a difference is judged with: atol + rtol × max|value|, and where it came from."""
        return {"atol": self.tolerance.atol, "rtol": self.tolerance.rtol, "source": self.tolerance.source}


def confirm_findings(facts: GraphFacts, findings: list[LintFinding], config: CheckConfig) -> list[LintFinding]:
    """Run each runtime-confirmable finding once: rows mixed, or the random value differing run to run."""
    stage("the confirmation runs")
    probe = Probe(facts, config)
    try:
        row_tensors = {f.node: f.evidence.get("output", f"{f.node}:0") for f in findings if f.kind in ROW_KINDS}
        measured = probe.mixes_rows(sorted(set(row_tensors.values()))) if row_tensors else {}
        confirmed = []
        for finding in findings:
            if finding.kind in ROW_KINDS:
                figures = measured[row_tensors[finding.node]]
                finding = finding.confirm(figures["mixes_rows"], measured=figures)
            elif finding.kind == "random_op":
                reached = f"{finding.evidence['reaches']}:0"
                figures = probe.varies_between_runs(reached)
                if not figures["differs_between_runs"]:  # a stateless mask: the same every run, but per batch
                    figures.update(probe.mixes_rows([reached])[reached])
                finding = finding.confirm(figures["differs_between_runs"] or figures.get("mixes_rows", False),
                                          measured=figures)
            confirmed.append(finding)
        return confirmed
    finally:
        probe.close()


def explain(path: Path | str, config: CheckConfig | None = None, node: str | None = None) -> Explanation:
    """Explain `node` (default: the first divergent node a short check finds) of the model at `path`."""
    config = config or CheckConfig()
    if node is None:
        node = _first_divergent(path, config)
        if node is None:
            return Explanation("", "", "none", "", False, "no node diverges: the model is batch-invariant on "
                               "a short check; name a node with --node to explain it")
    _, prepared = load(path, config)
    facts = graph_facts(prepared, config.feeds)
    if node not in facts.index:
        raise UsageError(f"--node `{node}`: no such node in the graph the outputs need"
                         f"{did_you_mean(node, facts.index.nodes)}")
    if node not in facts.live:
        raise UsageError(f"--node `{node}`: it does not run for these outputs and feeds (an untaken cond branch?); "
                         f"choose a node that runs, or change --feed")
    stage(f"the measurement of node `{node}`")
    probe = Probe(facts, config)
    try:
        norm = next((bn for bn in facts.norms if node == bn.name or node in bn.nodes), None)
        return _explain_batchnorm(probe, norm) if norm else _explain_op(probe, node)
    finally:
        probe.close()


def _first_divergent(path: Path | str, config: CheckConfig) -> str | None:
    from dataclasses import replace

    from .checker import Checker

    checker = Checker.open(path, replace(config, trials=min(config.trials, 3)))
    try:
        result = checker.check()
    finally:
        checker.close()
    return result.first_divergence.node if result.first_divergence else None


def _explain_batchnorm(probe: Probe, bn: BatchNorm) -> Explanation:
    rows = list(range(min(BATCH_IMAGES, len(probe.images))))
    x, y = (value.astype(np.float64) for value in probe.run([bn.input, bn.output], rows))
    channel_axis = 1 if bn.data_format.startswith("NC") and bn.kind == "fused" else x.ndim - 1
    axes = tuple(bn.axes) if bn.axes else tuple(a for a in range(x.ndim) if a != channel_axis)
    shape = [1] * x.ndim
    shape[channel_axis] = -1
    gamma = bn.gamma.value.reshape(shape) if bn.gamma.value is not None and not bn.gamma.absent else 1.0
    beta = bn.beta.value.reshape(shape) if bn.beta.value is not None and bn.beta.value.size else 0.0
    epsilon = bn.epsilon or 0.0
    own = (x - x.mean(axes, keepdims=True)) / np.sqrt(x.var(axes, keepdims=True) + epsilon) * gamma + beta
    moving_mean, moving_variance, moving_source = _moving_statistics(probe.facts, bn)
    by_moving = (None if moving_mean is None else
                 (x - moving_mean.reshape(shape)) / np.sqrt(moving_variance.reshape(shape) + epsilon) * gamma + beta)
    tolerance = HAND_RTOL * max(1.0, _max_abs(y))
    d_own = _max_diff(y, own)
    d_moving = None if by_moving is None else _max_diff(y, by_moving)
    own_name = "per_sample_statistics" if bn.per_sample else "batch_statistics"
    if d_own <= tolerance and (d_moving is None or d_own <= d_moving):
        computes = own_name
    elif d_moving is not None and d_moving <= tolerance:
        computes = "moving_statistics"
    else:
        computes = "neither"
    own_text = "each image's own statistics" if bn.per_sample else "the batch's statistics"
    figures = {"batch_size": len(rows), "statistics_axes": list(axes), "max_abs_graph_vs_batch_stats": d_own,
               "max_abs_graph_vs_moving_stats": d_moving, "moving_stats_from": moving_source,
               "max_abs_output": _max_abs(y), "tolerance": tolerance}
    moving_text = "moving statistics not in the graph" if d_moving is None else f"max |graph − moving-stats| {d_moving:.2g}"
    verb = {"batch_statistics": f"normalises with {own_text}", "per_sample_statistics": f"normalises with {own_text}",
            "moving_statistics": "normalises with the moving statistics", "neither": "matches neither computation"}[computes]
    conclusion = f"this node {verb}: max |graph − batch-stats| {d_own:.2g}, {moving_text} ({len(rows)} images)"
    return Explanation(bn.name, bn.op, bn.kind, bn.layer, computes == "batch_statistics", conclusion,
                       bn.parameters(), computes, {"input": bn.input, "output": bn.output,
                                                   "producer": bn.producer, "per_sample": bn.per_sample}, figures)


def _moving_statistics(facts: GraphFacts, bn: BatchNorm):
    """The moving mean/variance: the node's own constants, else a sibling BN's in the same layer (the other
    branch of an is_training cond)."""
    for candidate in [bn] + [o for o in facts.norms if o.layer == bn.layer and o is not bn]:
        mean, variance = candidate.mean.value, candidate.variance.value
        if candidate.training.origin != "moments" and mean is not None and variance is not None and mean.size:
            return mean.astype(np.float64), variance.astype(np.float64), candidate.mean.node
    return None, None, None


def _explain_op(probe: Probe, node: str) -> Explanation:
    index = probe.facts.index
    info, definition = index.nodes[node], index.defs[node]
    attributes = {key: _attr_value(definition.attr[key]) for key in SHOWN_ATTRS if key in definition.attr}
    constants = {source: constant_value(index, source) for source, _ in info.data_inputs[1:]}
    attributes["constant_inputs"] = {source: value.tolist() for source, value in constants.items()
                                     if value is not None and value.size <= 16}
    inputs = [f"{s}:{o}" for s, o in info.data_inputs]
    attributes["input_shapes"] = {t: _shape_text(probe.facts.shapes.get(t)) for t in inputs}
    attributes["output_shape"] = _shape_text(probe.facts.shapes.get(f"{node}:0"))
    tensor = f"{node}:0"
    measured = probe.mixes_rows([tensor])[tensor]
    mixes = measured["mixes_rows"]
    if info.op in RANDOM_OPS:
        batch_diff = measured["max_abs_diff"]
        measured.update(probe.varies_between_runs(tensor))
        conclusion = (f"{info.op} is random: its values differ between two runs of the same image "
                      f"(max |diff| {measured['max_abs_diff']:.2g})" if measured["differs_between_runs"] else
                      f"{info.op} is random but seeded: the same on every run, yet drawn for the whole batch, so "
                      f"image 0's values change by up to {batch_diff:.2g} when another image joins the batch"
                      if mixes else f"{info.op} is random but gave the same values on every run and in a batch")
        seeded = not measured["differs_between_runs"]  # only then do its differences come from the batch
        return Explanation(node, info.op, "random", layer_of(node), mixes if seeded else None,
                           conclusion + "; lint says whether they reach the data", attributes=attributes,
                           figures=measured)
    conclusion = (f"{info.op} mixes rows: image 0's output changes by up to {measured['max_abs_diff']:.2g} "
                  f"when another image joins the batch" if mixes else
                  f"{info.op} does not mix rows (max |diff| {measured['max_abs_diff']:.2g})")
    static = batch_mixing(index, probe.facts.shapes, probe.facts.kinds, {node})
    if static:
        explanation, fix = EXPLANATIONS[static[0].cause]
        attributes["cause"] = static[0].cause
        conclusion += f"; {static[0].cause}: {explanation}; fix: {fix}"
    return Explanation(node, info.op, _family(info.op), layer_of(node), mixes, conclusion,
                       attributes=attributes, figures=measured)


def _family(op: str) -> str:
    return ("reduction" if op in REDUCTION_OPS else "softmax" if op in LAST_AXIS_OPS else
            "slice" if op in ROW_SELECTION_OPS else "op")


def _attr_value(attr):
    kind = attr.WhichOneof("value")
    if kind == "list":
        return list(attr.list.i) or [s.decode() for s in attr.list.s] or list(attr.list.f)
    value = getattr(attr, kind) if kind else None
    return value.decode() if isinstance(value, bytes) else value


def _shape_text(shape) -> str:
    return "unknown" if shape is None else "[" + ",".join("?" if d is None else str(d) for d in shape) + "]"


def _max_diff(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        return float("inf")
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))


def _max_abs(a: np.ndarray) -> float:
    return float(np.max(np.abs(a.astype(np.float64)))) if a.size else 0.0
