"""The neutral graph view: nodes in the neutral vocabulary (`kinds.py`) with their edges, topological order,
value kinds, live branches, loop frames and layers.

A backend builds it from its own model format and answers what needs the runtime (constants, attributes,
inferred shapes) through its `GraphSource`; nothing here imports a runtime.
"""
from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Iterable, Protocol

import numpy as np

from . import kinds

# Name-scope parts that describe the inside of a layer rather than the layer itself.
INNER_SCOPES = re.compile(r"^(moments|batchnorm|BatchNorm|batch_norm|cond(_\d+)?|then|else|"
                          r"Switch(_\d+)?|Merge(_\d+)?|switch_(t|f)|pivot_(t|f)|_\d+)$")
NON_VALUE_DTYPES = frozenset({"string", "resource", "variant"})
# Kinds whose values are not fixed by the graph's constants: what is fed, drawn, stateful or in a loop or branch.
NOT_CONSTANT = kinds.PLACEHOLDERS | kinds.RANDOMS | frozenset({
    kinds.VARIABLE, kinds.SWITCH, kinds.MERGE, kinds.ENTER, kinds.EXIT, kinds.NEXT_ITERATION, kinds.ASSERT,
    kinds.PRINT, kinds.NO_OP})


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


class GraphSource(Protocol):
    """What a backend answers about its own graph, on demand: constants, attributes, inferred shapes."""

    def constant(self, name: str) -> np.ndarray | None:
        """The value of node `name` when it is a `CONSTANT` node (a Const, an initializer), else None."""

    def evaluate(self, name: str) -> np.ndarray | None:
        """The value of node `name`'s first output, computed by the runtime from constants alone (None when the
        runtime cannot: the caller has checked that nothing fed, random or stateful is upstream)."""

    def attributes(self, name: str) -> dict[str, Any]:
        """Node `name`'s own attributes as plain values, for people to read."""

    def static_shapes(self) -> dict[str, tuple[int | None, ...] | None]:
        """Every tensor's shape as the runtime infers it without running (None: unknown rank)."""


@dataclass
class Node:
    """One node of a graph in the neutral vocabulary: the runtime's op, its kind, edges split into data and
    control, and the attributes the rules read (`graph/kinds.py`)."""
    name: str
    op: str
    kind: str
    data_inputs: list[tuple[str, int]]
    control_inputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)
    consumers: set[str] = field(default_factory=set)
    data_consumers: dict[int, int] = field(default_factory=dict)  # output index -> consumer count


class GraphIndex:
    """Edges, orders and values of a graph in the neutral vocabulary, computed once."""

    def __init__(self, nodes: Iterable[Node], source: GraphSource) -> None:
        self.source = source
        self.nodes: dict[str, Node] = {node.name: node for node in nodes}
        self._constants: dict[str, np.ndarray | None] = {}
        self._constant_only: set[str] | None = None
        for info in self.nodes.values():
            for source_name, index in info.data_inputs:
                if source_name in self.nodes:
                    self.nodes[source_name].consumers.add(info.name)
                    counts = self.nodes[source_name].data_consumers
                    counts[index] = counts.get(index, 0) + 1
            for source_name in info.control_inputs:
                if source_name in self.nodes:
                    self.nodes[source_name].consumers.add(info.name)
        self.order = self._topological_order()
        self.position = {name: i for i, name in enumerate(self.order)}

    def __contains__(self, name: str) -> bool:
        return name in self.nodes

    def kind(self, name: str) -> str:
        return self.nodes[name].kind

    def constant(self, name: str) -> np.ndarray | None:
        """Node `name`'s value when it depends on constants only: a constant, or computed from constants alone
        (`Const + 1`, a Dequantize of eight-bit weights, `Fill`), asked of the backend once."""
        if name not in self._constants:
            value = None
            if name in self.nodes:
                value = self.source.constant(name)
                if value is None and self._from_constants(name):
                    value = self.source.evaluate(name)
            self._constants[name] = value
        return self._constants[name]

    def _from_constants(self, name: str) -> bool:
        """Whether everything `name` depends on is a constant: nothing fed, random, stateful or in a loop."""
        if self._constant_only is None:  # one pass in topological order, on first need
            self._constant_only = set()
            for node in self.order:
                info = self.nodes[node]
                sources = [s for s, _ in info.data_inputs] + info.control_inputs
                if info.kind not in NOT_CONSTANT and (info.kind == kinds.CONSTANT or sources) and all(
                        s in self._constant_only for s in sources):
                    self._constant_only.add(node)
        return name in self._constant_only

    def _topological_order(self) -> list[str]:
        """Kahn's order, ignoring loop back edges (NextIteration → Merge); ties keep the graph's order."""
        sources = {
            name: {s for s, _ in info.data_inputs
                   if s in self.nodes and self.nodes[s].kind != kinds.NEXT_ITERATION}
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

    def output_dtypes(self, name: str) -> tuple[str, ...]:
        """The dtype names of a node's outputs, where the backend knows them."""
        return self.nodes[name].attrs.get("dtypes", ())


def value_kinds(index: GraphIndex, input_node: str) -> dict[str, str]:
    """Classify each node's value: 'data' (depends on the input's values), 'random' (on randomness
    but not on the input's values), 'shape' (on the input only through its shape), or 'const'.

    Loop back edges (NextIteration → Merge) count too: a while loop whose state starts from zeros
    but takes in data on each step outputs data, so passes repeat until no kind changes."""
    values: dict[str, str] = {}
    changed = True
    while changed:
        changed = False
        for name in index.order:
            kind = _value_kind(index.nodes[name], values, name == input_node)
            if values.get(name) != kind:
                values[name], changed = kind, True
    return values


def _value_kind(info: Node, values: dict[str, str], is_input: bool) -> str:
    source_kinds = {values.get(s, "const") for s, _ in info.data_inputs}
    if is_input:
        return "data"
    if info.kind == kinds.SHAPE:
        return "shape" if source_kinds - {"const"} else "const"
    if "data" in source_kinds:
        return "data"
    if info.kind in kinds.RANDOMS or "random" in source_kinds:
        return "random"
    return "shape" if "shape" in source_kinds else "const"


def loop_frame_nodes(index: GraphIndex) -> set[str]:
    """Nodes inside TF1 while-loop frames (between Enter and Exit): not fetchable from outside."""
    inside: set[str] = set()
    stack = [n for n, info in index.nodes.items() if info.kind == kinds.ENTER]
    while stack:
        name = stack.pop()
        if name in inside:
            continue
        inside.add(name)
        if index.nodes[name].kind != kinds.EXIT:
            stack.extend(index.nodes[name].consumers)
    return {n for n in inside if index.nodes[n].kind != kinds.EXIT}


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
        if info.kind == kinds.MERGE:
            if info.data_inputs and all(inputs_dead):
                dead.add(name)
            continue
        if any(inputs_dead) or control_dead:
            dead.add(name)
            continue
        if info.kind == kinds.SWITCH and name in branch_taken:
            dead_outputs.add((name, 0 if branch_taken[name] else 1))
    return dead


def switch_predicates(index: GraphIndex) -> dict[str, str]:
    """Switch node → its predicate tensor name."""
    return {name: f"{info.data_inputs[1][0]}:{info.data_inputs[1][1]}"
            for name, info in index.nodes.items()
            if info.kind == kinds.SWITCH and len(info.data_inputs) == 2}
