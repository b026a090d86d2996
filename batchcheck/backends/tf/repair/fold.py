"""Fold inference BatchNorm into the Conv2D, DepthwiseConv2dNative or MatMul right before it (a BiasAdd in
between is allowed): fused BN ops and the decomposed arithmetic (Keras, slim `fused=False`,
`tf.nn.batch_normalization`), as `graph/batchnorm.py` finds them. The weights are scaled per output
channel and one BiasAdd carries the shift."""
from __future__ import annotations

import numpy as np

from ....graph.batchnorm import BatchNorm, constant_value, find_batchnorms
from ....graph.index import GraphIndex
from ....repair.result import Rewrite
from ..graph import graph_index
from .graphdef import (
    add_const,
    drop_identities,
    node_map,
    prune_unused,
    remove_nodes,
    rewire,
    unique_name,
)

LINEAR_OPS = frozenset({"Conv2D", "DepthwiseConv2dNative", "MatMul"})


def fold_batchnorms(graph_def, protected: list[str]) -> tuple[object, list[Rewrite]]:
    """Fold every foldable inference BatchNorm; `protected` (input and output nodes) keep their names.
    Identity chains are dropped and unused nodes pruned."""
    dropped = drop_identities(graph_def, protected)
    index = graph_index(graph_def)
    rewrites = []
    for bn in find_batchnorms(index):
        target = _foldable_into(index, bn)
        if target is not None:
            rewrites.append(_fold(graph_def, index, bn, *target, protected))
    graph_def = prune_unused(graph_def, protected)
    dropped += drop_identities(graph_def, protected)
    if dropped:
        rewrites.append(Rewrite("identity_dropped", dropped, f"{len(dropped)} Identity nodes bypassed"))
    return graph_def, rewrites


def _fold(graph_def, index: GraphIndex, bn: BatchNorm, linear_name: str, bias_add: str | None, tail: str,
          protected: list[str]) -> Rewrite:
    """Scale `linear_name`'s weights by the BN's scale and replace the BN (and `bias_add`) by one BiasAdd
    on `tail` carrying the shift; consumers of the BN read the new BiasAdd."""
    definition = node_map(graph_def)[linear_name]
    weights = constant_value(index, index.nodes[linear_name].data_inputs[1][0])
    channels = _out_channels(definition, weights)
    scale, shift = (np.broadcast_to(v, (channels,)) for v in _scale_and_shift(bn))
    bias = 0.0
    if bias_add:
        bias = constant_value(index, index.nodes[bias_add].data_inputs[1][0]).astype(np.float64)
    layer = linear_name.rsplit("/", 1)[0]
    definition.input[1] = add_const(graph_def, unique_name(graph_def, f"{layer}/folded_weights"),
                                    _scaled_weights(definition, weights, scale))
    end = bn.output.split(":")[0]
    name = end if end in protected else unique_name(graph_def, f"{layer}/folded_bias")
    if end in protected:
        remove_nodes(graph_def, [end])
    bias_name = add_const(graph_def, unique_name(graph_def, f"{name}/bias"), bias * scale + shift)
    node = graph_def.node.add()
    node.name, node.op = name, "BiasAdd"
    node.input.extend([tail, bias_name])
    node.attr["T"].type = definition.attr["T"].type
    if name != end:
        rewire(graph_def, bn.output, name)
    return Rewrite("bn_folded", [linear_name, *bn.nodes],
                   f"`{bn.name}` folded into `{linear_name}` ({definition.op}) and `{name}`")


def _foldable_into(index: GraphIndex, bn: BatchNorm) -> tuple[str, str | None, str] | None:
    """(linear op, BiasAdd or None, node the new BiasAdd reads) that `bn` can be folded into: an inference BN
    with constant parameters whose input is the linear op's output (through the BatchToSpaceND of an atrous
    depthwise conv, or a BiasAdd), used by nothing else."""
    if bn.batch_statistics or bn.per_sample or bn.data_format not in ("NHWC", ""):
        return None
    if any(p.node is not None and p.value is None for p in (bn.gamma, bn.beta, bn.mean, bn.variance)):
        return None
    if bn.mean.value is None or bn.variance.value is None or bn.epsilon is None:
        return None
    if bn.kind == "fused" and set(index.nodes[bn.name].data_consumers) - {0}:
        return None
    source = tail = bn.input.split(":")[0]
    bias_add = None
    if index.nodes[source].op == "BatchToSpaceND" and len(index.nodes[source].consumers) == 1:
        source = index.nodes[source].data_inputs[0][0]
    elif index.nodes[source].op == "BiasAdd" and len(index.nodes[source].consumers) == 1:
        bias_add, source = source, index.nodes[source].data_inputs[0][0]
        if constant_value(index, index.nodes[bias_add].data_inputs[1][0]) is None:
            return None
    info = index.nodes[source]
    if (info.op not in LINEAR_OPS or len(info.consumers) != 1
            or constant_value(index, info.data_inputs[1][0]) is None):
        return None
    attr = index.source.defs[source].attr
    if info.op == "MatMul" and attr["transpose_a"].b:
        return None
    if info.op != "MatMul" and attr["data_format"].s.decode() not in ("", "NHWC"):
        return None
    return source, bias_add, source if tail == bias_add else tail


def _scale_and_shift(bn: BatchNorm) -> tuple[np.ndarray, np.ndarray]:
    """y = x * scale + shift for an inference BN."""
    gamma = 1.0 if bn.gamma.absent else bn.gamma.value.astype(np.float64).reshape(-1)
    beta = 0.0 if bn.beta.absent else bn.beta.value.astype(np.float64).reshape(-1)
    mean, variance = (p.value.astype(np.float64).reshape(-1) for p in (bn.mean, bn.variance))
    scale = gamma / np.sqrt(variance + bn.epsilon)
    return scale, beta - mean * scale


def _out_channels(linear, weights: np.ndarray) -> int:
    if linear.op == "DepthwiseConv2dNative":
        return weights.shape[2] * weights.shape[3]
    if linear.op == "MatMul" and linear.attr["transpose_b"].b:
        return weights.shape[0]
    return weights.shape[-1]


def _scaled_weights(linear, weights: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Weights with each output channel multiplied by its scale."""
    weights = weights.astype(np.float64)
    if linear.op == "DepthwiseConv2dNative":
        return weights * scale.reshape(weights.shape[2:])
    if linear.op == "MatMul" and linear.attr["transpose_b"].b:
        return weights * scale[:, None]
    return weights * scale
