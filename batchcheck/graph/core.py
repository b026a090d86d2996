"""The batchable core of an export whose preprocessing handles one image (found on the neutral graph; the
backend measures shapes).

DeepLab's export squeezes `ImageTensor` [1,?,?,3] to one image, resizes and pads it, and only then
runs the network from `sub_7` [1,513,513,3]; Object Detection exports unstack the batch into a
`map_fn` loop sized for the shipped batch of 1. The network itself runs with any batch. The core
is the earliest tensor after that preprocessing through which every path from the input to the
network passes; the outputs become the last tensors before postprocessing that needs the original
image again (its size, say).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from . import kinds
from .index import GraphIndex, loop_frame_nodes, value_kinds

RESHAPING = frozenset({kinds.IDENTITY, kinds.EXPAND_DIMS, kinds.SQUEEZE})
FLOAT_DTYPES = frozenset({"float32", "float64", "bfloat16", "float16"})
# (tensors, per-image shapes) -> each tensor's shape on one image of each of two sizes; empty when the graph
# cannot run on its own
ShapesOfTwoSizes = Callable[[list[str]], dict[str, tuple[tuple[int, ...], tuple[int, ...]]]]


@dataclass(frozen=True)
class Core:
    """Where the batchable network starts and ends, and the one-image op that made it necessary."""
    input: str
    shape: tuple[int, ...]  # per image
    outputs: list[str]
    one_image_op: str

    def note(self) -> str:
        return (f"preprocessing `{self.one_image_op}` handles one image; tested from `{self.input}` "
                f"[{','.join(map(str, self.shape))}] to {', '.join(f'`{o}`' for o in self.outputs)}")


def network_ops(index: GraphIndex, start: str) -> set[str]:
    """The conv/matmul/BN nodes downstream of `start`: what a check should reach."""
    return {n for n in index.descendants([start]) if index.nodes[n].kind in kinds.NETWORK}


def one_image_ops(index: GraphIndex, start: str) -> list[str]:
    """Nodes downstream of `start`, feeding the network, that take one image out of the batch."""
    network = network_ops(index, start)
    feeding = index.ancestors(network)
    values = value_kinds(index, start)
    found = []
    for name in index.order:
        if name not in feeding or name == start or name not in index.descendants([start]):
            continue
        info = index.nodes[name]
        squeezes_batch = info.kind == kinds.SQUEEZE and (not info.attrs["axes"] or 0 in info.attrs["axes"])
        unstacks_batch = info.kind == kinds.UNSTACK or info.kind == kinds.UNPACK and info.attrs["axis"] == 0
        if (squeezes_batch or unstacks_batch) and values[name] == "data":
            found.append(name)
    return found


MAX_CANDIDATES = 64  # cut tensors measured; preprocessing may hold dozens before the core


def find_core(index: GraphIndex, input_node: str, outputs: list[str],
              shapes_of_two_sizes: ShapesOfTwoSizes) -> Core | None:
    """The batchable core behind a one-image preprocessing of `input_node`, or None when the
    network already starts at the input (no op takes one image out of the batch).

    Candidates are the tensors through which every path from the input to the network passes; the
    core is the first whose shape stays the same for two images of different sizes (preprocessing
    resizes and pads to the network's size), measured by running the graph on one image of each
    (`shapes_of_two_sizes`, the backend's)."""
    breakers = one_image_ops(index, input_node)
    network = network_ops(index, input_node)
    if not breakers or not network:
        return None
    values = value_kinds(index, input_node)
    skipped = loop_frame_nodes(index) | index.ancestors(breakers)
    candidates = []
    for name in index.order:
        dtypes = index.output_dtypes(name)
        if (name in skipped or values.get(name) != "data" or not dtypes or dtypes[0] not in FLOAT_DTYPES
                or not network <= index.descendants([name])):
            continue
        bypass = _reach_avoiding(index, input_node, name)
        if not bypass & network:
            candidates.append((name, bypass))
        if len(candidates) == MAX_CANDIDATES:
            break
    shapes = shapes_of_two_sizes([name for name, _ in candidates])
    for name, bypass in candidates:
        first, second = shapes.get(name, (None, None))
        if first is None or first != second or len(first) < 2 or first[0] != 1:
            continue
        core_outputs = _outputs_before_postprocessing(index, name, bypass, outputs)
        if core_outputs:
            return Core(name, first[1:], core_outputs, breakers[-1])
    return None


def _reach_avoiding(index: GraphIndex, start: str, avoided: str) -> set[str]:
    """Nodes reachable from `start` along data and control edges without passing through `avoided`."""
    seen: set[str] = set()
    stack = [start]
    while stack:
        name = stack.pop()
        if name in seen or name == avoided:
            continue
        seen.add(name)
        stack.extend(index.nodes[name].consumers)
    return seen


def _outputs_before_postprocessing(index: GraphIndex, core: str, bypass: set[str], outputs: list[str]) -> list[str]:
    """Per model output: itself when it depends on the input only through `core`, else the last
    tensors that do (those feeding postprocessing that reads the original image again)."""
    clean = index.descendants([core]) - bypass
    chosen: list[str] = []
    for output in outputs:
        node = output.rsplit(":", 1)[0]
        if node in clean:
            chosen.append(output)
            continue
        needed = index.ancestors([node])
        for name in sorted(clean & needed, key=index.position.__getitem__):
            if any(c in needed - clean for c in index.nodes[name].consumers):
                while index.nodes[name].kind in RESHAPING and index.nodes[name].data_inputs[0][0] in clean:
                    name = index.nodes[name].data_inputs[0][0]
                chosen.append(f"{name}:0")
    return list(dict.fromkeys(chosen))
