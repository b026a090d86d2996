"""Static batch-dependence causes, from the graph and TensorFlow's shape inference alone (no run).

The batch axis of each tensor is where its inferred shape keeps the input's unknown batch size; a node
mixes rows when it reduces or soft-maxes over that axis (`batch_reduction`), keeps fixed rows of the
batch (`row_selection`), or uses the batch size or the row index as a value (`batch_size`, `position`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..judge.causes import LAST_AXIS_OPS, REDUCTION_OPS, ROW_SELECTION_OPS
from .index import SHAPE_OPS, GraphIndex
from .values import constant_value

MATRIX_OPS = frozenset({"MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3", "Einsum"})
# Ops whose inputs are all values (a shape-derived input is used as a number, not as a size).
VALUE_OPS = frozenset({"Mul", "Add", "AddV2", "Sub", "RealDiv", "Div", "DivNoNan", "Maximum", "Minimum",
                       "Pow", "FloorDiv", "FloorMod", "SquaredDifference", "BiasAdd", "AddN", "MatMul",
                       "Select", "SelectV2"})
# Ops that take a shape or size in these input slots: a value reaches them only through the others.
SIZE_SLOTS = {"Fill": {0}, "BroadcastTo": {1}, "Reshape": {1}, "Tile": {1}, "Pad": {1}, "PadV2": {1},
              "ResizeBilinear": {1}, "ResizeNearestNeighbor": {1}, "ResizeBicubic": {1}, "ResizeArea": {1},
              "RandomUniform": {0}, "RandomStandardNormal": {0}, "TruncatedNormal": {0}}


@dataclass(frozen=True)
class BatchMixing:
    """A node whose output for one image depends on the rest of the batch, found statically."""
    node: str
    op: str
    cause: str        # batch_reduction | row_selection | batch_size | position
    evidence: dict


def static_shapes(graph_def) -> dict[str, tuple[int | None, ...] | None]:
    """Every tensor's shape as TensorFlow infers it on import (None: unknown rank)."""
    from ..tfenv import import_tf

    tf = import_tf()
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(graph_def, name="")
    shapes = {}
    for operation in graph.get_operations():
        for tensor in operation.outputs:
            shape = tensor.shape
            shapes[tensor.name] = None if shape.rank is None else tuple(shape.as_list())
    return shapes


def batch_axis(shape: tuple[int | None, ...] | None) -> int | None:
    """The axis holding the batch: the only unknown size, or the first when several are unknown."""
    if not shape:
        return None
    unknown = [axis for axis, size in enumerate(shape) if size is None]
    return unknown[0] if unknown else None


def batch_mixing(index: GraphIndex, shapes: dict, kinds: dict[str, str], live: set[str]) -> list[BatchMixing]:
    """Nodes among `live` that mix rows of the batch, in topological order."""
    found = []
    for name in index.order:
        if name not in live or kinds.get(name) != "data":
            continue
        cause = _cause(index, name, shapes, kinds)
        if cause is not None:
            found.append(BatchMixing(name, index.nodes[name].op, *cause))
    return found


def _cause(index: GraphIndex, name: str, shapes: dict, kinds: dict[str, str]) -> tuple[str, dict] | None:
    info = index.nodes[name]
    size_inputs = [(s, o) for slot, (s, o) in enumerate(info.data_inputs)
                   if kinds.get(s) == "shape" and info.op in VALUE_OPS]
    for source, _ in size_inputs:
        used = _batch_size_source(index, source, shapes)
        if used is not None:
            return used
    batch_inputs = [(f"{s}:{o}", batch_axis(shapes.get(f"{s}:{o}"))) for s, o in info.data_inputs
                    if kinds.get(s) == "data"]
    batch_inputs = [(t, a) for t, a in batch_inputs if a is not None]
    if not batch_inputs:
        return None
    tensor, axis = batch_inputs[0]
    rank = len(shapes[tensor])
    output_shape = shapes.get(f"{name}:0")
    keeps_batch = output_shape is None or batch_axis(output_shape) is not None
    if info.op in REDUCTION_OPS and len(info.data_inputs) > 1:
        axes = constant_value(index, info.data_inputs[1][0])
        reduced = set(range(rank)) if axes is None else {int(a) % rank for a in np.atleast_1d(axes)}
        if axis in reduced:
            return "batch_reduction", {"input": tensor, "batch_axis": axis, "reduced_axes": sorted(reduced)}
    elif info.op in LAST_AXIS_OPS and axis == rank - 1:
        return "batch_reduction", {"input": tensor, "batch_axis": axis, "softmax_axis": rank - 1}
    elif info.op in ROW_SELECTION_OPS and not keeps_batch:
        return "row_selection", {"input": tensor, "batch_axis": axis, "output_shape": list(output_shape or ())}
    elif info.op in MATRIX_OPS and not keeps_batch:
        return "batch_reduction", {"input": tensor, "batch_axis": axis, "output_shape": list(output_shape or ())}
    return None


def _batch_size_source(index: GraphIndex, value: str, shapes: dict) -> tuple[str, dict] | None:
    """('position' | 'batch_size', evidence) when the shape-derived `value` carries the batch size."""
    seen, stack, shape_nodes, ranges = set(), [value], [], []
    while stack:
        name = stack.pop()
        if name in seen or name not in index:
            continue
        seen.add(name)
        info = index.nodes[name]
        if info.op in SHAPE_OPS:
            shape_nodes.append(name)
            continue
        if info.op == "Range":
            ranges.append(name)
        skipped = SIZE_SLOTS.get(info.op, set())
        stack.extend(s for slot, (s, _) in enumerate(info.data_inputs) if slot not in skipped)
    users = [s for s in shape_nodes if _reads_batch_size(index, s, seen, shapes)]
    if not users:
        return None
    evidence = {"shape_node": users[0], "value": value}
    return ("position", {**evidence, "range": ranges[0]}) if ranges else ("batch_size", evidence)


def _reads_batch_size(index: GraphIndex, shape_node: str, within: set[str], shapes: dict) -> bool:
    """Whether what `shape_node` (Shape/Size of a batched tensor) feeds into `within` keeps the batch size."""
    source, output = index.nodes[shape_node].data_inputs[0]
    axis = batch_axis(shapes.get(f"{source}:{output}"))
    if axis is None:
        return False
    if index.nodes[shape_node].op != "Shape":
        return True
    consumers = [c for c in index.nodes[shape_node].consumers if c in within]
    return any(_selects(index, c, axis) for c in consumers) if consumers else True


def _selects(index: GraphIndex, node: str, axis: int) -> bool:
    """Whether slicing op `node` applied to a shape vector keeps entry `axis`; other ops keep it."""
    info = index.nodes[node]
    values = [constant_value(index, s) for s, _ in info.data_inputs[1:]]
    if info.op == "StridedSlice" and all(v is not None for v in values[:2]):
        begin, end = int(values[0][0]), int(values[1][0])
        attr = index.defs[node].attr
        if attr["shrink_axis_mask"].i & 1:
            return begin == axis
        begin = 0 if attr["begin_mask"].i & 1 else begin
        return axis >= begin and (attr["end_mask"].i & 1 or axis < end)
    if info.op in ("Gather", "GatherV2") and values and values[0] is not None:
        return axis in np.atleast_1d(values[0]).tolist()
    if info.op == "Slice" and len(values) == 2 and all(v is not None for v in values):
        begin, size = int(values[0][0]), int(values[1][0])
        return begin <= axis and (size < 0 or axis < begin + size)
    return True
