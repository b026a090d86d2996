"""A GraphDef's function library: functions nothing calls are dropped before the op scan; calls are inlined and
TF2 control flow lowered to Switch/Merge, so that the tensors inside branches can be compared."""
from __future__ import annotations

from ...errors import names_list
from ...model import LoadedModel
from .env import import_tf
from .scan import uncalled_functions

CONTROL_FLOW_V2_OPS = frozenset({"If", "StatelessIf", "While", "StatelessWhile", "Case", "StatelessCase"})


def drop_uncalled_functions(loaded: LoadedModel) -> None:
    """Remove the library functions nothing in the graph calls (a dataset pipeline traced beside the model, say):
    they never run, so the op scan need not refuse what they hold. Said in the notes."""
    dropped = uncalled_functions(loaded.graph)
    if not dropped:
        return
    library = loaded.graph.library
    kept = [f for f in library.function if f.signature.name not in dropped]
    gradients = [g for g in library.gradient if g.function_name not in dropped and g.gradient_func not in dropped]
    del library.function[:], library.gradient[:]
    library.function.extend(kept)
    library.gradient.extend(gradients)
    loaded.notes.append(f"dropped {len(dropped)} library function(s) that nothing in the graph calls, before the op "
                        f"scan: {names_list(dropped)}")


def inline_functions(graph_def):
    """Inline function calls and lower TF2 control flow (If/While) to Switch/Merge with grappler,
    so that the tensors inside branches can be compared like any other."""
    tf = import_tf()
    from tensorflow.core.protobuf import config_pb2, meta_graph_pb2
    from tensorflow.python.grappler import tf_optimizer

    graph_def = _copy(graph_def)
    for nodes in [graph_def.node, *(f.node_def for f in graph_def.library.function)]:
        for node in nodes:
            if node.op in CONTROL_FLOW_V2_OPS:
                node.attr["_lower_using_switch_merge"].b = True
    for function in graph_def.library.function:
        function.attr.pop("api_implements", None)
    consumed = {i.lstrip("^").split(":")[0] for n in graph_def.node for i in n.input}
    keep = [n.name for n in graph_def.node
            if n.name not in consumed or n.op in ("Placeholder", "PlaceholderWithDefault")]
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(graph_def, name="")
        meta_graph = tf.compat.v1.train.export_meta_graph(graph_def=graph_def, graph=graph)
    fetch = meta_graph_pb2.CollectionDef()
    fetch.node_list.value.extend(keep)
    meta_graph.collection_def["train_op"].CopyFrom(fetch)
    config = config_pb2.ConfigProto()
    config.graph_options.rewrite_options.min_graph_nodes = -1
    config.graph_options.rewrite_options.optimizers.append("function")
    inlined = tf_optimizer.OptimizeGraph(config, meta_graph)
    return inlined


def _copy(graph_def):
    copy = type(graph_def)()
    copy.CopyFrom(graph_def)
    return copy
