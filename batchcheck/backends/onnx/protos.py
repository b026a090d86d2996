"""Lookups into one ONNX ModelProto (`Protos`): nodes by name, the producer of each value, initializers, graph
inputs, the default opset, inferred types, and constants, also those computed from constants alone (evaluated with
onnx's reference evaluator when small)."""
from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import UsageError, first_line
from .lite import attribute_value, infer_shapes, onnx_pb, to_array

DTYPE_NAMES = {1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64", 8: "string",
               9: "bool", 10: "float16", 11: "float64", 12: "uint32", 13: "uint64", 14: "complex64",
               15: "complex128", 16: "bfloat16"}
MAX_CONSTANT_ELEMENTS = 1 << 16  # values computed from constants are evaluated only when each is at most this big
MAX_CONSTANT_NODES = 256  # and when they take at most this many nodes
ORT_DOMAINS = ("", "ai.onnx")
GRAPH, GRAPHS = 5, 10  # AttributeProto types
SHAPE_DATA_ELEMENTS = 1024  # shape inference is given the values of initializers at most this big
TENSOR_DATA_FIELDS = ("raw_data", "float_data", "int32_data", "string_data", "int64_data", "double_data",
                      "uint64_data")


def default_opset(model) -> int:
    """The version of the default ONNX domain the model imports."""
    return next((int(o.version) for o in model.opset_import if o.domain in ORT_DOMAINS), 1)


def attribute(node, name: str, default: Any = None) -> Any:
    """Attribute `name` of `node` as a plain value (strings decoded), else `default`."""
    for attr in node.attribute:
        if attr.name == name:
            value = attribute_value(attr)
            if isinstance(value, bytes):
                return value.decode("utf-8", "replace")
            return list(value) if isinstance(value, (list, tuple)) or hasattr(value, "extend") else value
    return default


def attributes_of(node) -> dict[str, Any]:
    """Every attribute of `node` as a plain value for people to read (tensors and graphs summarised)."""
    kinds = onnx_pb().AttributeProto
    shown = {}
    for attr in sorted(node.attribute, key=lambda a: a.name):
        if attr.type == kinds.TENSOR:
            shown[attr.name] = f"tensor {DTYPE_NAMES.get(attr.t.data_type, attr.t.data_type)} {list(attr.t.dims)}"
        elif attr.type in (kinds.GRAPH, kinds.GRAPHS):
            graphs = [attr.g] if attr.type == kinds.GRAPH else list(attr.graphs)
            shown[attr.name] = ", ".join(f"graph of {len(g.node)} nodes" for g in graphs)
        elif attr.type in (kinds.SPARSE_TENSOR, kinds.TENSORS, kinds.SPARSE_TENSORS,
                           kinds.TYPE_PROTO, kinds.TYPE_PROTOS):
            shown[attr.name] = kinds.AttributeType.Name(attr.type).lower()
        else:
            shown[attr.name] = attribute(node, attr.name)
    return shown


def shape_of_type(value_type) -> tuple[int | None, ...] | None:
    """A tensor TypeProto's shape (None for symbolic or unknown sizes), None for an unknown rank or non-tensor."""
    if value_type is None or value_type.WhichOneof("value") != "tensor_type":
        return None
    tensor = value_type.tensor_type
    if not tensor.HasField("shape"):
        return None
    return tuple(d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim)


def dtype_name(elem_type: int) -> str:
    """`float32`, `uint8`… for a TensorProto data type."""
    if elem_type in DTYPE_NAMES:
        return DTYPE_NAMES[elem_type]
    try:
        return onnx_pb().TensorProto.DataType.Name(elem_type).lower()
    except ValueError:
        return f"invalid({elem_type})"


def inferred_types(model) -> dict[str, Any]:
    """Each value's TypeProto after ONNX type and shape inference (as declared where inference fails)."""
    inferred, light = model, _without_weights(model)
    for data_prop in (True, False):
        try:
            inferred = infer_shapes(light, data_prop)
            break
        except Exception:  # noqa: BLE001 - inference fails on many odd graphs; the declared types remain
            continue
    graph = inferred.graph
    return {v.name: v.type for v in [*graph.input, *graph.value_info, *graph.output] if v.HasField("type")}


def _without_weights(model):
    """A copy of `model` whose initializers of more than SHAPE_DATA_ELEMENTS values keep their type and shape but
    not their values: inference reads the values of small ones only (a Reshape's shape, a Slice's starts), and the
    weights would be serialized, parsed and copied back for nothing."""
    light = type(model)()
    light.CopyFrom(model)
    for tensor in light.graph.initializer:
        if np.prod(tensor.dims, dtype=np.float64) > SHAPE_DATA_ELEMENTS:
            for field in TENSOR_DATA_FIELDS:
                tensor.ClearField(field)
    return light


def tensor_value(tensor, where: str) -> np.ndarray:
    """A TensorProto's values; `UsageError` when its bytes do not fit its type and shape."""
    try:
        return to_array(tensor)
    except Exception as exc:  # noqa: BLE001 - onnx raises ValueError, TypeError… for broken tensors
        raise UsageError(f"{where}: its value cannot be read ({first_line(exc)}); the model is broken, re-export "
                         f"it") from None


def graph_attributes(node) -> list:
    """The subgraphs `node` holds (If branches, Loop and Scan bodies)."""
    return [g for attr in node.attribute for g in
            ([attr.g] if attr.type == GRAPH else list(attr.graphs) if attr.type == GRAPHS else [])]


def outer_values(graph) -> list[str]:
    """Values a subgraph reads from the scopes around it (not its inputs, initializers or own outputs)."""
    defined = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    used: list[str] = []
    for node in graph.node:
        inner = [v for g in graph_attributes(node) for v in outer_values(g)]
        used += [v for v in [*node.input, *inner] if v and v not in defined]
        defined.update(node.output)
    return list(dict.fromkeys(used))


def training_norm(node, opset: int) -> bool:
    """Whether a BatchNormalization normalises with the batch's statistics: `training_mode=1` (opset 14 on),
    the optional training outputs asked for (opsets 7-13), `is_test=0` (before 7)."""
    if opset >= 14:
        return bool(attribute(node, "training_mode", 0))
    if opset >= 7:
        return sum(1 for value in node.output if value) > 1
    return not attribute(node, "is_test", 0)


def training_dropout(node, protos: Protos) -> bool:
    """Whether a Dropout drops: `training_mode` true (opset 12 on; not constant counts as true), `is_test=0`
    (before 7); a ratio of 0 never drops."""
    if protos.opset < 7:
        return not attribute(node, "is_test", 0)
    ratio = protos.constant_input(node, 1) if protos.opset >= 12 else attribute(node, "ratio", 0.5)
    if ratio is not None and np.size(ratio) == 1 and float(np.asarray(ratio).reshape(-1)[0]) == 0.0:
        return False
    if protos.opset < 12 or len(node.input) < 3 or not node.input[2]:
        return False
    flag = protos.constant_input(node, 2)
    return flag is None or bool(np.asarray(flag).reshape(-1)[0])


class Protos:
    """Lookups into one ModelProto (whose node names are unique and not empty)."""

    def __init__(self, model) -> None:
        graph = model.graph
        self.model = model
        self.opset = default_opset(model)
        self.initializers = {t.name: t for t in graph.initializer}
        self.inputs = {i.name: i for i in graph.input if i.name not in self.initializers}
        self.nodes = {n.name: n for n in graph.node}
        self.producer: dict[str, tuple[str, int]] = {name: (name, 0) for name in [*self.inputs, *self.initializers]}
        for node in graph.node:
            for port, value in enumerate(node.output):
                if value:
                    self.producer[value] = (node.name, port)
        self._types: dict[str, Any] | None = None
        self._constants: dict[str, np.ndarray | None] = {}

    @property
    def types(self) -> dict[str, Any]:
        """Each value's TypeProto, from ONNX type and shape inference."""
        if self._types is None:
            self._types = inferred_types(self.model)
        return self._types

    def inputs_of(self, node) -> list[str]:
        """The values `node` reads: its inputs, then those its subgraphs read from outside."""
        inner = [v for g in graph_attributes(node) for v in outer_values(g)]
        return list(dict.fromkeys(v for v in [*node.input, *inner] if v))

    def value(self, tensor: str) -> str | None:
        """The ONNX value of tensor `node:port` (None when it names none)."""
        node, _, port = tensor.rpartition(":")
        if node in self.nodes:
            outputs = self.nodes[node].output
            return outputs[int(port)] if port.isdigit() and int(port) < len(outputs) and outputs[int(port)] else None
        return node if port == "0" and node in self.producer else None

    def tensor(self, value: str) -> str:
        """The tensor name `node:port` of ONNX value `value`."""
        node, port = self.producer[value]
        return f"{node}:{port}"

    def dtype_of(self, value_type) -> str:
        """A TypeProto's dtype name; `unknown` when not inferred, the kind for non-tensors (`sequence`…)."""
        if value_type is None or value_type.WhichOneof("value") is None:
            return "unknown"
        kind = value_type.WhichOneof("value")
        if kind != "tensor_type":
            return kind.removesuffix("_type")
        return dtype_name(value_type.tensor_type.elem_type) if value_type.tensor_type.elem_type else "unknown"

    def initializer_dtype(self, name: str) -> str:
        return dtype_name(self.initializers[name].data_type)

    def constant_input(self, node, slot: int) -> np.ndarray | None:
        """The value of `node`'s input `slot` when it is a constant."""
        if len(node.input) <= slot or not node.input[slot] or node.input[slot] not in self.producer:
            return None
        source, port = self.producer[node.input[slot]]
        return self.constant(source) if port == 0 else None

    def constant(self, name: str) -> np.ndarray | None:
        """Node `name`'s (first) value when it depends on constants alone: an initializer, a Constant node, or a
        small computation from them (evaluated once)."""
        if name not in self._constants:
            self._constants[name] = self._constant(name)
        return self._constants[name]

    def _constant(self, name: str) -> np.ndarray | None:
        if name in self.initializers:
            return tensor_value(self.initializers[name], f"initializer `{name}`")
        node = self.nodes.get(name)
        if node is None:
            return None
        if node.op_type == "Constant" and node.domain in ORT_DOMAINS:
            return _constant_node_value(node)
        closure = self._constant_closure(node)
        return None if closure is None else self._evaluated(closure, node)

    def _constant_closure(self, node) -> list | None:
        """The nodes `node` is computed from when they hold constants only, small ones; else None."""
        seen, stack = {}, [node]
        while stack:
            current = stack.pop()
            if current.name in seen:
                continue
            if (current.domain not in ORT_DOMAINS or graph_attributes(current) or len(seen) >= MAX_CONSTANT_NODES
                    or current.op_type.startswith(("Random", "Multinomial", "Bernoulli", "Dropout"))):
                return None
            for value in current.output:
                shape = shape_of_type(self.types.get(value)) if value else ()
                if shape is None or None in shape or np.prod(shape, dtype=np.float64) > MAX_CONSTANT_ELEMENTS:
                    return None
            seen[current.name] = current
            for value in self.inputs_of(current):
                source = self.producer.get(value, (None,))[0]
                if source in self.inputs or source is None:
                    return None
                if source in self.nodes:
                    stack.append(self.nodes[source])
        return [n for n in self.model.graph.node if n.name in seen]

    def _evaluated(self, nodes: list, node) -> np.ndarray | None:
        """`node`'s first output, computed by onnx's reference evaluator from `nodes` and the initializers."""
        from onnx import helper
        from onnx.reference import ReferenceEvaluator

        used = {v for n in nodes for v in n.input}
        graph = helper.make_graph(nodes, "constant", [], [helper.make_empty_tensor_value_info(node.output[0])],
                                  [self.initializers[v] for v in used if v in self.initializers])
        model = helper.make_model(graph, opset_imports=list(self.model.opset_import), ir_version=self.model.ir_version)
        try:
            return np.asarray(ReferenceEvaluator(model).run(None, {})[0])
        except Exception:  # noqa: BLE001 - an op the reference evaluator lacks: not known statically
            return None


def _constant_node_value(node) -> np.ndarray | None:
    """The value a Constant node holds (`value`, `value_float(s)`, `value_int(s)`, `value_string(s)`)."""
    for attr in node.attribute:
        if attr.name == "value":
            return tensor_value(attr.t, f"node `{node.name}` (Constant)")
        if attr.name.startswith("value_") and attr.name != "sparse_value":
            value = attribute(node, attr.name)
            return np.asarray(value, dtype=np.float32 if "float" in attr.name else
                              np.int64 if "int" in attr.name else object)
    return None
