"""Small GraphDef surgery helpers shared by the rewrites and the folding: constants, rewiring, pruning."""
from __future__ import annotations

import re
from typing import Iterable

import numpy as np

from ....graph.index import (
    GraphIndex,
    split_input,
)
from ..env import import_tf
from ..graph import (
    FUSED_BATCHNORM_OPS,
    MERGE_OPS,
    PLACEHOLDER_OPS,
    RANDOM_OPS,
    SWITCH_OPS,
    VARIABLE_OPS,
)

_BN_SCOPE = re.compile(r"^(batchnorm|batch_norm|batch_normalization(_\d+)?|fusedbatchnorm(v\d)?)$")


def copy_graph_def(graph_def):
    copy = type(graph_def)()
    copy.CopyFrom(graph_def)
    return copy


def node_map(graph_def) -> dict:
    return {node.name: node for node in graph_def.node}


def add_const(graph_def, name: str, value: np.ndarray) -> str:
    """Append a Const node holding `value` (float32 unless integer) and return its name."""
    tf = import_tf()
    value = np.asarray(value)
    if value.dtype.kind == "f":
        value = value.astype(np.float32)
    node = graph_def.node.add()
    node.name, node.op = name, "Const"
    node.attr["dtype"].type = tf.dtypes.as_dtype(value.dtype).as_datatype_enum
    node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value))
    return name


def make_identity(node, source: str) -> None:
    """Turn `node` into an Identity of `source`, keeping its name (so its consumers are untouched)."""
    dtype = node.attr["T"].type
    del node.input[:]
    node.input.append(source)
    node.op = "Identity"
    node.attr.clear()
    node.attr["T"].type = dtype


def unique_name(graph_def, wanted: str) -> str:
    taken = {node.name for node in graph_def.node}
    name, count = wanted, 1
    while name in taken:
        name, count = f"{wanted}_{count}", count + 1
    return name


def rewire(graph_def, old: str, new: str) -> None:
    """Make every consumer of tensor `old` (node or node:port) read `new` instead (control edges too)."""
    old_node, old_port, _ = split_input(old)
    new_node = split_input(new)[0]
    for node in graph_def.node:
        for i, raw in enumerate(node.input):
            source, port, control = split_input(raw)
            if source != old_node:
                continue
            if control:
                node.input[i] = f"^{new_node}"
            elif port == old_port:
                node.input[i] = new


def remove_nodes(graph_def, names: Iterable[str]) -> None:
    names = set(names)
    kept = [node for node in graph_def.node if node.name not in names]
    del graph_def.node[:]
    graph_def.node.extend(kept)


def prune_unused(graph_def, keep: Iterable[str]):
    """Only what the nodes in `keep` need (data and control edges); colocation hints (`_class`), which may
    name removed nodes, are dropped."""
    tf = import_tf()
    for node in graph_def.node:
        node.attr.pop("_class", None)
    return tf.compat.v1.graph_util.extract_sub_graph(graph_def, sorted(set(keep)))


def drop_identities(graph_def, protected: Iterable[str]) -> list[str]:
    """Bypass Identity nodes with one data input (`weights/read`, chains left by rewrites and inlined
    branches), except the `protected` ones (inputs, outputs); control edges from NoOps (branch scaffolding
    with no effect in an inference graph) go with them. Returns the names dropped."""
    protected = set(protected)
    no_ops = {node.name for node in graph_def.node if node.op == "NoOp"}
    dropped = []
    for node in list(graph_def.node):
        data = [raw for raw in node.input if not raw.startswith("^")]
        controls = [raw[1:] for raw in node.input if raw.startswith("^")]
        if node.op != "Identity" or node.name in protected or len(data) != 1 or set(controls) - no_ops:
            continue
        rewire(graph_def, node.name, data[0])
        dropped.append(node.name)
    remove_nodes(graph_def, dropped)
    return dropped


def batchnorm_node_count(graph_def) -> int:
    """Operations that are BatchNorm: fused BN ops, and every non-constant node inside a `batchnorm`/
    `BatchNorm`-style scope (the decomposed arithmetic and moments)."""
    return sum(1 for node in graph_def.node if node.op in FUSED_BATCHNORM_OPS or node.op not in ("Const", "Identity")
               and any(_BN_SCOPE.match(part.lower()) for part in node.name.split("/")[:-1]))


def evaluate_constants(graph_def, tensors: list[str]) -> dict[str, np.ndarray]:
    """Values of `tensors` that depend on constants only, computed in one session run."""
    if not tensors:
        return {}
    tf = import_tf()
    sub = prune_unused(graph_def, {split_input(t)[0] for t in tensors})
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(sub, name="")
    with tf.compat.v1.Session(graph=graph) as session:
        values = session.run([graph.get_tensor_by_name(t if ":" in t else f"{t}:0") for t in tensors])
    return dict(zip(tensors, values))


def constant_only(index: GraphIndex, name: str) -> bool:
    """True when node `name` depends on Const nodes only (no placeholder, no randomness, no state)."""
    not_constant = PLACEHOLDER_OPS | RANDOM_OPS | VARIABLE_OPS | SWITCH_OPS | MERGE_OPS
    return not any(index.nodes[ancestor].op in not_constant for ancestor in index.ancestors([name]))
