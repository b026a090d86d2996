"""Prepare a loaded ONNX model for checking: find the image input (or cut the graph at an inner value the user
names), relax its batch dimension to a symbolic one, fix the per-image sizes, keep only the nodes the outputs need
(onnxruntime runs every node of a graph), and resolve the other inputs into feeds."""
from __future__ import annotations

from collections.abc import Container

from ...errors import UsageError, did_you_mean, names_list
from ...load.placeholders import format_shape, given_input_shape, resolve_feeds
from ...model import InputSpec, LoadedModel, PreparedModel
from . import lite
from .graph import graph_index
from .protos import Protos, shape_of_type

FLOAT32 = 1  # TensorProto.FLOAT

IMAGE_DTYPES = ("float16", "bfloat16", "float32", "float64", "uint8")
BATCH = "batchcheck_batch"  # the symbolic batch dimension of the prepared model
CHANNELS = (1, 3, 4)
PASS_THROUGH = frozenset({"Cast", "Identity", "Mul", "Add", "Sub", "Div", "Clip"})


def prepare(loaded: LoadedModel, *, input_name: str | None = None, outputs: list[str] | None = None,
            input_shape: tuple[int, ...] | None = None, feeds: dict[str, str] | None = None) -> PreparedModel:
    """Resolve the input, outputs and feeds of `loaded`; `UsageError` when a name or size is missing."""
    p = Protos(loaded.graph)
    image = _resolve_input(loaded, p, input_name)
    output_values, outputs_chosen = _resolve_outputs(loaded, p, outputs or [])
    notes = list(loaded.notes)
    declared = _declared_shape(p, image)
    dtype = p.dtype_of(p.types.get(image)) if image not in p.inputs else p.dtype_of(p.inputs[image].type)
    shipped = declared[0] if declared and declared[0] else None
    per_image = _per_image_shape(p, image, declared, input_shape, notes)
    layout = _layout(p, image, per_image)
    model = sub_model(loaded.graph, output_values, image, (BATCH, *per_image))
    index = graph_index(model)
    if image not in index:
        raise UsageError(f"input `{image}`: the outputs ({', '.join(output_values)}) do not depend on it; choose "
                         f"another --input or --output")
    spec = InputSpec(image, dtype, tuple(per_image), shipped, layout)
    placeholders, values = resolve_feeds(loaded.path, index, image, _feeds_by_input(index, feeds or {}, image))
    output_tensors = [index.source.protos.tensor(value) for value in output_values]
    return PreparedModel(loaded.path, loaded.format, model, spec, output_tensors, index, placeholders, values, notes,
                         outputs_chosen, backend="onnx")


def value_named(p: Protos, name: str) -> str | None:
    """The ONNX value a user's name means: a tensor `node:port`, a node (its first output), or a value name."""
    if p.value(name) is not None:
        return p.value(name)
    if name in p.nodes:
        return next((v for v in p.nodes[name].output if v), None)
    return name if name in p.producer else None


def _resolve_input(loaded: LoadedModel, p: Protos, input_name: str | None) -> str:
    if input_name:
        value = value_named(p, input_name)
        if value is None:
            known = [*p.inputs, *p.nodes]
            raise UsageError(f"--input `{input_name}`: no such input, node or value in `{loaded.path}`"
                             f"{did_you_mean(input_name, known)}")
        if value in p.initializers:
            raise UsageError(f"--input `{input_name}`: an initializer (a weight), not a value images can be fed into")
        return value
    images = [name for name, info in p.inputs.items() if p.dtype_of(info.type) in IMAGE_DTYPES]
    ranks = {name: None if shape_of_type(p.inputs[name].type) is None else len(shape_of_type(p.inputs[name].type))
             for name in images}
    chosen = ([n for n, r in ranks.items() if r == 4] or [n for n, r in ranks.items() if r is None]
              or [n for n, r in ranks.items() if r])
    if len(chosen) == 1:
        return chosen[0]
    if not chosen:
        considered = [f"{name} ({p.dtype_of(info.type)}, {format_shape(shape_of_type(info.type))})"
                      for name, info in p.inputs.items()]
        raise UsageError(f"model `{loaded.path}`: no image input found (inputs considered: {names_list(considered)}; "
                         f"an image input is float or uint8 with a batch axis); name the value to feed with "
                         f"--input NAME")
    raise UsageError(f"model `{loaded.path}`: ambiguous input, {len(chosen)} candidates ({names_list(chosen)}); "
                     f"choose one with --input NAME")


def _resolve_outputs(loaded: LoadedModel, p: Protos, outputs: list[str]) -> tuple[list[str], str]:
    """The output values, and how they were chosen (said in the report)."""
    if not outputs:
        return [o.name for o in p.model.graph.output], f"declared by the {loaded.format} model"
    values = []
    for name in outputs:
        value = value_named(p, name)
        if value is None:
            node, _, port = name.rpartition(":")
            if node in p.nodes:
                raise UsageError(f"--output `{name}`: node `{node}` has no output {port}")
            raise UsageError(f"--output `{name}`: no such node or value in `{loaded.path}`"
                             f"{did_you_mean(name, p.nodes)}")
        values.append(value)
    return values, "given with --output"


def _declared_shape(p: Protos, image: str) -> tuple[int | None, ...] | None:
    """The image value's shape as the model declares it (an inner value's as ONNX infers it)."""
    value_type = p.inputs[image].type if image in p.inputs else p.types.get(image)
    return shape_of_type(value_type)


def _per_image_shape(p: Protos, image: str, declared, override, notes: list[str]) -> tuple[int, ...]:
    """Per-image sizes: declared, given with --input-shape (in the model's own layout), or fixed by the graph."""
    per_image = None if declared is None else tuple(d or None for d in declared[1:])
    if declared is not None and not declared:
        raise UsageError(f"input `{image}` is a scalar: it has no batch axis to test")
    if override is not None:
        return given_input_shape(image, per_image, override)
    if per_image is not None and None in per_image:
        inferred = _channels_from_conv(p, image, per_image)
        if inferred is not None:
            per_image, how = inferred
            notes.append(f"per-image shape {'×'.join(map(str, per_image))} of `{image}` inferred from {how}; "
                         f"--input-shape overrides it")
    if per_image is None or None in per_image:
        example = ("3,224,224" if per_image and len(per_image) == 3 and per_image[0] in CHANNELS else "224,224,3"
                   if per_image is None or len(per_image) == 3 else ",".join(["8"] * len(per_image)))
        raise UsageError(f"input `{image}` has per-image shape {format_shape(per_image)} with unknown sizes; give "
                         f"them with --input-shape in the model's own layout (e.g. {example})")
    return tuple(per_image)


def _consumers(p: Protos, value: str) -> list:
    return [node for node in p.model.graph.node if value in node.input]


def _reached(p: Protos, value: str, depth: int = 4) -> list:
    """The nodes `value` reaches through shape-keeping elementwise ops (a cast, a scaling), nearest first."""
    reached, frontier = [], [value]
    for _ in range(depth):
        nodes = [n for v in frontier for n in _consumers(p, v)]
        reached += nodes
        frontier = [n.output[0] for n in nodes if n.op_type in PASS_THROUGH and n.output]
    return reached


def _channels_from_conv(p: Protos, image: str, per_image) -> tuple[tuple[int, ...], str] | None:
    """The channels of an NCHW image whose only unknown size is the channels, from the first Conv's kernel."""
    if len(per_image) != 3 or per_image[0] is not None or None in per_image[1:]:
        return None
    for node in _reached(p, image):
        if node.op_type == "Conv" and len(node.input) > 1 and node.input[1] in p.initializers:
            kernel = p.initializers[node.input[1]].dims
            group = next((a.i for a in node.attribute if a.name == "group"), 1)
            return (int(kernel[1]) * group, *per_image[1:]), f"the kernel of `{node.name}`"
    return None


def _layout(p: Protos, image: str, per_image: tuple[int, ...]) -> str:
    """NCHW or NHWC for a rank-3 per-image shape: a Transpose to NCHW (tf2onnx) or a Conv the image reaches
    directly decide, else where a channel count (1, 3 or 4) stands."""
    if len(per_image) != 3:
        return "NHWC"
    for node in _reached(p, image):
        if node.op_type == "Transpose":
            perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), None)
            return "NHWC" if perm == [0, 3, 1, 2] else "NCHW"
        if node.op_type in ("Conv", "ConvInteger", "MaxPool", "AveragePool"):
            return "NCHW"
    first, last = per_image[0] in CHANNELS, per_image[2] in CHANNELS
    return "NCHW" if first and not last else "NHWC"


def _feeds_by_input(index, feeds: dict[str, str], image: str) -> dict[str, str]:
    """`--feed` values keyed by the input they feed (a graph input's name, or a value or tensor naming one);
    `UsageError` for a name that is not an input of the model."""
    protos = index.source.protos
    by_input = {}
    for name, raw in feeds.items():
        value = value_named(protos, name)
        if value is not None and value != image and value not in protos.inputs and value in protos.producer:
            raise UsageError(f"--feed {name}=…: `{name}` is computed inside the model; in an ONNX model only its "
                             f"inputs can be fed ({names_list(n for n in protos.inputs if n != image)})")
        by_input[f"{value}:0" if value in protos.inputs else name] = raw
    return by_input


def needed_nodes(p: Protos, outputs: list[str], cut: set[str] | frozenset[str] = frozenset()) -> set[str]:
    """The names of the nodes `outputs` are computed by, not looking past the values in `cut`."""
    needed, stack = set(), [v for v in outputs if v not in cut]
    while stack:
        value = stack.pop()
        node = p.producer.get(value, (None,))[0]
        if node in p.nodes and node not in needed:
            needed.add(node)
            stack += [v for v in p.inputs_of(p.nodes[node]) if v not in cut]
    return needed


def sub_model(model, outputs: list[str], image: str | None = None, image_shape: tuple | None = None,
              fed: tuple[str, ...] = (), shared: Container[str] = ()):
    """A ModelProto holding the nodes `outputs` need (in graph order), the initializers and inputs they read, and
    `outputs` as its outputs (typed by onnxruntime). With `image`, that value is an input of `image_shape` (a str
    for a symbolic size) and what produced it is cut away; so is what produced the `fed` values, inputs of any
    shape. The initializers named in `shared` are headers whose values onnxruntime is handed
    (`runtime.shared_weights`)."""
    p = Protos(model)
    needed = needed_nodes(p, outputs, {image, *fed})
    nodes = [n for n in model.graph.node if n.name in needed]
    if image is not None and image not in p.inputs and any(image in n.output for n in nodes):
        raise UsageError(f"--input `{image}`: the node that computes it is needed for the outputs too; feed an "
                         f"earlier or later value")
    read = {v for n in nodes for v in p.inputs_of(n)} | set(outputs)
    inputs = [i for i in model.graph.input if i.name in read and i.name not in p.initializers and i.name != image]
    if image is not None:
        elem = p.inputs[image].type.tensor_type.elem_type if image in p.inputs else \
            p.types[image].tensor_type.elem_type
        inputs.insert(0, lite.value_info(image, elem, list(image_shape)))
    inputs += [lite.value_info(v, p.types[v].tensor_type.elem_type if v in p.types else FLOAT32, None)
               for v in fed if v in read]
    made = type(model)(ir_version=model.ir_version, opset_import=model.opset_import, functions=model.functions,
                       producer_name=model.producer_name, producer_version=model.producer_version)
    graph = made.graph
    graph.name = model.graph.name or "main_graph"
    graph.node.extend(nodes)
    graph.input.extend(inputs)
    graph.output.extend(lite.value_info(v) for v in outputs)
    graph.initializer.extend(lite.external(t) if t.name in shared else t for t in model.graph.initializer
                             if t.name in read)
    return made

