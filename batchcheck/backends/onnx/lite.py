"""onnx without `import onnx`: its protobuf classes, its C++ shape inference and opset table, and the few helpers the
check needs, written as `onnx.helper` and `onnx.numpy_helper` write them.

`import onnx` costs about half a second (its helper imports ml_dtypes, whose dtypes register their numpy casts),
more than the forward passes of a small model. The check needs only the generated protobuf module and the C++
extension, so both are loaded from the installed onnx package under their own names: a later `import onnx`
(fixtures, `fix`, the reference evaluator) finds them in `sys.modules` and reuses them, so there is one set of
message classes. Where onnx is imported already its modules are used; whatever cannot be loaded this way falls back
to `import onnx` (and without onnx, to the one line saying what to install).
"""
from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from .env import import_onnx, import_ort

PROTOBUF, EXTENSION = "onnx.onnx_ml_pb2", "onnx.onnx_cpp2py_export"
DATA_TYPES = {np.dtype(name): number for number, name in (
    (1, "float32"), (2, "uint8"), (3, "int8"), (4, "uint16"), (5, "int16"), (6, "int32"), (7, "int64"), (9, "bool"),
    (10, "float16"), (11, "float64"), (12, "uint32"), (13, "uint64"))}
NUMPY_TYPES = {number: dtype for dtype, number in DATA_TYPES.items()}
DEFAULT, EXTERNAL = 0, 1  # TensorProto's data locations
SINGLE_FIELDS = {"FLOAT": "f", "INT": "i", "STRING": "s", "TENSOR": "t", "GRAPH": "g", "SPARSE_TENSOR": "sparse_tensor",
                 "TYPE_PROTO": "tp"}  # AttributeProto's field per single-valued type; lists: the type's name


def protobuf(path: Path | str) -> ModuleType:
    """onnx's generated protobuf module (`ModelProto`, `TensorProto`…); `UsageError` naming `path` and what to
    install when onnx or onnxruntime is missing."""
    import_ort(path)
    return _module(PROTOBUF, path)


def extension(path: Path | str = "onnx") -> ModuleType:
    """onnx's C++ extension (`shape_inference`, `defs`…)."""
    return _module(EXTENSION, path)


def _module(name: str, path: Path | str) -> ModuleType:
    if sys.modules.get(name) is None:
        try:
            _load(name)
        except Exception:  # noqa: BLE001 - a layout this loader does not know: the package loads it
            sys.modules.pop(name, None)
            import_onnx(path)
    return sys.modules[name]


def _load(name: str) -> None:
    """Load module `name` of the onnx package from its file without running the package's `__init__`."""
    folder = Path(importlib.util.find_spec("onnx").origin).parent
    if name == EXTENSION:
        stem = name.rpartition(".")[2]
        file = next(folder / f"{stem}{suffix}" for suffix in importlib.machinery.EXTENSION_SUFFIXES
                    if (folder / f"{stem}{suffix}").exists())
        spec = importlib.util.spec_from_loader(name, importlib.machinery.ExtensionFileLoader(name, str(file)),
                                               origin=str(file))
    else:
        spec = importlib.util.spec_from_file_location(name, folder / f"{name.rpartition('.')[2]}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)


def version() -> str:
    """The installed onnx's version: from the name of its dist-info folder beside it when there is one (importlib's
    metadata lookup takes longer than checking a small model's batch)."""
    if sys.modules.get("onnx") is not None:
        return sys.modules["onnx"].__version__
    found = list(Path(importlib.util.find_spec("onnx").origin).parent.parent.glob("onnx-*.dist-info"))
    if len(found) == 1:
        return found[0].name[len("onnx-"):-len(".dist-info")]
    from importlib.metadata import version as installed

    return installed("onnx")


def newest_opset(path: Path | str) -> int:
    """The newest version of the default ONNX domain this onnx knows."""
    return extension(path).defs.schema_version_map()[""][1]


def infer_shapes(model, data_prop: bool):
    """`onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=…)`."""
    inferred = type(model)()
    inferred.ParseFromString(extension().shape_inference.infer_shapes(model.SerializeToString(), False, False,
                                                                      data_prop))
    return inferred


# -- as onnx.helper and onnx.numpy_helper write them ---------------------------------------------------------------

def node(op_type: str, inputs: list[str], outputs: list[str], name: str, **attrs: Any):
    """`helper.make_node` for int, float, string and int or float list attributes."""
    pb = onnx_pb()
    made = pb.NodeProto(op_type=op_type, input=inputs, output=outputs, name=name)
    for key, value in sorted(attrs.items()):
        attr = made.attribute.add(name=key)
        if isinstance(value, (bool, int, np.integer)):
            attr.type, attr.i = pb.AttributeProto.INT, int(value)
        elif isinstance(value, (float, np.floating)):
            attr.type, attr.f = pb.AttributeProto.FLOAT, float(value)
        elif isinstance(value, (str, bytes)):
            attr.type, attr.s = pb.AttributeProto.STRING, value.encode() if isinstance(value, str) else value
        elif all(isinstance(v, (int, np.integer)) for v in value):
            attr.type = pb.AttributeProto.INTS
            attr.ints.extend(int(v) for v in value)
        else:
            attr.type = pb.AttributeProto.FLOATS
            attr.floats.extend(float(v) for v in value)
    return made


def value_info(name: str, elem_type: int | None = None, shape: list | None = None):
    """`helper.make_tensor_value_info` (a str size is symbolic, None unknown; no shape: any rank); with no type,
    `make_empty_tensor_value_info`."""
    info = onnx_pb().ValueInfoProto(name=name)
    if elem_type is not None:
        tensor = info.type.tensor_type
        tensor.elem_type = elem_type
        if shape is not None:
            tensor.shape.SetInParent()
        for size in shape or []:
            dim = tensor.shape.dim.add()
            if isinstance(size, str):
                dim.dim_param = size
            elif size is not None:
                dim.dim_value = size
    return info


def tensor(array: np.ndarray, name: str):
    """`numpy_helper.from_array` for the numeric dtypes and bool."""
    array = np.asarray(array)
    return onnx_pb().TensorProto(name=name, dims=array.shape, data_type=DATA_TYPES[array.dtype],
                                             raw_data=array.astype(array.dtype.newbyteorder("<")).tobytes())


def to_array(tensor) -> np.ndarray:
    """`numpy_helper.to_array`: here for numeric and bool tensors stored as raw little-endian bytes (as exporters
    write weights); any other tensor through onnx itself."""
    if not raw(tensor):
        from onnx import numpy_helper

        return numpy_helper.to_array(tensor)
    return np.frombuffer(tensor.raw_data, dtype=NUMPY_TYPES[tensor.data_type]).reshape(tensor.dims)


def raw(tensor) -> bool:
    """Whether `tensor` holds numeric or bool values as raw little-endian bytes, read here without onnx."""
    return (tensor.data_type in NUMPY_TYPES and tensor.HasField("raw_data") and not tensor.HasField("segment")
            and tensor.data_location != EXTERNAL and sys.byteorder == "little")


def external(tensor):
    """A header of `tensor` (name, type, shape) whose values are stored elsewhere: onnxruntime is handed them."""
    header = onnx_pb().TensorProto(name=tensor.name, dims=tensor.dims, data_type=tensor.data_type,
                                   data_location=EXTERNAL)
    header.external_data.add(key="location", value=f"batchcheck-shared/{tensor.name}")
    return header


def attribute_value(attr) -> Any:
    """`helper.get_attribute_value`."""
    if attr.ref_attr_name:
        raise ValueError(f"Cannot get value of reference attribute: {attr}")
    kind = onnx_pb().AttributeProto.AttributeType.Name(attr.type)
    if kind == "UNDEFINED":
        return None
    return getattr(attr, SINGLE_FIELDS[kind]) if kind in SINGLE_FIELDS else list(getattr(attr, kind.lower()))


def onnx_pb() -> ModuleType:
    """The protobuf module, once a model has been loaded (`protobuf`), or onnx imported."""
    return sys.modules.get(PROTOBUF) or _module(PROTOBUF, "onnx")
