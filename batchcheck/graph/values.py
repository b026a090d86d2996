"""Values read from a graph without running it: constants behind Identity-like hops, placeholder
defaults, the flag behind a cond predicate, and the cond Switch a node's inputs come through."""
from __future__ import annotations

import numpy as np

from . import kinds
from .index import GraphIndex

CONSTANT_HOPS = frozenset({kinds.IDENTITY, kinds.SWITCH})


def constant_value(index: GraphIndex, name: str) -> np.ndarray | None:
    """The value of `name` when it is a constant, possibly behind Identity/Switch hops."""
    return index.constant(skip_kinds(index, name, CONSTANT_HOPS))


def placeholder_default(index: GraphIndex, name: str) -> str | None:
    """A PlaceholderWithDefault's scalar default as text (`true`, `0.5`), else None."""
    info = index.nodes[name]
    value = constant_value(index, info.data_inputs[0][0]) if info.kind == kinds.INPUT_WITH_DEFAULT else None
    if value is None or value.size != 1:
        return None
    item = value.reshape(-1)[0].item()
    return str(item).lower() if isinstance(item, bool) else str(item)


def branch_switch(index: GraphIndex, node: str, depth: int = 4) -> tuple[str, bool] | None:
    """(Switch node, branch taken) when `node`'s inputs come from a cond Switch within a few Identity hops."""
    for source, output in index.nodes[node].data_inputs:
        for _ in range(depth):
            info = index.nodes.get(source)
            if info is None:
                break
            if info.kind == kinds.SWITCH:
                return source, output == 1
            if info.kind != kinds.IDENTITY or not info.data_inputs:
                break
            source, output = info.data_inputs[0]
    return None


FLAG_HOPS = frozenset({kinds.IDENTITY, kinds.SWITCH, kinds.LOGICAL_NOT, kinds.CAST, kinds.SQUEEZE})


def branch_flags(index: GraphIndex, node: str, input_node: str) -> list[str]:
    """The placeholders (other than the input) behind the cond predicates that choose the branch `node` runs in."""
    predicates = {index.nodes[s].data_inputs[1][0] for s in index.ancestors([node])
                  if index.nodes[s].kind == kinds.SWITCH and len(index.nodes[s].data_inputs) == 2}
    return sorted(n for n in index.ancestors(predicates) if index.nodes[n].kind in kinds.PLACEHOLDERS and n != input_node)


def flag_of(index: GraphIndex, predicate: str) -> str | None:
    """The placeholder a cond predicate comes from (through Identity/LogicalNot/Cast), if any."""
    seen = 0
    while predicate in index and seen < 8:
        info = index.nodes[predicate]
        if info.kind in kinds.PLACEHOLDERS:
            return predicate
        if not info.data_inputs or info.kind not in FLAG_HOPS:
            return None
        predicate, seen = info.data_inputs[0][0], seen + 1
    return None


def skip_kinds(index: GraphIndex, name: str, hops) -> str:
    """`name`, or what it forwards to through a chain of nodes of the kinds `hops` (Identity and the like)."""
    seen = 0
    while name in index and index.nodes[name].kind in hops and index.nodes[name].data_inputs and seen < 16:
        name, seen = index.nodes[name].data_inputs[0][0], seen + 1
    return name
