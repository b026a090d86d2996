"""The in-graph comparison of one tensor with its cached solo value, as a small template of NodeDefs per
(dtype, rank, batch axis) that the runner stamps once per compared tensor."""
from __future__ import annotations

import numpy as np

from ..tfenv import import_tf


def comparison_template(dtype, rank: int, axis: int | None, blocks: bool = False) -> list:
    """NodeDefs comparing one tensor `value` of `dtype` and `rank` with its cached solo value:
    `assign` caches it, `scale` is max |value|, `diff` is max |rows at positions - solo|. With
    `blocks` the batch is folded with spatial blocks (SpaceToBatchND): the probe's rows are
    b * batch + position for each block b, compared with the solo value's blocks."""
    tf = import_tf()
    graph = tf.Graph()
    with graph.as_default():
        value = tf.compat.v1.placeholder(dtype, [None] * rank, name="value")
        positions = tf.compat.v1.placeholder(tf.int32, [None], name="positions")
        handle = tf.raw_ops.VarHandleOp(dtype=dtype, shape=[None] * rank, name="solo")
        # the probe's row (its batch of copies is the reference when the graph runs at one batch size only)
        solo = value if axis is None or blocks else tf.gather(value, positions[:1], axis=axis)
        tf.raw_ops.AssignVariableOp(resource=handle, value=solo, name="assign")
        cached = tf.raw_ops.ReadVariableOp(resource=handle, dtype=dtype, name="cached")
        if blocks:
            count = tf.shape(cached, out_type=tf.int32)[0]
            batch = tf.shape(value, out_type=tf.int32)[0] // count
            rows = tf.gather(value, positions[:, None] + batch * tf.range(count)[None, :], axis=0)
        else:
            rows = value if axis is None else tf.gather(value, positions, axis=axis)
        # the stamped shape makes TF check at run time that rows never broadcast but along the batch axis
        rows = tf.ensure_shape(rows, [None] * (rank + blocks), name="rows")
        tf.identity(_max_abs(value), name="scale")
        tf.identity(_max_abs_diff(rows, cached), name="diff")
    return list(graph.as_graph_def().node)


def stamped(name: str, index: int) -> str:
    """A template input renamed for target `index` (the shared `positions` stays as it is)."""
    control = name.startswith("^")
    bare = name.lstrip("^")
    renamed = bare if bare.split(":")[0] == "positions" else f"{index}/{bare}"
    return f"^{renamed}" if control else renamed


def add_node(graph_def, name: str, op: str, inputs: list[str]):
    node = graph_def.node.add()
    node.name, node.op = name, op
    node.input.extend(inputs)
    return node


def add_pack(graph_def, name: str, inputs: list[str]) -> None:
    """A float64 vector of the scalar tensors `inputs`."""
    tf = import_tf()
    node = add_node(graph_def, name, "Pack", inputs)
    node.attr["N"].i = len(inputs)
    node.attr["T"].type = tf.float64.as_datatype_enum
    node.attr["axis"].i = 0


def _comparable(tensor):
    """The tensor in a dtype where subtraction and max make sense."""
    tf = import_tf()
    if tensor.dtype.is_bool:
        return tf.cast(tensor, tf.float32)
    if tensor.dtype.is_integer:
        return tf.cast(tensor, tf.float64)
    if tensor.dtype in (tf.float16, tf.bfloat16):
        return tf.cast(tensor, tf.float32)
    return tensor


def _max_abs(tensor):
    """max |x| over the finite values, as float64 (-inf for an empty tensor: clipped by the caller)."""
    tf = import_tf()
    x = _comparable(tensor)
    if x.dtype.is_floating:
        x = tf.where(tf.math.is_finite(x), x, tf.constant(0, x.dtype))
    return tf.cast(tf.reduce_max(tf.abs(x)), tf.float64)


def _max_abs_diff(a, b):
    """max |a - b| as float64, broadcasting b; equal infinities and NaN pairs count as equal,
    a NaN against a number as infinitely far."""
    tf = import_tf()
    a, b = _comparable(a), _comparable(b)
    diff = tf.abs(a - b)
    if diff.dtype.is_floating:
        same = tf.equal(a, b)
        if a.dtype.is_floating:
            same = tf.logical_or(same, tf.logical_and(tf.math.is_nan(a), tf.math.is_nan(b)))
        diff = tf.where(same, tf.constant(0, diff.dtype), diff)
        diff = tf.where(tf.math.is_nan(diff), tf.constant(np.inf, diff.dtype), diff)
    return tf.cast(tf.reduce_max(diff), tf.float64)
