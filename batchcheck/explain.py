"""`explain`: what one node does with the batch, measured on real images.

For a BatchNorm: its parameters and mode, then its actual output against two computations by hand
in NumPy (with the moving statistics, and with the batch's own mean/variance). For any other node: its
attributes and axes, and whether its output for an image changes when a second image joins the batch
(the `Probe` that also confirms lint's findings).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import UsageError, did_you_mean
from .graph import kinds
from .graph.batch_rules import batch_mixing
from .graph.batchnorm import BatchNorm
from .graph.index import layer_of
from .graph.values import constant_value
from .load.open import backend_for, open_model
from .options import CheckConfig
from .probe import GraphFacts, Probe, graph_facts, max_abs, max_diff
from .safety.supervise import stage
from .serial import Report

HAND_RTOL = 1e-3     # hand computations in float64 against float32 kernels (whatever --atol/--rtol/--exact say)
BATCH_IMAGES = 8     # images in the batch a BatchNorm is explained on
SHOWN_ATTRS = ("data_format", "epsilon", "is_training", "keep_dims", "begin_mask", "end_mask", "shrink_axis_mask",
               "ellipsis_mask", "new_axis_mask", "axis", "batch_dims", "transpose_a", "transpose_b", "seed", "seed2")


@dataclass
class Explanation(Report):
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



def explain(path: Path | str, config: CheckConfig | None = None, node: str | None = None) -> Explanation:
    """Explain `node` (default: the first divergent node a short check finds) of the model at `path`."""
    config = config or CheckConfig()
    if node is None:
        node = _first_divergent(path, config)
        if node is None:
            return Explanation("", "", "none", "", False, "no node diverges: the model is batch-invariant on "
                               "a short check; name a node with --node to explain it")
    _, prepared = open_model(path, config)
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
    tolerance = HAND_RTOL * max(1.0, max_abs(y))
    d_own = max_diff(y, own)
    d_moving = None if by_moving is None else max_diff(y, by_moving)
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
               "max_abs_output": max_abs(y), "tolerance": tolerance}
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
    info, own = index.nodes[node], index.source.attributes(node)
    attributes = {key: own[key] for key in SHOWN_ATTRS if key in own}
    constants = {source: constant_value(index, source) for source, _ in info.data_inputs[1:]}
    attributes["constant_inputs"] = {source: value.tolist() for source, value in constants.items()
                                     if value is not None and value.size <= 16}
    inputs = [f"{s}:{o}" for s, o in info.data_inputs]
    attributes["input_shapes"] = {t: _shape_text(probe.facts.shapes.get(t)) for t in inputs}
    attributes["output_shape"] = _shape_text(probe.facts.shapes.get(f"{node}:0"))
    tensor = f"{node}:0"
    measured = probe.mixes_rows([tensor])[tensor]
    mixes = measured["mixes_rows"]
    if info.kind in kinds.RANDOMS:
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
    static = batch_mixing(index, probe.facts.shapes, probe.facts.values, {node})
    if static:
        explanation, fix = backend_for(probe.facts.prepared).explanation(index, node, static[0].cause)
        attributes["cause"] = static[0].cause
        conclusion += f"; {static[0].cause}: {explanation}; fix: {fix}"
    return Explanation(node, info.op, _family(info.kind), layer_of(node), mixes, conclusion,
                       attributes=attributes, figures=measured)


def _family(kind: str) -> str:
    return ("reduction" if kind == kinds.REDUCE else "softmax" if kind == kinds.ALONG_AXIS else
            "slice" if kind in kinds.ROW_SELECTION else "op")


def _shape_text(shape) -> str:
    return "unknown" if shape is None else "[" + ",".join("?" if d is None else str(d) for d in shape) + "]"
