"""Every BatchNorm in a GraphDef, fused or decomposed, with its parameters and where its mode comes from.

Recognised forms:
- fused: `FusedBatchNorm`/`V2`/`V3` (mode from the `is_training` attribute);
- decomposed: `tf.nn.batch_normalization` arithmetic, as Keras, slim `fused=False` and old frozen
  MobileNets write it: `Rsqrt(variance + eps)` [`* gamma`], `x * inv`, `mean * inv`, `beta - …`, `+`;
  its mean/variance are either constants (moving statistics) or `tf.nn.moments` (`Mean` ops), whose
  axes say whether it normalises over the batch (BatchNorm in training mode) or per image
  (LayerNorm, InstanceNorm, GroupNorm);
- the `(x - mean) * Rsqrt(variance + eps)` form GroupNorm code writes;
- the decomposed form with `Rsqrt(variance + eps)` folded into a constant by a converter, `gamma` still
  applied to it (`Const * gamma`): reported with variance `1 / Const²` and epsilon 0, which compute the same.

Works on the neutral graph view alone; constants, flags and cond branches are read with `values`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import kinds
from .index import GraphIndex, layer_of
from .values import (
    CONSTANT_HOPS,
    branch_switch,
    constant_value,
    flag_of,
    placeholder_default,
    skip_kinds,
)

PASS_THROUGH = frozenset({kinds.IDENTITY, kinds.SQUEEZE, kinds.RESHAPE, kinds.EXPAND_DIMS})
PARAMETERS = ("gamma", "beta", "mean", "variance")


@dataclass(frozen=True)
class Parameter:
    """One BN parameter: the node providing it (after Identity-like hops) and its value when constant."""
    node: str | None
    value: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def absent(self) -> bool:
        return self.node is None

    def summary(self) -> dict:
        """JSON-friendly figures: node, channels, min/mean/max (None values when not constant)."""
        if self.value is None or self.value.size == 0:
            return {"node": self.node, "constant": self.value is not None, "channels": 0}
        values = self.value.astype(np.float64)
        return {"node": self.node, "constant": True, "channels": int(values.size),
                "min": float(values.min()), "mean": float(values.mean()), "max": float(values.max())}


@dataclass(frozen=True)
class TrainingSource:
    """Whether a BN normalises with the batch's statistics, and what decides it.

    origin: "attribute" (fused `is_training`, a constant of the node), "moments" (decomposed: mean and
    variance computed by `tf.nn.moments`), "constants" (decomposed with moving statistics), plus, when
    the node sits in a cond branch, the predicate and the placeholder (`flag`) behind it.
    """
    training: bool
    origin: str
    predicate: str | None = None   # the Switch predicate tensor choosing this branch
    branch: bool | None = None     # the predicate value that runs this node
    flag: str | None = None        # the placeholder behind the predicate
    flag_default: str | None = None  # its default (PlaceholderWithDefault), else None

    def describe(self) -> str:
        mode = "is_training=true" if self.training else "is_training=false"
        what = {"attribute": "a constant attribute of the node",
                "moments": "computed from tf.nn.moments of its input",
                "constants": "constant moving statistics"}[self.origin]
        text = f"{mode} ({what})"
        if self.predicate:
            flag = f"; flag `{self.flag}`" + (f" (default {self.flag_default})" if self.flag_default else "")
            text += (f", in the {str(self.branch).lower()} branch of a cond on `{self.predicate}`"
                     f"{flag if self.flag else ''}")
        return text


@dataclass(frozen=True)
class BatchNorm:
    """One BatchNorm (or per-sample normalisation) found in a graph.

    `name` is the node reported for it: the fused node, the `Mean` computing batch moments (where a
    divergence starts), or the final add of a decomposed BN with moving statistics.
    """
    name: str
    op: str
    kind: str                     # "fused" | "decomposed"
    input: str                    # the normalised tensor x, "node:index"
    output: str                   # the normalised result, "node:index"
    gamma: Parameter              # node None: absent, gamma fixed to 1
    beta: Parameter
    mean: Parameter               # moving mean, or the moments' mean node
    variance: Parameter
    epsilon: float | None
    training: TrainingSource
    per_sample: bool              # LayerNorm/InstanceNorm/GroupNorm: statistics of each image alone
    axes: tuple[int, ...] | None  # moments' reduction axes (decomposed with batch statistics)
    producer: str | None          # Conv2D/DepthwiseConv2dNative/MatMul feeding x directly
    nodes: tuple[str, ...]        # the nodes that make up this BN (the fused node alone when fused)
    data_format: str = "NHWC"

    @property
    def layer(self) -> str:
        return layer_of(self.name)

    @property
    def batch_statistics(self) -> bool:
        """True when it normalises each image with statistics over the batch (training-mode BN)."""
        return self.training.training and not self.per_sample

    def parameters(self) -> dict:
        """JSON-friendly parameter summary."""
        gamma = ({"node": None, "absent": True, "value": 1.0} if self.gamma.absent else self.gamma.summary())
        return {"gamma": gamma, "beta": self.beta.summary(), "mean": self.mean.summary(),
                "variance": self.variance.summary(), "epsilon": self.epsilon,
                "is_training": self.training.training, "is_training_source": self.training.describe()}


def find_batchnorms(index: GraphIndex, feeds: dict[str, str] | None = None) -> list[BatchNorm]:
    """Every BatchNorm in `index`, in topological order; `feeds` (node → text value) resolve flags."""
    feeds = feeds or {}
    found: list[BatchNorm] = []
    for name in index.order:
        kind = index.nodes[name].kind
        if kind == kinds.BATCH_NORM:
            found.append(_fused(index, name, feeds))
        elif kind == kinds.RSQRT:
            norm = _decomposed(index, name, feeds)
            if norm is not None:
                found.append(norm)
    claimed = {node for bn in found for node in bn.nodes}
    for name in index.order:
        if index.nodes[name].kind == kinds.CONSTANT and claimed.isdisjoint(_consumers(index, name)):
            norm = _folded_rsqrt(index, name, feeds)
            if norm is not None:
                found.append(norm)
                claimed.update(norm.nodes)
    return sorted(found, key=lambda bn: index.position[bn.name])


# -- fused -------------------------------------------------------------------------------------


def _fused(index: GraphIndex, name: str, feeds: dict[str, str]) -> BatchNorm:
    info = index.nodes[name]
    inputs = [f"{s}:{o}" for s, o in info.data_inputs[:5]]
    training = info.attrs["training"]
    params = [_parameter(index, t.rsplit(":", 1)[0]) for t in inputs[1:5]]
    gamma = params[0]
    if gamma.value is not None and gamma.value.size and np.all(gamma.value == 1) and _is_plain_const(gamma.node):
        gamma = Parameter(None, gamma.value)  # slim scale=False: a Const of ones, no learnt gamma
    data_format = info.attrs["data_format"]
    source = _with_cond(index, TrainingSource(training, "attribute"), name, feeds)
    per_sample = training and _batch_folded_into_channels(index, info.data_inputs[0][0], data_format)
    return BatchNorm(name, info.op, "fused", inputs[0], f"{name}:0", gamma, *params[1:],
                     info.attrs["epsilon"], source, per_sample, None,
                     _producer(index, info.data_inputs[0][0]), (name,), data_format)


def _batch_folded_into_channels(index: GraphIndex, x_node: str, data_format: str) -> bool:
    """tf.keras LayerNormalization: x reshaped to [1, N·…, …] so that each 'channel' is one image."""
    node = skip_kinds(index, x_node, {kinds.IDENTITY})
    if index.nodes[node].kind != kinds.RESHAPE or len(index.nodes[node].data_inputs) < 2:
        return False
    shape_node = index.nodes[node].data_inputs[1][0]
    first = _first_shape_element(index, shape_node)
    channel_axis = 1 if data_format.startswith("NC") else 3
    return first == 1 and channel_axis != 0


def _first_shape_element(index: GraphIndex, shape_node: str) -> int | None:
    value = constant_value(index, shape_node)
    if value is not None and value.size:
        return int(value.reshape(-1)[0])
    info = index.nodes.get(shape_node)
    if info is not None and info.kind == kinds.PACK and info.data_inputs:
        first = constant_value(index, info.data_inputs[0][0])
        return int(first.reshape(-1)[0]) if first is not None and first.size else None
    return None


# -- decomposed --------------------------------------------------------------------------------


def _decomposed(index: GraphIndex, rsqrt: str, feeds: dict[str, str]) -> BatchNorm | None:
    """The BN around `rsqrt = Rsqrt(variance + eps)`, or None when it is not one."""
    add = index.nodes[rsqrt].data_inputs[0][0]
    if index.nodes[add].kind != kinds.ADD or len(index.nodes[add].data_inputs) != 2:
        return None
    operands = [s for s, _ in index.nodes[add].data_inputs]
    eps_values = [constant_value(index, s) for s in operands]
    scalar = [i for i, v in enumerate(eps_values) if v is not None and v.size == 1]
    if not scalar:
        return None
    epsilon = float(eps_values[scalar[-1]].reshape(-1)[0])
    variance_node = operands[1 - scalar[-1]]
    return _around(index, rsqrt, variance_node, _parameter(index, variance_node), epsilon, [add, rsqrt], feeds)


def _folded_rsqrt(index: GraphIndex, const: str, feeds: dict[str, str]) -> BatchNorm | None:
    """The inference BN around `const`, a converter's folded `Rsqrt(variance + eps)` (positive values) that
    gamma multiplies, or None. Either factor would compute the same; one named like gamma is gamma."""
    muls = [c for c in _consumers(index, const) if index.nodes[c].kind == kinds.MUL]
    if not muls or not _is_plain_const(const):
        return None
    value = constant_value(index, const)
    if value is None or value.size < 2 or not np.all(value > 0):
        return None
    if not any(_is_scaled_by_constant(index, c, const) for c in muls):
        return None
    variance = Parameter(const, (1.0 / np.square(value.astype(np.float64))).astype(np.float32))
    norm = _around(index, const, const, variance, 0.0, [const], feeds)
    return norm if norm is not None and not norm.training.training else None


def _is_scaled_by_constant(index: GraphIndex, node: str, inv: str) -> bool:
    if index.nodes[node].kind != kinds.MUL:
        return False
    other = _other_input(index, node, inv)
    return other is not None and constant_value(index, other) is not None


def _around(index: GraphIndex, rsqrt: str, variance_node: str, variance: Parameter, epsilon: float,
            members: list[str], feeds: dict[str, str]) -> BatchNorm | None:
    """The BN whose `Rsqrt(variance + eps)` is `rsqrt` (gamma may multiply it), or None when it is not one."""
    inv, gamma = rsqrt, Parameter(None)
    for consumer in _consumers(index, rsqrt):
        if _is_scaled_by_constant(index, consumer, rsqrt):
            inv, gamma = consumer, _parameter(index, _other_input(index, consumer, rsqrt))
            members.append(consumer)
            break
    form = _affine_form(index, inv) or _centred_form(index, inv)
    if form is None:
        return None
    x, mean_node, output, beta, nodes = form
    members += nodes
    mean = _parameter(index, mean_node)
    moments = _moments_mean(index, mean_node)
    if moments is not None:
        axes = _reduction_axes(index, moments)
        per_sample = axes is not None and 0 not in axes
        source = TrainingSource(True, "moments")
        name = moments
        members += sorted(index.ancestors([variance_node, mean_node]) - index.ancestors([x[0]]))
    else:
        axes, per_sample = None, False
        source = TrainingSource(False, "constants")
        name = output.rsplit(":", 1)[0]
    source = _with_cond(index, source, name, feeds)
    return BatchNorm(name, index.nodes[name].op, "decomposed", f"{x[0]}:{x[1]}", output, gamma, beta, mean,
                     variance, epsilon, source, per_sample, axes, _producer(index, x[0]),
                     tuple(dict.fromkeys(members)))


def _affine_form(index: GraphIndex, inv: str):
    """tf.nn.batch_normalization: x*inv + (beta - mean*inv), or without beta x*inv + -(mean*inv) or, as
    TensorFlow 2 writes it, x*inv + (-mean)*inv."""
    muls = [c for c in _consumers(index, inv) if index.nodes[c].kind == kinds.MUL]
    if len(muls) != 2:
        return None
    for scaled, shifted in (muls, muls[::-1]):
        x = _other_input_tensor(index, scaled, inv)
        mean = _other_input(index, shifted, inv)
        if x is None or mean is None:
            continue
        if index.nodes[mean].kind == kinds.NEG and _looks_like_statistic(index, index.nodes[mean].data_inputs[0][0]):
            for output in _consumers(index, shifted):
                sources = {s for s, _ in index.nodes[output].data_inputs}
                if index.nodes[output].kind == kinds.ADD and sources == {scaled, shifted}:
                    return (x, index.nodes[mean].data_inputs[0][0], f"{output}:0", Parameter(None),
                            [scaled, mean, shifted, output])
        if not _looks_like_statistic(index, mean):
            continue
        for offset in _consumers(index, shifted):
            offset_info = index.nodes[offset]
            beta = Parameter(None)
            if offset_info.kind == kinds.SUB and offset_info.data_inputs[1][0] == shifted:
                beta = _parameter(index, offset_info.data_inputs[0][0])
            elif offset_info.kind != kinds.NEG:
                continue
            for output in _consumers(index, offset):
                sources = {s for s, _ in index.nodes[output].data_inputs}
                if index.nodes[output].kind == kinds.ADD and sources == {scaled, offset}:
                    return x, mean, f"{output}:0", beta, [scaled, shifted, offset, output]
    return None


def _centred_form(index: GraphIndex, inv: str):
    """(x - mean) * inv, as GroupNorm code writes it (affine parameters applied later, if at all)."""
    for consumer in _consumers(index, inv):
        if index.nodes[consumer].kind != kinds.MUL:
            continue
        centred = _other_input(index, consumer, inv)
        if centred is None or index.nodes[centred].kind != kinds.SUB:
            continue
        (x_node, x_out), (mean, _) = index.nodes[centred].data_inputs
        if _moments_mean(index, mean) is not None:
            return (x_node, x_out), mean, f"{consumer}:0", Parameter(None), [centred, consumer]
    return None


def _looks_like_statistic(index: GraphIndex, node: str) -> bool:
    return constant_value(index, node) is not None or _moments_mean(index, node) is not None


def _moments_mean(index: GraphIndex, node: str) -> str | None:
    """The `Mean` node behind `node` (through Squeeze/StopGradient/Identity), if it is one."""
    node = skip_kinds(index, node, PASS_THROUGH)
    info = index.nodes[node]
    return node if info.kind == kinds.REDUCE and info.attrs.get("reduce") == "mean" else None


def _reduction_axes(index: GraphIndex, mean: str) -> tuple[int, ...] | None:
    axes = index.nodes[mean].attrs.get("axes")
    if axes is None:
        return None
    axes = tuple(sorted(axes))
    return axes if all(a >= 0 for a in axes) else None


# -- cond branches and flags -------------------------------------------------------------------


def _with_cond(index: GraphIndex, source: TrainingSource, node: str, feeds: dict[str, str]) -> TrainingSource:
    """`source` plus the cond predicate and flag when `node` takes its input from a Switch."""
    switch = branch_switch(index, node)
    if switch is None:
        return source
    switch_node, branch = switch
    predicate_node, predicate_output = index.nodes[switch_node].data_inputs[1]
    flag = flag_of(index, predicate_node)
    value = feeds.get(flag, placeholder_default(index, flag)) if flag else None
    return TrainingSource(source.training, source.origin, f"{predicate_node}:{predicate_output}", branch, flag, value)


# -- helpers -----------------------------------------------------------------------------------


def _parameter(index: GraphIndex, name: str) -> Parameter:
    node = skip_kinds(index, name, CONSTANT_HOPS)
    return Parameter(node, constant_value(index, node))


def _is_plain_const(node: str | None) -> bool:
    """A Const not named like a learnt variable (slim writes scale=False's gamma as `BatchNorm/Const`)."""
    return node is not None and not node.rsplit("/", 1)[-1].startswith("gamma")


def _consumers(index: GraphIndex, node: str) -> list[str]:
    return sorted(c for c in index.nodes[node].consumers
                  if any(s == node for s, _ in index.nodes[c].data_inputs))


def _other_input_tensor(index: GraphIndex, node: str, known: str) -> tuple[str, int] | None:
    inputs = index.nodes[node].data_inputs
    others = [(s, o) for s, o in inputs if s != known]
    return others[0] if len(inputs) == 2 and len(others) == 1 else None


def _other_input(index: GraphIndex, node: str, known: str) -> str | None:
    other = _other_input_tensor(index, node, known)
    return other[0] if other else None


def _producer(index: GraphIndex, x_node: str) -> str | None:
    node = skip_kinds(index, x_node, {kinds.IDENTITY})
    return node if node in index and index.nodes[node].attrs.get("foldable") else None

