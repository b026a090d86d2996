"""Fold inference BatchNormalization into the Conv or Gemm right before it, when that node's output feeds nothing
else: its weights are scaled per output channel, its bias carries the shift, and it takes over the BatchNorm's
output (whose readers are untouched)."""
from __future__ import annotations

import numpy as np

from ....repair.result import Rewrite
from ..protos import ORT_DOMAINS, Protos, attribute, training_norm
from .rewrite import add_initializer, set_attribute, value_readers

LINEAR_OPS = frozenset({"Conv", "Gemm"})


def fold_norms(model) -> list[Rewrite]:
    """Fold every foldable inference BatchNormalization; the folded ones are removed from `model`."""
    p, readers = Protos(model), value_readers(model)
    rewrites, folded = [], set()
    for node in list(model.graph.node):
        if node.op_type == "BatchNormalization" and node.domain in ORT_DOMAINS:
            linear = _foldable_into(p, node, readers)
            if linear is not None:
                rewrites.append(_fold(model, p, node, linear))
                folded.add(node.name)
    kept = [n for n in model.graph.node if n.name not in folded]
    del model.graph.node[:]
    model.graph.node.extend(kept)
    return rewrites


def _foldable_into(p: Protos, bn, readers: dict[str, list[str]]):
    """The Conv or Gemm node `bn` can be folded into: an inference BN with constant per-channel parameters whose
    input is that node's only output, read by the BN alone, with constant weights and bias (a Gemm's bias one per
    output column)."""
    if training_norm(bn, p.opset) or attribute(bn, "spatial", 1) == 0 or len(readers.get(bn.input[0], [])) != 1:
        return None
    parameters = [p.constant_input(bn, slot) for slot in (1, 2, 3, 4)]
    if any(v is None for v in parameters) or len({v.size for v in parameters}) != 1:
        return None
    source, port = p.producer.get(bn.input[0], (None, 0))
    linear = p.nodes.get(source)
    if linear is None or port or linear.op_type not in LINEAR_OPS or linear.domain not in ORT_DOMAINS:
        return None
    weights = p.constant_input(linear, 1)
    bias = _bias(p, linear)
    if weights is None or bias is None or weights.ndim < 2:
        return None
    channels = parameters[0].size
    if linear.op_type == "Conv":
        return linear if weights.shape[0] == channels and bias.size in (0, channels) else None
    columns = weights.shape[0] if attribute(linear, "transB", 0) else weights.shape[1]
    per_column = bias.size in (0, 1, columns) and (bias.ndim < 2 or bias.shape[0] == 1)
    return linear if columns == channels and per_column else None


def _bias(p: Protos, linear) -> np.ndarray | None:
    """The Conv's or Gemm's bias (C) as a constant, empty when absent; None when not constant."""
    if len(linear.input) < 3 or not linear.input[2]:
        return np.zeros(0, np.float32)
    return p.constant_input(linear, 2)


def _fold(model, p: Protos, bn, linear) -> Rewrite:
    gamma, beta, mean, variance = (p.constant_input(bn, slot).astype(np.float64) for slot in (1, 2, 3, 4))
    scale = gamma / np.sqrt(variance + float(attribute(bn, "epsilon", 1e-5)))
    shift = beta - mean * scale
    weights = p.constant_input(linear, 1)
    bias = _bias(p, linear).astype(np.float64).reshape(-1)
    if linear.op_type == "Conv":
        scaled = weights * scale.reshape(-1, *[1] * (weights.ndim - 1))
        bias = (bias if bias.size else 0.0) * scale + shift
    else:
        scaled = weights * (scale[:, None] if attribute(linear, "transB", 0) else scale[None, :])
        bias = float(attribute(linear, "beta", 1.0)) * (bias if bias.size else 0.0) * scale + shift
        set_attribute(linear, "beta", 1.0)
    linear.input[1] = add_initializer(model, f"{linear.name}/folded_weight", scaled.astype(weights.dtype))
    bias_name = add_initializer(model, f"{linear.name}/folded_bias", bias.astype(weights.dtype))
    if len(linear.input) > 2:
        linear.input[2] = bias_name
    else:
        linear.input.append(bias_name)
    linear.output[0] = bn.output[0]
    return Rewrite("bn_folded", [linear.name, bn.name], f"`{bn.name}` folded into `{linear.name}` ({linear.op_type})")
