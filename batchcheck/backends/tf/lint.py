"""Lint findings only TensorFlow files can have: a meta graph whose train op does not run its UPDATE_OPS."""
from __future__ import annotations

from pathlib import Path

from ...graph.findings import LintFinding
from ...model import LoadedModel
from .graph import graph_index


def update_ops_findings(loaded: LoadedModel) -> list[LintFinding]:
    """`update_ops_not_run` when a meta graph's train op does not depend on its UPDATE_OPS collection."""
    if loaded.format != "meta-checkpoint":
        return []
    from tensorflow.core.protobuf import meta_graph_pb2

    meta = meta_graph_pb2.MetaGraphDef()
    meta.ParseFromString(Path(loaded.path).read_bytes())
    update_ops = [n.split(":")[0] for n in meta.collection_def["update_ops"].node_list.value]
    if not update_ops:
        return []
    index = graph_index(meta.graph_def)
    train_ops = [n.split(":")[0] for n in meta.collection_def["train_op"].node_list.value]
    train_ops = train_ops or [n for n, info in index.nodes.items()
                              if info.op.startswith(("Apply", "ResourceApply")) and not info.consumers]
    train_ops = [t for t in train_ops if t in index]
    missing = {t: sorted(set(update_ops) - index.ancestors([t])) for t in train_ops}
    skipping = [t for t, ops in missing.items() if ops]
    if not skipping:
        return []
    train_op = skipping[0]
    return [LintFinding(
        "update_ops_not_run", "error", train_op, index.nodes[train_op].op, train_op,
        f"the train op `{train_op}` does not run the {len(missing[train_op])} UPDATE_OPS (e.g. "
        f"`{missing[train_op][0]}`): the moving mean/variance are never updated during training",
        "build the train op under tf.control_dependencies(tf.compat.v1.get_collection(tf.GraphKeys.UPDATE_OPS)) "
        "(slim: create_train_op does it), train again and export",
        evidence={"update_ops": len(update_ops), "not_run": missing[train_op][:8], "train_ops": train_ops})]
