"""Static analysis of a GraphDef: edges, topological order, which tensors to compare, layers.

Works on the protobuf alone (no session), so it is cheap and testable on any graph.
"""
from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field
from typing import Iterable

SHAPE_OPS = frozenset({"Shape", "ShapeN", "Size", "Rank", "TensorArraySizeV3"})
# Stateless random ops draw the same values for the same seed (Keras 3's dropout, frozen with its seed): run
# to run they agree, but a mask drawn for the whole batch gives an image a different mask in each batch.
STATELESS_RANDOM_OPS = frozenset({
    "StatelessRandomUniform", "StatelessRandomUniformV2", "StatelessRandomNormal", "StatelessRandomNormalV2",
    "StatelessTruncatedNormal", "StatelessTruncatedNormalV2", "StatelessRandomUniformInt",
    "StatelessRandomUniformIntV2", "StatelessRandomUniformFullInt", "StatelessRandomUniformFullIntV2",
    "StatelessMultinomial", "StatelessRandomBinomial", "StatelessRandomGammaV2", "StatelessRandomGammaV3",
    "StatelessRandomPoisson", "StatelessParameterizedTruncatedNormal", "StatelessShuffle",
})
RANDOM_OPS = STATELESS_RANDOM_OPS | {
    "RandomUniform", "RandomUniformInt", "RandomStandardNormal", "TruncatedNormal",
    "RandomShuffle", "Multinomial", "RandomGamma", "RandomGammaGrad", "RandomPoisson",
    "RandomPoissonV2", "RandomCrop", "ParameterizedTruncatedNormal", "RandomBinomial",
}
PLACEHOLDER_OPS = frozenset({"Placeholder", "PlaceholderV2", "PlaceholderWithDefault"})
LOOP_ENTRY_OPS = frozenset({"Enter", "RefEnter"})
LOOP_EXIT_OPS = frozenset({"Exit", "RefExit"})
BACK_EDGE_OPS = frozenset({"NextIteration", "RefNextIteration"})
SWITCH_OPS = frozenset({"Switch", "RefSwitch"})
MERGE_OPS = frozenset({"Merge", "RefMerge"})
VARIABLE_OPS = frozenset({"VariableV2", "Variable", "VarHandleOp"})
# Ops that produce no comparable value, or whose values are bookkeeping.
SKIPPED_OPS = frozenset({"Const", "NoOp", "Assert", "Print", "PrintV2", "Placeholder", "PlaceholderV2"})
# Ops after which grappler may fuse their input away (Conv+BiasAdd+Relu, Conv+BN+Relu, BN arithmetic):
# a tensor whose only consumer is one of these is not a fusion boundary.
FUSABLE_FOLLOWERS = frozenset({
    "BiasAdd", "BiasAddV1", "FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3",
    "Relu", "Relu6", "Elu", "Selu", "LeakyRelu", "Tanh", "Sigmoid", "Softplus", "Identity",
    "Add", "AddV2", "Sub", "Mul", "Maximum", "Minimum", "Cast", "Squeeze", "Rsqrt", "Neg",
})
# Name-scope parts that describe the inside of a layer rather than the layer itself.
INNER_SCOPES = re.compile(r"^(moments|batchnorm|BatchNorm|batch_norm|cond(_\d+)?|then|else|"
                          r"Switch(_\d+)?|Merge(_\d+)?|switch_(t|f)|pivot_(t|f)|_\d+)$")
NON_VALUE_DTYPES = frozenset({7, 20, 21})  # DT_STRING, DT_RESOURCE, DT_VARIANT


def split_input(name: str) -> tuple[str, int, bool]:
    """`'^a'` → ('a', -1, True); `'a:1'` → ('a', 1, False); `'a'` → ('a', 0, False)."""
    if name.startswith("^"):
        return name[1:], -1, True
    node, _, index = name.partition(":")
    return node, int(index) if index else 0, False


def tensor_name(name: str) -> str:
    """Canonical `node:index` for a node or tensor name."""
    node, index, _ = split_input(name)
    return f"{node}:{max(index, 0)}"


def layer_of(node_name: str) -> str:
    """The layer a node belongs to: its name scope, without inner parts like `BatchNorm/moments`."""
    parts = node_name.split("/")[:-1]
    while len(parts) > 1 and INNER_SCOPES.match(parts[-1]):
        parts.pop()
    return "/".join(parts) if parts else node_name


@dataclass
class NodeInfo:
    """One node with its edges split into data and control."""
    name: str
    op: str
    data_inputs: list[tuple[str, int]]
    control_inputs: list[str]
    consumers: set[str] = field(default_factory=set)
    data_consumers: dict[int, int] = field(default_factory=dict)  # output index -> consumer count


class GraphIndex:
    """Edges and orders of a GraphDef, computed once."""

    def __init__(self, graph_def) -> None:
        self.graph_def = graph_def
        self.nodes: dict[str, NodeInfo] = {}
        self.defs = {}
        for node in graph_def.node:
            data, control = [], []
            for raw in node.input:
                source, index, is_control = split_input(raw)
                (control if is_control else data).append(source if is_control else (source, index))
            self.nodes[node.name] = NodeInfo(node.name, node.op, data, control)
            self.defs[node.name] = node
        for info in self.nodes.values():
            for source, index in info.data_inputs:
                if source in self.nodes:
                    self.nodes[source].consumers.add(info.name)
                    counts = self.nodes[source].data_consumers
                    counts[index] = counts.get(index, 0) + 1
            for source in info.control_inputs:
                if source in self.nodes:
                    self.nodes[source].consumers.add(info.name)
        self.order = self._topological_order()
        self.position = {name: i for i, name in enumerate(self.order)}

    def __contains__(self, name: str) -> bool:
        return name in self.nodes

    def _topological_order(self) -> list[str]:
        """Kahn's order, ignoring loop back edges (NextIteration → Merge); ties keep GraphDef order."""
        sources = {
            name: {s for s, _ in info.data_inputs
                   if s in self.nodes and self.nodes[s].op not in BACK_EDGE_OPS}
            | {s for s in info.control_inputs if s in self.nodes}
            for name, info in self.nodes.items()
        }
        dependants: dict[str, list[str]] = {name: [] for name in self.nodes}
        for name, node_sources in sources.items():
            for source in node_sources:
                dependants[source].append(name)
        pending = {name: len(node_sources) for name, node_sources in sources.items()}
        ready = deque(name for name in self.nodes if pending[name] == 0)
        order: list[str] = []
        while ready:
            name = ready.popleft()
            order.append(name)
            for dependant in dependants[name]:
                pending[dependant] -= 1
                if pending[dependant] == 0:
                    ready.append(dependant)
        placed = set(order)
        return order + [name for name in self.nodes if name not in placed]

    def descendants(self, roots: Iterable[str]) -> set[str]:
        """Every node reachable from `roots` by data or control edges, the roots included."""
        return self._reach(roots, lambda info: info.consumers)

    def ancestors(self, roots: Iterable[str]) -> set[str]:
        """Every node `roots` depend on (data and control), the roots included."""
        return self._reach(roots, lambda info: [s for s, _ in info.data_inputs] + info.control_inputs)

    def _reach(self, roots: Iterable[str], neighbours) -> set[str]:
        seen: set[str] = set()
        stack = [r for r in roots if r in self.nodes]
        while stack:
            name = stack.pop()
            if name not in seen:
                seen.add(name)
                stack.extend(n for n in neighbours(self.nodes[name]) if n in self.nodes)
        return seen

    def output_dtypes(self, name: str) -> list[int]:
        """Output dtypes (DataType enums) of a node, from its attrs where the op makes them plain."""
        node = self.defs[name]
        attr = node.attr
        if node.op in SWITCH_OPS:
            return [attr["T"].type] * 2
        if node.op in MERGE_OPS:
            return [attr["T"].type, 3]
        if node.op == "ShapeN":
            return [attr["out_type"].type] * attr["N"].i
        for key in ("dtype", "T", "out_type", "DstT", "Tout", "output_type"):
            if key in attr and attr[key].type:
                count = 1
                if node.op.startswith("FusedBatchNorm"):
                    count = 6 if node.op == "FusedBatchNormV3" else 5
                elif node.op == "Unpack":
                    count = attr["num"].i
                elif node.op in ("Split", "SplitV"):
                    count = attr["num_split"].i
                elif node.op == "TopKV2":
                    return [attr["T"].type, 3]
                elif node.op in ("Unique",):
                    return [attr["T"].type, attr["out_idx"].type]
                return [attr[key].type] * count
        if "Tout" in attr and attr["Tout"].list.type:
            return list(attr["Tout"].list.type)
        if "output_types" in attr and attr["output_types"].list.type:
            return list(attr["output_types"].list.type)
        return []


def value_kinds(index: GraphIndex, input_node: str) -> dict[str, str]:
    """Classify each node's value: 'data' (depends on the input's values), 'random' (on randomness
    but not on the input's values), 'shape' (on the input only through its shape), or 'const'.

    Loop back edges (NextIteration → Merge) count too: a while loop whose state starts from zeros
    but takes in data on each step outputs data, so passes repeat until no kind changes."""
    kinds: dict[str, str] = {}
    changed = True
    while changed:
        changed = False
        for name in index.order:
            kind = _value_kind(index.nodes[name], kinds, name == input_node)
            if kinds.get(name) != kind:
                kinds[name], changed = kind, True
    return kinds


def _value_kind(info: NodeInfo, kinds: dict[str, str], is_input: bool) -> str:
    source_kinds = {kinds.get(s, "const") for s, _ in info.data_inputs}
    if is_input:
        return "data"
    if info.op in SHAPE_OPS:
        return "shape" if source_kinds - {"const"} else "const"
    if "data" in source_kinds:
        return "data"
    if info.op in RANDOM_OPS or "random" in source_kinds:
        return "random"
    return "shape" if "shape" in source_kinds else "const"


def loop_frame_nodes(index: GraphIndex) -> set[str]:
    """Nodes inside TF1 while-loop frames (between Enter and Exit): not fetchable from outside."""
    inside: set[str] = set()
    stack = [n for n, info in index.nodes.items() if info.op in LOOP_ENTRY_OPS]
    while stack:
        name = stack.pop()
        if name in inside:
            continue
        inside.add(name)
        if index.nodes[name].op not in LOOP_EXIT_OPS:
            stack.extend(index.nodes[name].consumers)
    return {n for n in inside if index.nodes[n].op not in LOOP_EXIT_OPS}


def dead_nodes(index: GraphIndex, branch_taken: dict[str, bool]) -> set[str]:
    """Nodes that produce no value because they sit in the untaken branch of a TF1 cond.

    `branch_taken` maps Switch node names to their predicate; unknown Switches count as live both ways.
    """
    dead_outputs: set[tuple[str, int]] = set()
    dead: set[str] = set()
    for name in index.order:
        info = index.nodes[name]
        inputs_dead = [(s, i) in dead_outputs or s in dead for s, i in info.data_inputs]
        control_dead = any(s in dead for s in info.control_inputs)
        if info.op in MERGE_OPS:
            if info.data_inputs and all(inputs_dead):
                dead.add(name)
            continue
        if any(inputs_dead) or control_dead:
            dead.add(name)
            continue
        if info.op in SWITCH_OPS and name in branch_taken:
            dead_outputs.add((name, 0 if branch_taken[name] else 1))
    return dead


def switch_predicates(index: GraphIndex) -> dict[str, str]:
    """Switch node → its predicate tensor name."""
    return {name: f"{info.data_inputs[1][0]}:{info.data_inputs[1][1]}"
            for name, info in index.nodes.items()
            if info.op in SWITCH_OPS and len(info.data_inputs) == 2}


def is_fusion_boundary(index: GraphIndex, node: str, output: int) -> bool:
    """True unless grappler may fuse this tensor into its single consumer (so comparing it would
    stop the fusion): the tensors worth watching on every trial."""
    info = index.nodes[node]
    if info.data_consumers.get(output, 0) != 1 or len(info.consumers) != 1:
        return True
    (consumer,) = info.consumers
    return index.nodes[consumer].op not in FUSABLE_FOLLOWERS
