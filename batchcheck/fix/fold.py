"""Fold inference BatchNorm into the Conv2D, DepthwiseConv2dNative or MatMul right before it (a BiasAdd in
between is allowed): fused BN ops, and the frozen `x * multiplier + offset` arithmetic of Keras, slim's
un-fused BN and `tf.nn.batch_normalization`. The weights are scaled and one BiasAdd carries the shift."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..graph.index import GraphIndex
from .graphdef import (FUSED_BATCHNORM_OPS, add_const, const_value, constant_only, drop_identities,
                       evaluate_constants, node_map, prune_unused, rewire, unique_name)
from .result import Rewrite

LINEAR_OPS = frozenset({"Conv2D", "DepthwiseConv2dNative", "MatMul"})
ADD_OPS = frozenset({"Add", "AddV2", "BiasAdd"})


@dataclass(frozen=True)
class Foldable:
    """One BatchNorm to fold: `x * scale + shift` after `linear` (and its BiasAdd, if any)."""
    linear: str
    bias_add: str | None
    nodes: list[str]     # the BN's own nodes (fused op, or Mul and Add)
    end: str             # the node whose output the folded BiasAdd replaces
    scale: str           # tensor of the per-channel multiplier, or the fused BN (see `fused`)
    shift: str | None
    fused: bool = False
    negate_shift: bool = False


def fold_batchnorms(graph_def, protected: list[str]) -> tuple[object, list[Rewrite]]:
    """Fold every foldable BatchNorm; `protected` (input and output nodes) keep their names. Identity chains
    left behind are dropped and unused nodes pruned."""
    index = GraphIndex(graph_def)
    candidates = [f for f in (_foldable(index, name) for name in index.order) if f is not None]
    tensors = sorted({t for f in candidates for t in _constant_tensors(index, f)})
    values = evaluate_constants(graph_def, tensors)
    nodes = node_map(graph_def)
    rewrites = []
    for fold in candidates:
        linear = nodes[fold.linear]
        weights = _weights(index, fold, values)
        channels = _out_channels(linear, weights)
        scale, shift = (np.broadcast_to(v, (channels,)) for v in _scale_and_shift(index, fold, values))
        bias = (values[_bias_tensor(index, fold)] if fold.bias_add else 0.0) * scale + shift
        folded = _scaled_weights(linear, weights, scale)
        linear.input[1] = add_const(graph_def, unique_name(graph_def, f"{fold.linear}/folded_weights"), folded)
        name = fold.end if fold.end in protected else unique_name(graph_def, f"{fold.linear}/folded_bias")
        if fold.end in protected:
            graph_def.node.remove(nodes[fold.end])
        bias_name = add_const(graph_def, unique_name(graph_def, f"{name}/bias"), bias.astype(np.float32))
        node = graph_def.node.add()
        node.name, node.op = name, "BiasAdd"
        node.input.extend([fold.linear, bias_name])
        node.attr["T"].type = linear.attr["T"].type
        if name != fold.end:
            rewire(graph_def, fold.end, name)
        rewrites.append(Rewrite("bn_folded", [fold.linear, *fold.nodes],
                                f"`{fold.nodes[0]}` folded into `{fold.linear}` ({linear.op}) and `{name}`"))
    graph_def = prune_unused(graph_def, protected)
    dropped = drop_identities(graph_def, protected)
    if dropped:
        rewrites.append(Rewrite("identity_dropped", dropped, f"{len(dropped)} Identity nodes bypassed"))
    return graph_def, rewrites


def _single_consumer(index: GraphIndex, name: str) -> str | None:
    consumers = index.nodes[name].consumers
    return next(iter(consumers)) if len(consumers) == 1 else None


def _producer(index: GraphIndex, source: str) -> tuple[str, str | None] | None:
    """(linear op, BiasAdd or None) producing `source`, each consumed only by the next step."""
    bias_add = None
    if index.nodes[source].op == "BiasAdd" and _single_consumer(index, source):
        bias_add, source = source, index.nodes[source].data_inputs[0][0]
        if not constant_only(index, index.nodes[bias_add].data_inputs[1][0]):
            return None
    info = index.nodes[source]
    if info.op not in LINEAR_OPS or not _single_consumer(index, source) or not constant_only(index, info.data_inputs[1][0]):
        return None
    if info.op == "MatMul" and index.defs[source].attr["transpose_a"].b:
        return None
    if info.op != "MatMul" and index.defs[source].attr["data_format"].s.decode() not in ("", "NHWC"):
        return None
    return source, bias_add


def _foldable(index: GraphIndex, name: str) -> Foldable | None:
    info, definition = index.nodes[name], index.defs[name]
    if not info.data_inputs:
        return None
    if info.op in FUSED_BATCHNORM_OPS:
        if (definition.attr["is_training"].b or set(info.data_consumers) - {0}
                or definition.attr["data_format"].s.decode() not in ("", "NHWC")
                or not all(constant_only(index, s) for s, _ in info.data_inputs[1:5])):
            return None
        producer = _producer(index, info.data_inputs[0][0])
        return producer and Foldable(*producer, [name], name, name, None, fused=True)
    if info.op != "Mul" or len(info.data_inputs) != 2:
        return None
    for position in (0, 1):
        source, multiplier = info.data_inputs[position][0], info.data_inputs[1 - position]
        if not constant_only(index, multiplier[0]) or constant_only(index, source):
            continue
        producer = _producer(index, source)
        add = _single_consumer(index, name)
        if not producer or add is None or index.nodes[add].op not in ADD_OPS | {"Sub"}:
            continue
        other = [s for s in index.nodes[add].data_inputs if s[0] != name]
        if len(other) != 1 or not constant_only(index, other[0][0]):
            continue
        if index.nodes[add].op == "Sub" and index.nodes[add].data_inputs[0][0] != name:
            continue
        return Foldable(*producer, [name, add], add, _tensor(multiplier), _tensor(other[0]),
                        negate_shift=index.nodes[add].op == "Sub")
    return None


def _constant_tensors(index: GraphIndex, fold: Foldable) -> list[str]:
    tensors = [_tensor(index.nodes[fold.linear].data_inputs[1])]
    if fold.bias_add:
        tensors.append(_bias_tensor(index, fold))
    if fold.fused:
        tensors += [_tensor(s) for s in index.nodes[fold.scale].data_inputs[1:5]]
    else:
        tensors += [fold.scale, fold.shift]
    return tensors


def _bias_tensor(index: GraphIndex, fold: Foldable) -> str:
    return _tensor(index.nodes[fold.bias_add].data_inputs[1])


def _weights(index: GraphIndex, fold: Foldable, values: dict) -> np.ndarray:
    source = index.nodes[fold.linear].data_inputs[1]
    held = const_value(index, source[0])
    return held if held is not None else values[_tensor(source)]


def _scale_and_shift(index: GraphIndex, fold: Foldable, values: dict) -> tuple[np.ndarray, np.ndarray]:
    if fold.fused:
        gamma, beta, mean, variance = (values[_tensor(s)].astype(np.float64)
                                       for s in index.nodes[fold.scale].data_inputs[1:5])
        epsilon = index.defs[fold.scale].attr["epsilon"].f
        scale = gamma / np.sqrt(variance + epsilon)
        return scale, beta - mean * scale
    scale = values[fold.scale].astype(np.float64).reshape(-1)
    shift = values[fold.shift].astype(np.float64).reshape(-1)
    return scale, -shift if fold.negate_shift else shift


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


def _tensor(source: tuple[str, int]) -> str:
    return f"{source[0]}:{source[1]}"

