"""Rewrites for inference: training flags → constants (cond branches pruned), dropout and other random
ops on the data path → identity, BatchNorm in training mode → inference mode with given statistics."""
from __future__ import annotations

import numpy as np

from ....graph.batchnorm import BatchNorm, find_batchnorms
from ....graph.index import (
    GraphIndex,
    layer_of,
    split_input,
    value_kinds,
)
from ....repair.result import Rewrite
from ..env import import_tf
from ..graph import MERGE_OPS, PLACEHOLDER_OPS, RANDOM_OPS, SWITCH_OPS, graph_index
from .graphdef import (
    add_const,
    constant_only,
    evaluate_constants,
    make_identity,
    node_map,
    remove_nodes,
    rewire,
)

SCALING_OPS = frozenset({"Mul", "RealDiv", "Div", "TrueDiv"})
NOT_DATA_OPS = frozenset({"ZerosLike", "Fill", "Zeros", "OnesLike"})
DT_BOOL = 10


def batchnorm_scope(bn: BatchNorm) -> str:
    """Where a BN's moving statistics are named: `…/BatchNorm` (slim), `bn0_1` (Keras)."""
    return bn.name.split("/moments/")[0] if "/moments/" in bn.name else bn.name.rsplit("/", 1)[0]


def channel_axis(bn: BatchNorm) -> int:
    """The channel axis of a BN's input (-1 for the last)."""
    if bn.kind == "fused":
        return 1 if bn.data_format.startswith("NC") else -1
    rank = len(bn.axes) + 1
    axis = next(a for a in range(rank) if a not in bn.axes)
    return -1 if axis == rank - 1 else axis


def statistic_tensors(bn: BatchNorm) -> tuple[str, str]:
    """Tensors (mean, variance) that the rewritten graph reads this BN's statistics from."""
    if bn.kind == "fused":
        return f"{bn.name}/inference_mean:0", f"{bn.name}/inference_variance:0"
    return f"{bn.mean.node}:0", f"{bn.variance.node}:0"


def training_batchnorms(index: GraphIndex) -> list[BatchNorm]:
    """Every BatchNorm that normalises with its batch's moments, in topological order."""
    return [bn for bn in find_batchnorms(index) if bn.batch_statistics]


def data_kinds(index: GraphIndex, data_sources: list[str]) -> dict[str, str]:
    """`value_kinds` where any of `data_sources` counts as the input: a node is 'data' if it is for one
    of them, else 'random' if it is for one, else what the first source says."""
    per_source = [value_kinds(index, source) for source in data_sources]
    if not per_source:
        return {}
    merged = {}
    for name, first in per_source[0].items():
        seen = {source_kinds[name] for source_kinds in per_source}
        merged[name] = "data" if "data" in seen else "random" if "random" in seen else first
    return merged


# -- flags and cond pruning -------------------------------------------------------------------------

def constant_flags(graph_def, feeds: dict[str, str]) -> tuple[object, list[Rewrite], dict[str, bool]]:
    """Boolean placeholders that choose cond branches become constants: the `feeds` value if given, else
    false (inference). Returns the new GraphDef, the rewrites and the flag values used."""
    index = graph_index(graph_def)
    predicates = {split_input(index.source.defs[s].input[1])[0] for s in index.nodes if index.nodes[s].op in SWITCH_OPS}
    upstream = index.ancestors(predicates)
    flags = {name: feeds.get(name, "false").strip().lower() in ("true", "1") for name in index.order
             if index.nodes[name].op in PLACEHOLDER_OPS and name in upstream
             and index.source.defs[name].attr["dtype"].type == DT_BOOL}
    if not flags:
        return graph_def, [], {}
    nodes = node_map(graph_def)
    for name, value in flags.items():
        node = nodes[name]
        del node.input[:]
        node.op = "Const"
        node.attr.clear()
        node.attr["dtype"].type = DT_BOOL
        node.attr["value"].tensor.CopyFrom(import_tf().make_tensor_proto(value))
    rewrites = [Rewrite("flag_constant", [name], f"`{name}` is now the constant {str(value).lower()}")
                for name, value in flags.items()]
    graph_def, pruned = prune_constant_conds(graph_def)
    return graph_def, rewrites + pruned, flags


def prune_constant_conds(graph_def) -> tuple[object, list[Rewrite]]:
    """Switches whose predicate is constant forward their input to the taken side; the untaken branch is
    removed and each Merge left with one live input becomes an Identity."""
    index = graph_index(graph_def)
    switches = [n for n in index.order if index.nodes[n].op in SWITCH_OPS
                and constant_only(index, split_input(index.source.defs[n].input[1])[0])]
    if not switches:
        return graph_def, []
    predicates = evaluate_constants(graph_def, sorted({index.source.defs[s].input[1] for s in switches}))
    taken = {s: int(bool(predicates[index.source.defs[s].input[1]])) for s in switches}
    dead: set[str] = set()
    dead_outputs = {(s, 1 - port) for s, port in taken.items()}
    merges = []
    for name in index.order:
        info = index.nodes[name]
        inputs_dead = [(s, i) in dead_outputs or s in dead for s, i in info.data_inputs]
        if info.op in MERGE_OPS:
            (merges if info.data_inputs and not all(inputs_dead) else []).append(name)
            if info.data_inputs and all(inputs_dead):
                dead.add(name)
        elif any(inputs_dead) or any(s in dead for s in info.control_inputs):
            dead.add(name)
    nodes = node_map(graph_def)
    for merge in merges:
        live = [raw for raw, (s, i) in zip(nodes[merge].input, index.nodes[merge].data_inputs)
                if (s, i) not in dead_outputs and s not in dead]
        make_identity(nodes[merge], live[0])
    for switch, port in taken.items():
        rewire(graph_def, f"{switch}:{port}", nodes[switch].input[0])
    remove_nodes(graph_def, dead | set(switches))
    detail = ", ".join(sorted({f"{layer_of(s)} ({str(bool(p)).lower()} branch)" for s, p in taken.items()}))
    return graph_def, [Rewrite("branch_pruned", sorted(dead | set(switches)),
                               f"{len(switches)} Switch nodes with a constant predicate; kept {detail}")]


# -- dropout ----------------------------------------------------------------------------------------

def dropout_to_identity(graph_def, data_sources: list[str]) -> tuple[object, list[Rewrite], dict[str, str]]:
    """Each node where randomness meets the data (dropout's mask) becomes an Identity of the data before
    its inverted-dropout scaling. Returns the GraphDef, the rewrites, and {mask node: unscaled tensor}."""
    index = graph_index(graph_def)
    kinds = data_kinds(index, data_sources)
    nodes = node_map(graph_def)
    rewrites, replaced = [], {}
    for name in index.order:
        info = index.nodes[name]
        source_kinds = [kinds.get(s) for s, _ in info.data_inputs]
        if kinds.get(name) != "data" or "random" not in source_kinds:
            continue
        data = [(s, i) for (s, i), k in zip(info.data_inputs, source_kinds)
                if k == "data" and index.nodes[s].op not in NOT_DATA_OPS]
        if len(data) != 1:
            continue
        source, port = data[0]
        scaling = []
        scope = name.rsplit("/", 1)[0] + "/" if "/" in name else ""
        while (index.nodes[source].op in SCALING_OPS and source.startswith(scope)
               and [kinds.get(s) for s, _ in index.nodes[source].data_inputs].count("data") == 1):
            scaling.append(source)
            source, port = next((s, i) for s, i in index.nodes[source].data_inputs if kinds.get(s) == "data")
        unscaled = f"{source}:{port}"
        random_ops = sorted(a for a in index.ancestors([name]) - index.ancestors([source])
                            if index.nodes[a].op in RANDOM_OPS)
        make_identity(nodes[name], source if port == 0 else unscaled)
        replaced[name] = unscaled
        removed = " and its scaling " + ", ".join(f"`{s}`" for s in scaling) if scaling else ""
        rewrites.append(Rewrite("dropout_identity", [name, *scaling, *random_ops],
                                f"`{name}` (mask from {', '.join(random_ops) or 'a random op'}){removed} → "
                                f"identity of `{unscaled}`"))
    return graph_def, rewrites, replaced


# -- BatchNorm in training mode ---------------------------------------------------------------------

def batchnorms_to_inference(graph_def, batchnorms: list[BatchNorm],
                            statistics: dict[str, tuple[np.ndarray, np.ndarray]]) -> tuple[object, list[Rewrite]]:
    """Fused BNs get `is_training=false` and constant mean/variance inputs; decomposed ones read their
    mean and variance from constants instead of the batch's moments."""
    nodes = node_map(graph_def)
    rewrites = []
    for bn in batchnorms:
        mean, variance = statistics[bn.name]
        if bn.kind == "fused":
            node = nodes[bn.name]
            node.attr["is_training"].b = False
            if "exponential_avg_factor" in node.attr:
                node.attr["exponential_avg_factor"].f = 1.0
            node.input[3] = add_const(graph_def, f"{bn.name}/inference_mean", mean)
            node.input[4] = add_const(graph_def, f"{bn.name}/inference_variance", variance)
            touched = [bn.name, node.input[3], node.input[4]]
            what = "is_training=false with constant mean/variance"
        else:
            for target, value in ((bn.mean.node, mean), (bn.variance.node, variance)):
                definition = nodes[target]
                keeps_dims = definition.op == "Mean" and definition.attr["keep_dims"].b
                shape = [value.size if a == channel_axis(bn) % (len(bn.axes) + 1) else 1
                         for a in range(len(bn.axes) + 1)] if keeps_dims else [value.size]
                remove_nodes(graph_def, [target])
                add_const(graph_def, target, value.reshape(shape))
            touched = [bn.name, bn.mean.node, bn.variance.node]
            what = "batch moments replaced by constant mean/variance"
            nodes = node_map(graph_def)
        rewrites.append(Rewrite("bn_inference", touched, f"`{batchnorm_scope(bn)}`: {what}"))
    return graph_def, rewrites

