"""Prepare a loaded GraphDef for checking: find the input, relax its batch axis, keep what the
outputs need, and resolve the other placeholders into feeds."""
from __future__ import annotations

import numpy as np

from ...errors import UsageError, did_you_mean, names_list
from ...graph.core import Core, find_core
from ...graph.index import GraphIndex
from ...load.placeholders import format_shape, given_input_shape, resolve_feeds
from ...model import InputSpec, LoadedModel, PreparedModel
from .env import import_tf
from .graph import dtype_name, graph_index, placeholder_shape, shape_of_attr

IMAGE_DTYPES = ("float16", "bfloat16", "float32", "float64", "uint8")
NON_DATA_DTYPES = ("string", "bool", "resource", "variant")  # a placeholder of these is not fed with data
PLACEHOLDER_OPS = frozenset({"Placeholder", "PlaceholderV2", "PlaceholderWithDefault"})


def prepare(loaded: LoadedModel, *, input_name: str | None = None, outputs: list[str] | None = None,
            input_shape: tuple[int, ...] | None = None, feeds: dict[str, str] | None = None) -> PreparedModel:
    """Resolve the input, outputs and feeds of `loaded`; `UsageError` when a name or size is missing."""
    tf = import_tf()
    index = graph_index(loaded.graph)
    notes = list(loaded.notes)
    input_node = _resolve_input(loaded, index, input_name, input_shape, notes)
    output_tensors, outputs_chosen = _resolve_outputs(loaded, index, outputs or [], input_node)
    core = None if input_name else _core_behind(loaded, index, input_node, output_tensors)
    if core is not None:  # the user's --input wins; their --output too
        input_node, output_tensors = core.input, output_tensors if outputs else core.outputs
        input_shape = core.shape  # measured; an --input-shape was meant for the one-image input
        notes.append(core.note())
    shape, dtype, shipped = _input_shape(loaded, index, input_node, input_shape, notes)
    graph_def = _with_placeholder(loaded.graph, input_node, dtype, shape)
    graph_def = tf.compat.v1.graph_util.extract_sub_graph(
        graph_def, sorted({t.split(":")[0] for t in output_tensors}))
    pruned = graph_index(graph_def)
    if input_node not in pruned:
        raise UsageError(f"input `{input_node}`: the outputs ({', '.join(output_tensors)}) do not depend on it; "
                         f"choose another --input or --output")
    spec = InputSpec(input_node, dtype, shape, shipped)
    placeholders, feed_values = resolve_feeds(loaded.path, pruned, input_node, feeds or {})
    return PreparedModel(loaded.path, loaded.format, graph_def, spec, output_tensors, pruned, placeholders,
                         feed_values, notes, outputs_chosen)


def _core_behind(loaded: LoadedModel, index: GraphIndex, input_node: str, outputs: list[str]) -> Core | None:
    """The batchable core when the input ships a batch of 1 that preprocessing takes one image from."""
    shipped = _static_shape(loaded, index, input_node)
    if not shipped or shipped[0] != 1:
        return None
    return find_core(index, input_node, outputs, lambda names: _shapes_of_two_sizes(loaded.graph, input_node, names))


def _shapes_of_two_sizes(graph_def, input_node: str, names: list[str]) -> dict[str, tuple]:
    """Each node's first output shape on one image of two different sizes (unknown sizes filled
    in); empty when the graph cannot run on its own (a placeholder that must be fed, say)."""
    tf = import_tf()
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(graph_def, name="")
        image = graph.get_tensor_by_name(f"{input_node}:0")
        fetches = [tf.raw_ops.Shape(input=graph.get_tensor_by_name(f"{name}:0")) for name in names]
    if image.shape.rank is None:
        return {}
    runs = []
    with tf.compat.v1.Session(graph=graph) as session:
        for sizes in ((96,) * image.shape.rank, tuple(64 + 8 * i for i in range(image.shape.rank))):
            shape = [1] + [d if d is not None else s for d, s in zip(image.shape.as_list()[1:], sizes)]
            try:
                runs.append(session.run(fetches, {image: np.zeros(shape, image.dtype.as_numpy_dtype)}))
            except (tf.errors.OpError, ValueError, TypeError):
                return {}
    return {name: (tuple(map(int, a)), tuple(map(int, b))) for name, a, b in zip(names, *runs)}


def image_input(loaded: LoadedModel, input_shape: tuple[int, ...] | None) -> str | None:
    """The placeholder `check` would feed images into, when there is one it can find."""
    try:
        return _resolve_input(loaded, graph_index(loaded.graph), None, input_shape, [])
    except UsageError:
        return None


def _resolve_input(loaded: LoadedModel, index: GraphIndex, input_name: str | None,
                   input_shape: tuple[int, ...] | None, notes: list[str]) -> str:
    if input_name:
        node, _, port = input_name.partition(":")
        if node not in index:
            raise UsageError(f"--input `{input_name}`: no such node in `{loaded.path}`{did_you_mean(node, index.nodes)}")
        if port not in ("", "0"):
            raise UsageError(f"--input `{input_name}`: only a node's first output can be fed; "
                             f"name the node that produces the image tensor")
        return node
    placeholders = [n for n in loaded.graph.node if n.op in ("Placeholder", "PlaceholderV2")
                    and dtype_name(n.attr["dtype"].type) in IMAGE_DTYPES]
    declared = [p for p in placeholders if p.name in loaded.inputs]
    ranks = {p.name: _rank(loaded.graph, p) for p in declared or placeholders}
    # Prefer NHWC images, then tensors of unknown rank, then any non-scalar tensor.
    chosen = ([n for n, r in ranks.items() if r == 4] or [n for n, r in ranks.items() if r is None]
              or [n for n, r in ranks.items() if r])
    if len(chosen) == 1:
        return chosen[0]
    if not chosen:
        fed = [n for n in loaded.graph.node if n.op in ("Placeholder", "PlaceholderV2")]
        lone = fed[0] if len(fed) == 1 and dtype_name(fed[0].attr["dtype"].type) not in NON_DATA_DTYPES else None
        if lone is not None and input_shape is not None:
            notes.append(f"input `{lone.name}` ({dtype_name(lone.attr['dtype'].type)}) is the only placeholder and "
                         f"not an image: taken as the input, since --input-shape was given")
            return lone.name
        considered = [f"{n.name} ({dtype_name(n.attr['dtype'].type)}, "
                      f"{format_shape(placeholder_shape(loaded.graph, n))})"
                      for n in loaded.graph.node if n.op in PLACEHOLDER_OPS]
        also = f", or give --input-shape to test `{lone.name}` as it is" if lone is not None else ""
        raise UsageError(f"model `{loaded.path}`: no image placeholder found (placeholders considered: "
                         f"{names_list(considered)}; an image input is float or uint8 with a batch axis); name the "
                         f"tensor to feed with --input NAME (a Const or an inner tensor can be fed too){also}")
    names = ", ".join(f"`{name}`" for name in chosen[:6])
    raise UsageError(f"model `{loaded.path}`: ambiguous input, {len(chosen)} candidates ({names}); "
                     f"choose one with --input NAME")


def _rank(graph_def, placeholder) -> int | None:
    """A placeholder's rank, None when unknown."""
    shape = placeholder_shape(graph_def, placeholder)
    return None if shape is None else len(shape)


def _resolve_outputs(loaded: LoadedModel, index: GraphIndex, outputs: list[str],
                     input_node: str) -> tuple[list[str], str]:
    """The output tensors, and how they were chosen (said in the report)."""
    if outputs:
        for name in outputs:
            node, _, port = name.partition(":")
            if node not in index:
                raise UsageError(f"--output `{name}`: no such node in `{loaded.path}`{did_you_mean(node, index.nodes)}")
            if port and (not port.isdigit() or int(port) >= max(1, len(index.output_dtypes(node)))):
                raise UsageError(f"--output `{name}`: node `{node}` has no output {port}")
        return [n if ":" in n else f"{n}:0" for n in outputs], "given with --output"
    if loaded.outputs:
        return [n if ":" in n else f"{n}:0" for n in loaded.outputs], f"declared by the {loaded.format} model"
    downstream = index.descendants([input_node])
    sinks = [name for name in index.order
             if name in downstream and not index.nodes[name].consumers
             and index.output_dtypes(name) and index.nodes[name].op not in ("NoOp", "Assert")]
    if not sinks:
        raise UsageError(f"model `{loaded.path}`: nothing depends on input `{input_node}`; "
                         f"name the outputs with --output NAME")
    return [f"{name}:0" for name in sinks], (f"chosen automatically: the {len(sinks)} node(s) downstream of "
                                             f"`{input_node}` that nothing consumes; name others with --output")


def _input_shape(loaded: LoadedModel, index: GraphIndex, node: str, override: tuple[int, ...] | None,
                 notes: list[str]) -> tuple[tuple[int, ...], str, int | None]:
    """Per-image shape, dtype name, and the batch size the graph shipped with (None if free);
    unknown sizes the graph determines downstream are inferred and noted."""
    definition = index.source.defs[node]
    dtypes = index.output_dtypes(node)
    if not dtypes:
        raise UsageError(f"--input `{node}`: op {definition.op} has no plain tensor output to feed")
    dtype = dtypes[0]
    shape = _static_shape(loaded, index, node)
    shipped = shape[0] if shape else None
    per_image = shape[1:] if shape else None
    if override is not None:
        return given_input_shape(node, per_image, override), dtype, shipped
    inferred = None if per_image and None not in per_image else inferred_per_image(index, node, per_image)
    if inferred is not None:
        per_image, how = inferred
        notes.append(f"per-image shape {'×'.join(map(str, per_image))} of `{node}` inferred from {how}; "
                     f"--input-shape overrides it")
    if per_image is None or any(d is None for d in per_image):
        example = "224,224,3" if per_image is None or len(per_image) == 3 else ",".join(["8"] * len(per_image))
        raise UsageError(f"input `{node}` has per-image shape {format_shape(per_image)} with unknown sizes; "
                         f"give it with --input-shape (e.g. {example})")
    return tuple(per_image), dtype, shipped


PASS_THROUGH_OPS = frozenset({"Identity", "Cast", "StopGradient"})
CONV_OPS = frozenset({"Conv2D", "DepthwiseConv2dNative"})


def inferred_per_image(index: GraphIndex, node: str,
                       known: tuple[int | None, ...] | None) -> tuple[tuple[int, ...], str] | None:
    """The per-image shape the graph itself determines for `node`: a Reshape to a constant
    [-1, …] shape, else the channels of the first conv's kernel; with how it was found."""
    tf = import_tf()
    reached, frontier = [], [node]
    while frontier:  # consumers through ops that keep the shape
        name = frontier.pop()
        for consumer in sorted(index.nodes[name].consumers):
            if index.nodes[consumer].op in PASS_THROUGH_OPS:
                frontier.append(consumer)
            reached.append(consumer)
    for consumer in reached:
        info = index.nodes[consumer]
        if len(info.data_inputs) < 2 or index.nodes[info.data_inputs[1][0]].op != "Const":
            continue
        value = tf.make_ndarray(index.source.defs[info.data_inputs[1][0]].attr["value"].tensor)
        if info.op == "Reshape" and value.ndim == 1 and len(value) > 1 and value[0] == -1 and min(value[1:]) > 0:
            sizes = tuple(int(v) for v in value[1:])
            fitted = sizes if known is None or len(known) == len(sizes) else (
                (int(np.prod(sizes)),) if len(known) == 1 else None)
            if fitted and (known is None or all(k in (None, f) for k, f in zip(known, fitted))):
                return fitted, f"`{consumer}` (a Reshape to [{','.join(map(str, value))}])"
        if info.op in CONV_OPS and known is not None and len(known) == 3 and None not in known[:2]:
            return (*known[:2], int(value.shape[2])), f"the kernel of `{consumer}` ({value.shape[2]} channels)"
    return None


def _static_shape(loaded: LoadedModel, index: GraphIndex, node: str) -> tuple[int | None, ...] | None:
    """The input tensor's shape from the node's attrs, else from TF's shape inference."""
    tf = import_tf()
    definition = index.source.defs[node]
    if definition.op in PLACEHOLDER_OPS:
        shape = placeholder_shape(loaded.graph, definition)
        if shape is not None or definition.op != "PlaceholderWithDefault":
            return shape
    if definition.op == "Const":
        return tuple(d.size for d in definition.attr["value"].tensor.tensor_shape.dim)
    if "_output_shapes" in definition.attr and definition.attr["_output_shapes"].list.shape:
        return shape_of_attr(definition.attr["_output_shapes"].list.shape[0])
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(loaded.graph, name="")
    shape = graph.get_tensor_by_name(f"{node}:0").shape
    return None if shape.rank is None else tuple(shape.as_list())


def _with_placeholder(graph_def, node: str, dtype: str, per_image: tuple[int, ...]):
    """A copy of `graph_def` whose `node` is a Placeholder with a free batch axis; shape hints dropped."""
    tf = import_tf()
    copy = type(graph_def)()
    copy.CopyFrom(graph_def)
    for definition in copy.node:
        definition.attr.pop("_output_shapes", None)
        if definition.name == node:
            definition.op = "Placeholder"
            del definition.input[:]
            definition.attr.clear()
            definition.attr["dtype"].type = tf.dtypes.as_dtype(dtype).as_datatype_enum
            definition.attr["shape"].shape.CopyFrom(
                tf.TensorShape([None, *per_image]).as_proto())
    return copy
