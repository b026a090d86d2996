"""Static batch-dependence causes, from the graph and the runtime's shape inference alone (no run).

The batch axis of each tensor is where its inferred shape keeps the input's unknown batch size; a node
mixes rows when it reduces or soft-maxes over that axis (`batch_reduction`), keeps fixed rows of the
batch (`row_selection`), or uses the batch size or the row index as a value (`batch_size`, `position`).
"""
from __future__ import annotations

from dataclasses import dataclass

from . import kinds
from .index import GraphIndex


@dataclass(frozen=True)
class BatchMixing:
    """A node whose output for one image depends on the rest of the batch, found statically."""
    node: str
    op: str
    cause: str        # batch_reduction | row_selection | batch_size | position
    evidence: dict


def batch_axis(shape: tuple[int | None, ...] | None) -> int | None:
    """The axis holding the batch: the only unknown size, or the first when several are unknown."""
    if not shape:
        return None
    unknown = [axis for axis, size in enumerate(shape) if size is None]
    return unknown[0] if unknown else None


def batch_mixing(index: GraphIndex, shapes: dict, values: dict[str, str], live: set[str]) -> list[BatchMixing]:
    """Nodes among `live` that mix rows of the batch, in topological order (`values`: `value_kinds`)."""
    found = []
    folded = folded_tensors(index, shapes)
    for name in index.order:
        if name not in live or values.get(name) != "data":
            continue
        cause = _cause(index, name, shapes, values, folded)
        if cause is not None:
            found.append(BatchMixing(name, index.nodes[name].op, *cause))
    return found


def folded_tensors(index: GraphIndex, shapes: dict) -> set[str]:
    """Reshape outputs that fold the batch into other axes: the input has a batch axis, the output a constant
    leading size and an unknown one further on (a detector head's [1, -1, k], an instance norm's [1, C, 1, -1])."""
    folded = set()
    for name, info in index.nodes.items():
        shape = shapes.get(f"{name}:0")
        if info.kind != kinds.RESHAPE or not info.data_inputs or not shape or shape[0] is None:
            continue
        source, output = info.data_inputs[0]
        if batch_axis(shapes.get(f"{source}:{output}")) is not None and None in shape[1:]:
            folded.add(f"{name}:0")
    return folded


def _cause(index: GraphIndex, name: str, shapes: dict, values: dict[str, str],
           folded: set[str]) -> tuple[str, dict] | None:
    info = index.nodes[name]
    size_inputs = [(s, o) for slot, (s, o) in enumerate(info.data_inputs)
                   if values.get(s) == "shape" and info.kind in kinds.VALUE_KINDS]
    for source, _ in size_inputs:
        used = _batch_size_source(index, source, shapes)
        if used is not None:
            return used
    mixed = [f"{s}:{o}" for s, o in info.data_inputs if f"{s}:{o}" in folded]
    if mixed and info.kind == kinds.REDUCE:  # over a tensor that holds every image's values at once
        return "batch_reduction", {"input": mixed[0], "folded": True}
    batch_inputs = [(f"{s}:{o}", batch_axis(shapes.get(f"{s}:{o}"))) for s, o in info.data_inputs
                    if values.get(s) == "data" and f"{s}:{o}" not in folded]
    batch_inputs = [(t, a) for t, a in batch_inputs if a is not None]
    if not batch_inputs:
        return None
    tensor, axis = batch_inputs[0]
    rank = len(shapes[tensor])
    output_shape = shapes.get(f"{name}:0")
    keeps_batch = output_shape is None or batch_axis(output_shape) is not None
    if info.kind == kinds.REDUCE:
        reduced = reduced_axes(info, rank)
        if axis in reduced:
            return "batch_reduction", {"input": tensor, "batch_axis": axis, "reduced_axes": sorted(reduced)}
    elif info.kind == kinds.ALONG_AXIS and axis == info.attrs["axis"] % rank:
        return "batch_reduction", {"input": tensor, "batch_axis": axis, "softmax_axis": axis}
    elif info.kind in kinds.ROW_SELECTION and not keeps_batch:
        return "row_selection", {"input": tensor, "batch_axis": axis, "output_shape": list(output_shape or ())}
    elif info.kind == kinds.MATMUL and not keeps_batch:
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
        if info.kind == kinds.SHAPE:
            shape_nodes.append(name)
            continue
        if info.kind == kinds.RANGE:
            ranges.append(name)
        skipped = info.attrs.get("size_inputs", ())
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
    if not index.nodes[shape_node].attrs.get("shape_vector"):
        return True
    consumers = [c for c in index.nodes[shape_node].consumers if c in within]
    return any(_selects(index, c, axis) for c in consumers) if consumers else True


def _selects(index: GraphIndex, node: str, axis: int) -> bool:
    """Whether slicing op `node` applied to a shape vector keeps entry `axis`; other ops keep it."""
    info = index.nodes[node]
    if info.kind == kinds.SLICE and info.attrs.get("first_axis") is not None:
        begin, end, shrink = info.attrs["first_axis"]
        if shrink:
            return begin == axis
        return axis >= begin and (end is None or axis < end)
    if info.kind == kinds.GATHER and info.attrs.get("indices") is not None:
        return axis in info.attrs["indices"]
    return True


def reduced_axes(info, rank: int) -> set[int]:
    """The axes a REDUCE node reduces over, for an input of `rank` (every axis when not known statically)."""
    axes = info.attrs.get("axes")
    return set(range(rank)) if axes is None else {int(a) % rank if rank else int(a) for a in axes}
