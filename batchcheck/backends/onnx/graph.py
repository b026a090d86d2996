"""An ONNX ModelProto as the neutral graph view.

Graph inputs become INPUT nodes named by the input, initializers CONSTANT nodes named by the initializer, and each
op node keeps its (unique, see `load.py`) name with its outputs as ports: value `/conv/Conv_output_0` is tensor
`/conv/Conv:0`. Ops map to kinds, the attributes the rules read are decoded, and constants (also those computed
from constants alone), attributes and the shapes of ONNX shape inference are answered on demand (`OnnxGraphSource`).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ...graph import kinds
from ...graph.index import GraphIndex, Node
from .protos import (
    Protos,
    attribute,
    attributes_of,
    shape_of_type,
    training_dropout,
    training_norm,
)

OP_KINDS: dict[str, str] = {
    "Constant": kinds.CONSTANT,
    **dict.fromkeys(("RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial",
                     "Bernoulli"), kinds.RANDOM),
    **dict.fromkeys(("Shape", "Size"), kinds.SHAPE),
    "Range": kinds.RANGE,
    **dict.fromkeys(("Conv", "ConvInteger", "QLinearConv", "ConvTranspose"), kinds.CONV),
    **dict.fromkeys(("MatMul", "Gemm", "MatMulInteger", "QLinearMatMul", "Einsum"), kinds.MATMUL),
    "BatchNormalization": kinds.BATCH_NORM,
    "Add": kinds.ADD,
    "Sub": kinds.SUB,
    "Mul": kinds.MUL,
    "Div": kinds.DIV,
    "Neg": kinds.NEG,
    **dict.fromkeys(("Cast", "CastLike"), kinds.CAST),
    "Not": kinds.LOGICAL_NOT,
    # variadic Max/Min/Sum/Mean are elementwise in ONNX (the reductions are Reduce*)
    **dict.fromkeys(("Max", "Min", "Sum", "Mean", "Pow", "Mod", "Where", "Sqrt", "Reciprocal", "Exp", "Log",
                     "Abs"), kinds.ELEMENTWISE),
    # ops whose statistics span axes: the reductions, a dynamic quantisation's range (the whole tensor), and
    # the per-sample norms (over the axes they normalise: the batch only when a Reshape folded it in)
    **dict.fromkeys(("ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
                     "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare", "ArgMax", "ArgMin",
                     "DynamicQuantizeLinear", "InstanceNormalization", "LayerNormalization"), kinds.REDUCE),
    **dict.fromkeys(("Softmax", "LogSoftmax", "Hardmax", "TopK", "LRN", "LpNormalization", "CumSum"),
                    kinds.ALONG_AXIS),
    "Slice": kinds.SLICE,
    **dict.fromkeys(("Gather", "GatherND"), kinds.GATHER),
    "Identity": kinds.IDENTITY,
    **dict.fromkeys(("Reshape", "Flatten"), kinds.RESHAPE),
    "Squeeze": kinds.SQUEEZE,
    "Unsqueeze": kinds.EXPAND_DIMS,
    "Concat": kinds.CONCAT,
}
REDUCTIONS = {"ReduceMean": "mean", "ReduceSum": "sum", "ReduceMax": "max", "ReduceMin": "min", "ReduceProd": "prod",
              "ReduceL1": "norm", "ReduceL2": "norm", "ReduceLogSum": "sum", "ReduceLogSumExp": "sum",
              "ReduceSumSquare": "sum", "ArgMax": "argmax", "ArgMin": "argmin", "DynamicQuantizeLinear": "max",
              "InstanceNormalization": "mean", "LayerNormalization": "mean"}
# Ops that take a shape, size, index or axis in these input slots: a value reaches them only through the others.
SIZE_INPUTS = {"Reshape": (1,), "Expand": (1,), "Tile": (1,), "ConstantOfShape": (0,), "Resize": (1, 2, 3),
               "Upsample": (1,), "Pad": (1, 2, 3), "Slice": (1, 2, 3, 4), "Squeeze": (1,), "Unsqueeze": (1,),
               "Split": (1,), "TopK": (1,), "OneHot": (1,), "CumSum": (1,), "RandomNormal": (), "Range": ()}
REDUCE_AXES_INPUT = {"ReduceSum": 13}  # from this opset on the axes are input 1 (the other Reduce* from 18)
SOFTMAX_DEFAULT_AXIS_CHANGED = 13  # Softmax/LogSoftmax/Hardmax: axis 1 before, -1 from this opset on
INPUT_OP = "Input"
INITIALIZER_OP = "Initializer"


def graph_index(model) -> GraphIndex:
    """The neutral view of `model` (a ModelProto with unique node names)."""
    source = OnnxGraphSource(model)
    return GraphIndex(source.nodes(), source)


class OnnxGraphSource:
    """What needs the ModelProto: constants, attributes, inferred shapes; `protos` holds the model's lookups."""

    def __init__(self, model) -> None:
        self.protos = Protos(model)
        self.types = self.protos.types  # each value's TypeProto from ONNX inference (the batch left symbolic)
        self._shapes: dict[str, tuple[int | None, ...] | None] | None = None

    def nodes(self) -> list[Node]:
        p = self.protos
        found = [Node(name, INPUT_OP, kinds.INPUT, [], [], self._input_attrs(name)) for name in p.inputs]
        found += [Node(name, INITIALIZER_OP, kinds.CONSTANT, [], [], {"dtypes": (p.initializer_dtype(name),)})
                  for name in p.initializers]
        for node in p.model.graph.node:
            data = [p.producer[value] for value in p.inputs_of(node) if value in p.producer]
            kind = self._kind(node)
            found.append(Node(node.name, node.op_type, kind, data, [], self._attrs(node, kind)))
        return found

    def _kind(self, node) -> str:
        if node.op_type == "Dropout":
            return kinds.RANDOM if training_dropout(node, self.protos) else kinds.IDENTITY
        return OP_KINDS.get(node.op_type, kinds.OTHER) if node.domain in ("", "ai.onnx") else kinds.OTHER

    # -- GraphSource ---------------------------------------------------------------------------------

    def constant(self, name: str) -> np.ndarray | None:
        return self.protos.constant(name)

    def attributes(self, name: str) -> dict[str, Any]:
        node = self.protos.nodes.get(name)
        return attributes_of(node) if node is not None else {}

    def static_shapes(self) -> dict[str, tuple[int | None, ...] | None]:
        if self._shapes is None:
            p, shapes = self.protos, {}
            for value, (node, port) in p.producer.items():
                if value in p.initializers:
                    shapes[f"{node}:{port}"] = tuple(int(d) for d in p.initializers[value].dims)
                elif value in self.types:
                    shapes[f"{node}:{port}"] = shape_of_type(self.types[value])
            self._shapes = shapes
        return self._shapes

    # -- attributes ----------------------------------------------------------------------------------

    def _dtype(self, value: str) -> str:
        return self.protos.dtype_of(self.types.get(value)) if value else "unknown"

    def _rank(self, value: str) -> int | None:
        shape = shape_of_type(self.types[value]) if value in self.types else None
        return None if shape is None else len(shape)

    def _input_attrs(self, name: str) -> dict[str, Any]:
        value_type = self.protos.inputs[name].type
        dtype = self.protos.dtype_of(value_type)
        return {"dtypes": (dtype,), "dtype": dtype, "shape": shape_of_type(value_type)}

    def _attrs(self, node, kind: str) -> dict[str, Any]:
        """The attributes the rules read (see `graph.kinds`), decoded from `node`."""
        op, p = node.op_type, self.protos
        attrs: dict[str, Any] = {"dtypes": tuple(self._dtype(v) for v in node.output)}
        if op in SIZE_INPUTS:
            attrs["size_inputs"] = SIZE_INPUTS[op]
        if op == "Shape":
            attrs["shape_vector"] = True
        inputs = list(node.input)
        rank = self._rank(inputs[0]) if inputs and inputs[0] else None
        if kind == kinds.BATCH_NORM:
            attrs.update(training=training_norm(node, p.opset), epsilon=float(attribute(node, "epsilon", 1e-5)),
                         data_format="NCHW")
        elif kind == kinds.REDUCE:
            attrs.update(reduce=REDUCTIONS[op], **self._reduced(node, rank))
        elif kind == kinds.ALONG_AXIS:
            attrs["axis"] = int(self._along_axis(node))
        elif kind in (kinds.CONV, kinds.MATMUL):
            attrs.update(data_format="NCHW", transpose_a=bool(attribute(node, "transA", 0)),
                         transpose_b=bool(attribute(node, "transB", 0)), foldable=op == "Conv")
        elif kind == kinds.SQUEEZE:
            axes = attribute(node, "axes", None) if p.opset < 13 else p.constant_input(node, 1)
            attrs["axes"] = () if axes is None else tuple(int(a) for a in np.atleast_1d(axes))
        elif kind == kinds.GATHER:
            attrs["axis"] = int(attribute(node, "axis" if op == "Gather" else "batch_dims", 0))
            indices = p.constant_input(node, 1) if op == "Gather" else None
            attrs["indices"] = None if indices is None else tuple(int(i) for i in np.atleast_1d(indices).reshape(-1))
        elif kind == kinds.SLICE:
            attrs["first_axis"] = self._first_axis(node)
        return attrs

    def _reduced(self, node, rank: int | None) -> dict[str, Any]:
        """`axes` (None: every axis) and `keep_dims` of a reduction, or of a norm over the axes it normalises."""
        op, p = node.op_type, self.protos
        if op == "DynamicQuantizeLinear":
            return {"axes": None, "keep_dims": False}
        if op in ("ArgMax", "ArgMin"):
            return {"axes": (int(attribute(node, "axis", 0)),), "keep_dims": bool(attribute(node, "keepdims", 1))}
        if op == "InstanceNormalization":
            return {"axes": tuple(range(2, rank)) if rank else (2, -1), "keep_dims": True}
        if op == "LayerNormalization":
            axis = int(attribute(node, "axis", -1))
            return {"axes": tuple(range(axis % rank, rank)) if rank else (axis,), "keep_dims": True}
        axes_from_input = p.opset >= REDUCE_AXES_INPUT.get(op, 18)
        axes = p.constant_input(node, 1) if axes_from_input else attribute(node, "axes", None)
        if axes_from_input and axes is None and len(node.input) > 1 and node.input[1]:
            return {"axes": None, "keep_dims": bool(attribute(node, "keepdims", 1))}  # computed axes: unknown
        if axes is not None and np.size(axes) == 0:
            axes = None
        if axes is None and attribute(node, "noop_with_empty_axes", 0):
            axes = ()
        return {"axes": None if axes is None else tuple(int(a) for a in np.atleast_1d(axes)),
                "keep_dims": bool(attribute(node, "keepdims", 1))}

    def _along_axis(self, node) -> int:
        op = node.op_type
        if op in ("Softmax", "LogSoftmax", "Hardmax"):
            return attribute(node, "axis", 1 if self.protos.opset < SOFTMAX_DEFAULT_AXIS_CHANGED else -1)
        if op in ("LRN",):
            return 1
        if op == "CumSum":
            axis = self.protos.constant_input(node, 1)
            return int(np.atleast_1d(axis)[0]) if axis is not None and np.size(axis) else 0
        return attribute(node, "axis", -1)

    def _first_axis(self, node) -> tuple[int, int | None, bool] | None:
        """(begin, end or None for 'to the end', False) of a Slice along axis 0, when its bounds are constants."""
        p = self.protos
        if p.opset < 10:
            starts, ends, axes, steps = (attribute(node, key, None) for key in ("starts", "ends", "axes", "steps"))
        else:
            starts, ends, axes, steps = (p.constant_input(node, slot) for slot in (1, 2, 3, 4))
        if starts is None or ends is None:
            return None
        starts, ends = np.atleast_1d(starts).tolist(), np.atleast_1d(ends).tolist()
        axes = list(range(len(starts))) if axes is None else np.atleast_1d(axes).tolist()
        if 0 not in axes:
            return None
        i = axes.index(0)
        if steps is not None and np.atleast_1d(steps).tolist()[i] != 1:
            return None
        end = int(ends[i])
        return int(starts[i]), None if end >= 2**31 - 1 else end, False

