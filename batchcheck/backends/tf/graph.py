"""A TensorFlow GraphDef as the neutral graph view: each op mapped to its kind, the attributes the rules read
decoded into plain values, and constants, attributes and inferred shapes answered on demand."""
from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import UsageError, first_line
from ...graph import kinds
from ...graph.index import GraphIndex, Node, split_input
from .env import import_tf

OP_KINDS: dict[str, str] = {
    **dict.fromkeys(("Placeholder", "PlaceholderV2"), kinds.INPUT),
    "PlaceholderWithDefault": kinds.INPUT_WITH_DEFAULT,
    "Const": kinds.CONSTANT,
    **dict.fromkeys(("VariableV2", "Variable", "VarHandleOp"), kinds.VARIABLE),
    **dict.fromkeys((
        "RandomUniform", "RandomUniformInt", "RandomStandardNormal", "TruncatedNormal", "RandomShuffle",
        "Multinomial", "RandomGamma", "RandomGammaGrad", "RandomPoisson", "RandomPoissonV2", "RandomCrop",
        "ParameterizedTruncatedNormal", "RandomBinomial"), kinds.RANDOM),
    # Stateless random ops draw the same values for the same seed (Keras 3's dropout, frozen with its seed): run
    # to run they agree, but a mask drawn for the whole batch gives an image a different mask in each batch.
    **dict.fromkeys((
        "StatelessRandomUniform", "StatelessRandomUniformV2", "StatelessRandomNormal", "StatelessRandomNormalV2",
        "StatelessTruncatedNormal", "StatelessTruncatedNormalV2", "StatelessRandomUniformInt",
        "StatelessRandomUniformIntV2", "StatelessRandomUniformFullInt", "StatelessRandomUniformFullIntV2",
        "StatelessMultinomial", "StatelessRandomBinomial", "StatelessRandomGammaV2", "StatelessRandomGammaV3",
        "StatelessRandomPoisson", "StatelessParameterizedTruncatedNormal", "StatelessShuffle"),
        kinds.STATELESS_RANDOM),
    **dict.fromkeys(("Shape", "ShapeN", "Size", "Rank", "TensorArraySizeV3"), kinds.SHAPE),
    "Range": kinds.RANGE,
    **dict.fromkeys(("Switch", "RefSwitch"), kinds.SWITCH),
    **dict.fromkeys(("Merge", "RefMerge"), kinds.MERGE),
    **dict.fromkeys(("Enter", "RefEnter"), kinds.ENTER),
    **dict.fromkeys(("Exit", "RefExit"), kinds.EXIT),
    **dict.fromkeys(("NextIteration", "RefNextIteration"), kinds.NEXT_ITERATION),
    **dict.fromkeys(("Conv2D", "Conv3D", "DepthwiseConv2dNative", "Conv2DBackpropInput"), kinds.CONV),
    **dict.fromkeys(("MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3", "Einsum"), kinds.MATMUL),
    **dict.fromkeys(("FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3"), kinds.BATCH_NORM),
    **dict.fromkeys(("Add", "AddV2"), kinds.ADD),
    "Sub": kinds.SUB,
    "Mul": kinds.MUL,
    **dict.fromkeys(("RealDiv", "Div", "DivNoNan", "TrueDiv"), kinds.DIV),
    "Neg": kinds.NEG,
    "Rsqrt": kinds.RSQRT,
    "Cast": kinds.CAST,
    **dict.fromkeys(("BiasAdd", "BiasAddV1"), kinds.BIAS_ADD),
    "LogicalNot": kinds.LOGICAL_NOT,
    **dict.fromkeys(("Maximum", "Minimum", "Pow", "FloorDiv", "FloorMod", "SquaredDifference", "AddN", "Select",
                     "SelectV2"), kinds.ELEMENTWISE),
    **dict.fromkeys(("Mean", "Sum", "Max", "Min", "Prod", "All", "Any", "EuclideanNorm", "ArgMax", "ArgMin"),
                    kinds.REDUCE),
    **dict.fromkeys(("Softmax", "LogSoftmax", "TopKV2", "InTopKV2", "LRN"), kinds.ALONG_AXIS),
    **dict.fromkeys(("StridedSlice", "Slice"), kinds.SLICE),
    **dict.fromkeys(("Gather", "GatherV2", "GatherNd"), kinds.GATHER),
    "Unpack": kinds.UNPACK,
    **dict.fromkeys(("TensorArrayScatterV3", "TensorArrayUnpack", "TensorListFromTensor"), kinds.UNSTACK),
    **dict.fromkeys(("Identity", "Snapshot", "StopGradient", "ReadVariableOp"), kinds.IDENTITY),
    "Reshape": kinds.RESHAPE,
    "Squeeze": kinds.SQUEEZE,
    "ExpandDims": kinds.EXPAND_DIMS,
    "Pack": kinds.PACK,
    **dict.fromkeys(("ConcatV2", "Concat"), kinds.CONCAT),
    "BatchToSpaceND": kinds.BATCH_TO_SPACE,
    "SpaceToBatchND": kinds.SPACE_TO_BATCH,
    "NoOp": kinds.NO_OP,
    "Assert": kinds.ASSERT,
    **dict.fromkeys(("Print", "PrintV2"), kinds.PRINT),
}


def ops_of(*wanted: str) -> frozenset[str]:
    """The TensorFlow op types of the kinds `wanted`."""
    return frozenset(op for op, kind in OP_KINDS.items() if kind in wanted)


PLACEHOLDER_OPS = ops_of(*kinds.PLACEHOLDERS)
RANDOM_OPS = ops_of(*kinds.RANDOMS)
SWITCH_OPS = ops_of(kinds.SWITCH)
MERGE_OPS = ops_of(kinds.MERGE)
VARIABLE_OPS = ops_of(kinds.VARIABLE)
FUSED_BATCHNORM_OPS = ops_of(kinds.BATCH_NORM)
REDUCTIONS = {"Mean": "mean", "Sum": "sum", "Max": "max", "Min": "min", "Prod": "prod", "All": "all", "Any": "any",
              "EuclideanNorm": "norm", "ArgMax": "argmax", "ArgMin": "argmin"}
# Ops that take a shape or size in these input slots: a value reaches them only through the others.
SIZE_INPUTS = {"Fill": (0,), "BroadcastTo": (1,), "Reshape": (1,), "Tile": (1,), "Pad": (1,), "PadV2": (1,),
               "ResizeBilinear": (1,), "ResizeNearestNeighbor": (1,), "ResizeBicubic": (1,), "ResizeArea": (1,),
               "RandomUniform": (0,), "RandomStandardNormal": (0,), "TruncatedNormal": (0,)}
FOLDABLE = frozenset({"Conv2D", "DepthwiseConv2dNative", "MatMul"})  # weights in input 1, per output channel
CONSTANT_HOPS = frozenset({"Identity", "Switch", "RefSwitch", "ReadVariableOp", "Snapshot"})
# How many outputs an op has where its attributes alone do not say
MULTI_OUTPUT = {"FusedBatchNorm": 5, "FusedBatchNormV2": 5, "FusedBatchNormV3": 6}


def graph_index(graph_def) -> GraphIndex:
    """The neutral view of `graph_def`."""
    source = TFGraphSource(graph_def)
    return GraphIndex((_node(source, definition) for definition in graph_def.node), source)


class TFGraphSource:
    """What needs TensorFlow's protos about a GraphDef: constants, attributes, inferred shapes; `defs` maps each
    node name to its NodeDef (for the backend's own rewrites)."""

    def __init__(self, graph_def) -> None:
        self.graph_def = graph_def
        self.defs = {node.name: node for node in graph_def.node}
        self._shapes: dict | None = None
        self._evaluator = None  # a session over the graph, made when a computed constant is first asked for

    def constant(self, name: str) -> np.ndarray | None:
        definition = self.defs.get(name)
        if definition is None or definition.op != "Const":
            return None
        from tensorflow.python.framework import tensor_util

        try:
            return tensor_util.MakeNdarray(definition.attr["value"].tensor)
        except (ValueError, TypeError) as exc:  # a tensor whose bytes do not fit its dtype and shape
            raise UsageError(f"node `{name}` (Const): its value cannot be read ({first_line(exc)}); the graph is "
                             f"broken, re-export it") from None

    def evaluate(self, name: str) -> np.ndarray | None:
        if self._evaluator is None:
            tf = import_tf()
            graph = tf.Graph()
            with graph.as_default():
                tf.graph_util.import_graph_def(self.graph_def, name="")
            self._evaluator = tf.compat.v1.Session(graph=graph)
        tf = import_tf()
        try:
            return np.asarray(self._evaluator.run(f"{name}:0"))
        except (tf.errors.OpError, ValueError, TypeError):  # needs a feed after all, or no plain output
            return None

    def attributes(self, name: str) -> dict[str, Any]:
        return {key: attr_value(value) for key, value in sorted(self.defs[name].attr.items())
                if value.WhichOneof("value") not in ("tensor", "func", "shape", None)}

    def static_shapes(self) -> dict[str, tuple[int | None, ...] | None]:
        if self._shapes is None:
            tf = import_tf()
            graph = tf.Graph()
            with graph.as_default():
                tf.graph_util.import_graph_def(self.graph_def, name="")
            self._shapes = {tensor.name: None if tensor.shape.rank is None else tuple(tensor.shape.as_list())
                            for operation in graph.get_operations() for tensor in operation.outputs}
        return self._shapes


def attr_value(attr) -> Any:
    """An AttrValue as a plain value (lists of ints, strings or floats; types as dtype names)."""
    kind = attr.WhichOneof("value")
    if kind == "list":
        return (list(attr.list.i) or [s.decode("utf-8", "replace") for s in attr.list.s] or list(attr.list.f)
                or [dtype_name(t) for t in attr.list.type])
    if kind == "type":
        return dtype_name(attr.type)
    value = getattr(attr, kind) if kind else None
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


_DTYPE_NAMES: dict[int, str] = {}


def dtype_name(enum: int) -> str:
    """TensorFlow's name of a DataType enum (`float32`, `uint8`…)."""
    if enum not in _DTYPE_NAMES:
        try:
            _DTYPE_NAMES[enum] = import_tf().dtypes.as_dtype(enum).name
        except TypeError:
            _DTYPE_NAMES[enum] = f"invalid({enum})"
    return _DTYPE_NAMES[enum]


def shape_of_attr(shape_proto) -> tuple[int | None, ...] | None:
    """A TensorShapeProto as a tuple (None for unknown sizes), None for unknown rank."""
    if shape_proto.unknown_rank:
        return None
    return tuple(None if d.size < 0 else d.size for d in shape_proto.dim)


def placeholder_shape(graph_def, placeholder) -> tuple[int | None, ...] | None:
    """A placeholder's shape: its `shape` attribute, else the `_output_shapes` TF 1.x kept beside it (old GraphDefs,
    producer < 21, wrote an unknown shape as an empty one); None when unknown."""
    attr = placeholder.attr
    shape = shape_of_attr(attr["shape"].shape) if "shape" in attr else None
    if shape == () and graph_def.versions.producer < 21:
        shape = None
    if shape is None and "_output_shapes" in attr and attr["_output_shapes"].list.shape:
        shape = shape_of_attr(attr["_output_shapes"].list.shape[0])
    return shape


def _node(source: TFGraphSource, definition) -> Node:
    data, control = [], []
    for raw in definition.input:
        name, index, is_control = split_input(raw)
        (control if is_control else data).append(name if is_control else (name, index))
    kind = OP_KINDS.get(definition.op, kinds.OTHER)
    return Node(definition.name, definition.op, kind, data, control, _attrs(source, definition, kind, data))


def _attrs(source: TFGraphSource, definition, kind: str, data: list[tuple[str, int]]) -> dict[str, Any]:
    """The attributes the rules read (see `kinds`), decoded from `definition`."""
    attr, op = definition.attr, definition.op
    attrs: dict[str, Any] = {"dtypes": _output_dtypes(definition)}
    if op in SIZE_INPUTS:
        attrs["size_inputs"] = SIZE_INPUTS[op]
    if op in ("Shape", "ShapeN"):
        attrs["shape_vector"] = True
    if kind in kinds.PLACEHOLDERS:
        attrs["dtype"] = dtype_name(attr["dtype"].type)
        attrs["shape"] = placeholder_shape(source.graph_def, definition)
    elif kind == kinds.BATCH_NORM:
        attrs.update(training=bool(attr["is_training"].b), epsilon=float(attr["epsilon"].f),
                     data_format=attr["data_format"].s.decode("utf-8", "replace") or "NHWC")
    elif kind == kinds.REDUCE:
        axes = _constant_input(source, data, 1)
        attrs.update(reduce=REDUCTIONS[op], keep_dims=bool(attr["keep_dims"].b),
                     axes=None if axes is None else tuple(int(a) for a in np.atleast_1d(axes)))
    elif kind == kinds.ALONG_AXIS:
        attrs["axis"] = -1
    elif kind in (kinds.CONV, kinds.MATMUL):
        attrs.update(data_format=attr["data_format"].s.decode("utf-8", "replace") or "NHWC", transpose_a=bool(attr["transpose_a"].b),
                     transpose_b=bool(attr["transpose_b"].b), foldable=op in FOLDABLE)
    elif kind == kinds.SQUEEZE:
        attrs["axes"] = tuple(attr["squeeze_dims"].list.i)
    elif kind in (kinds.UNPACK, kinds.GATHER):
        axis = attr["axis"].i if kind == kinds.UNPACK else _constant_input(source, data, 2)
        attrs["axis"] = int(axis) if axis is not None else 0
        if op in ("Gather", "GatherV2"):
            indices = _constant_input(source, data, 1)
            attrs["indices"] = None if indices is None else tuple(int(i) for i in np.atleast_1d(indices))
    elif kind == kinds.SLICE:
        attrs["first_axis"] = _first_axis(source, definition, data)
    return attrs


def _constant_input(source: TFGraphSource, data: list[tuple[str, int]], slot: int) -> np.ndarray | None:
    """The value of input `slot` when it is a Const (behind Identity-like hops)."""
    if len(data) <= slot:
        return None
    name, seen = data[slot][0], 0
    while name in source.defs and source.defs[name].op in CONSTANT_HOPS and seen < 16:
        name, seen = split_input(source.defs[name].input[0])[0], seen + 1
    return source.constant(name)


def _first_axis(source: TFGraphSource, definition, data) -> tuple[int, int | None, bool] | None:
    """(begin, end or None for 'to the end', shrink) of a slice along axis 0, when its bounds are constants."""
    values = [_constant_input(source, data, slot) for slot in (1, 2)]
    if any(v is None or not np.size(v) for v in values):
        return None
    first, second = (int(np.atleast_1d(v)[0]) for v in values)
    if definition.op == "Slice":
        return first, None if second < 0 else first + second, False
    attr = definition.attr
    begin = 0 if attr["begin_mask"].i & 1 else first
    end = None if attr["end_mask"].i & 1 else second
    return begin, end, bool(attr["shrink_axis_mask"].i & 1)


def _output_dtypes(definition) -> tuple[str, ...]:
    """Output dtype names of a node, from its attrs where the op makes them plain."""
    attr, op = definition.attr, definition.op
    if op in ("Switch", "RefSwitch"):
        return (dtype_name(attr["T"].type),) * 2
    if op in ("Merge", "RefMerge"):
        return dtype_name(attr["T"].type), "int32"
    if op == "ShapeN":
        return (dtype_name(attr["out_type"].type),) * attr["N"].i
    for key in ("dtype", "T", "out_type", "DstT", "Tout", "output_type"):
        if key in attr and attr[key].type:
            count = MULTI_OUTPUT.get(op, 1)
            if op == "Unpack":
                count = attr["num"].i
            elif op in ("Split", "SplitV"):
                count = attr["num_split"].i
            elif op == "TopKV2":
                return dtype_name(attr["T"].type), "int32"
            elif op == "Unique":
                return dtype_name(attr["T"].type), dtype_name(attr["out_idx"].type)
            return (dtype_name(attr[key].type),) * count
    if "Tout" in attr and attr["Tout"].list.type:
        return tuple(dtype_name(t) for t in attr["Tout"].list.type)
    if "output_types" in attr and attr["output_types"].list.type:
        return tuple(dtype_name(t) for t in attr["output_types"].list.type)
    return ()
