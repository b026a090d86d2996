"""Load an ONNX file into one self-contained ModelProto: parsed with a bounded size, every node given a unique name,
scanned (`scan.py`), its external data checked to stay inside the model's folder and read into the model."""
from __future__ import annotations

import os
from pathlib import Path

from ...errors import UsageError, first_line, one_line
from ...formats import SUPPORTED
from ...model import LoadedModel
from .lite import DEFAULT, EXTERNAL, protobuf
from .scan import scan_model

MAX_MODEL_BYTES = 2**31 - 1  # a protobuf message holds at most 2 GB; with its external data, so must the model
MAGIC = ((b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"PK\x03\x04", "a zip archive"),
         (b"\x89HDF", "an HDF5 file"), (b"\x1f\x8b", "a gzip archive"))


def load_onnx(path: Path, allowed_ops: tuple[str, ...] = ()) -> LoadedModel:
    """`path` as a `LoadedModel` holding a ModelProto; `UsageError` with one line when it cannot be used."""
    proto = protobuf(path)
    if path.is_dir():
        raise UsageError(f"model `{path}`: a folder, not an ONNX file; pass the .onnx file ({SUPPORTED})")
    data = _read(path, MAX_MODEL_BYTES)
    model = proto.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception as exc:  # noqa: BLE001 - protobuf raises DecodeError, RuntimeWarning… for bytes it cannot parse
        raise UsageError(f"model `{path}`: not an ONNX model: {_describe(data)} ({first_line(exc)}); "
                         f"pass {SUPPORTED}") from None
    if not model.HasField("graph") or not model.graph.node:
        raise UsageError(f"model `{path}`: not an ONNX model: {_describe(data)} (no graph nodes); pass {SUPPORTED}")
    notes = _name_nodes(model)
    scan = scan_model(model, path, allowed_ops)
    _read_external_data(model, path)
    initializers = {t.name for t in model.graph.initializer}
    producer = {value: f"{node.name}:{port}" for node in model.graph.node for port, value in enumerate(node.output)}
    inputs = [i.name for i in model.graph.input if i.name not in initializers]
    outputs = [producer.get(o.name, f"{o.name}:0") for o in model.graph.output]
    return LoadedModel(path, "onnx", model, inputs, outputs, notes, scan, backend="onnx")


def _read(path: Path, most: int) -> bytes:
    try:
        size = path.stat().st_size
        if size > most:
            raise UsageError(f"model `{path}`: {size:,} bytes, over the {most:,} an ONNX protobuf can hold; store "
                             f"the weights as external data beside it")
        return path.read_bytes()
    except OSError as exc:
        raise UsageError(f"model `{path}`: cannot be read ({exc.strerror}); check the path and permissions") from None


def _describe(data: bytes) -> str:
    if not data:
        return "the file is empty"
    for magic, name in MAGIC:
        if data.startswith(magic):
            return f"it is {name}"
    try:
        data[:4096].decode("utf-8")
        return "it is text, not a binary ONNX protobuf"
    except UnicodeDecodeError:
        return f"{len(data):,} bytes that do not hold an ONNX ModelProto (truncated or corrupt?)"


def _name_nodes(model) -> list[str]:
    """Give every node a unique name that no graph input or initializer has (onnxruntime names a failing node by
    it, and batchcheck names tensors `node:port`); what was renamed, for the report."""
    taken = {value.name for value in model.graph.input} | {t.name for t in model.graph.initializer}
    renamed = []
    for index, node in enumerate(model.graph.node):
        name = node.name
        if not name or name in taken:
            base = name or f"{node.op_type}_{index}"
            name, suffix = base, 0
            while name in taken:
                suffix += 1
                name = f"{base}_{suffix}"
            renamed.append((node.name, name))
            node.name = name
        taken.add(name)
    if not renamed:
        return []
    old, new = renamed[0]
    example = f"`{one_line(old)}` became `{one_line(new)}`" if old else f"e.g. `{one_line(new)}`"
    return [f"{len(renamed)} node(s) had no name or a name used twice and were renamed ({example})"]


def _external_tensors(model):
    """Every tensor of the model whose data is stored outside it (initializers, also in subgraphs, and
    Constant values, also in functions)."""
    for tensor in _tensors([model.graph, *model.functions]):
        if tensor.data_location == EXTERNAL:
            yield tensor


def _tensors(graphs):
    """The tensors `graphs` (graphs or functions) hold: initializers and attribute values, also in subgraphs."""
    for graph in graphs:
        yield from getattr(graph, "initializer", ())
        for node in graph.node:
            for attr in node.attribute:
                if attr.HasField("t"):
                    yield attr.t
                yield from attr.tensors
                yield from _tensors([attr.g] if attr.HasField("g") else [])
                yield from _tensors(attr.graphs)


def _read_external_data(model, path: Path) -> None:
    """Read each external tensor's bytes into the model after checking that its file lies inside the model's
    folder (no absolute path, no climbing out, no symlink out) and exists."""
    folder = path.resolve().parent
    total = 0
    for tensor in list(_external_tensors(model)):
        info = {entry.key: entry.value for entry in tensor.external_data}
        location = info.get("location", "")
        where = f"model `{path}`: weight `{one_line(tensor.name)}` is stored in `{one_line(location)}`"
        target = _inside(folder, location, where)
        try:
            offset, size = int(info.get("offset", 0)), target.stat().st_size
            length = int(info.get("length", size - offset))
        except ValueError:
            raise UsageError(f"{where} with an offset or length that is not a number; the model is broken, "
                             f"re-export it") from None
        if offset < 0 or length < 0 or offset + length > size:
            raise UsageError(f"{where} at bytes {offset}..{offset + length}, past the end of the {size:,}-byte file; "
                             f"the data file does not belong to this model")
        total += length
        if total > MAX_MODEL_BYTES:
            raise UsageError(f"model `{path}`: over {MAX_MODEL_BYTES:,} bytes with its external data, more than "
                             f"batchcheck holds in one ONNX protobuf")
        with open(target, "rb") as file:
            file.seek(offset)
            tensor.raw_data = file.read(length)
        del tensor.external_data[:]
        tensor.data_location = DEFAULT


def _inside(folder: Path, location: str, where: str) -> Path:
    """The file `location` names inside `folder`, walked one part at a time so that no part leaves the folder,
    even through a symlink; `UsageError` when it would leave it or does not exist."""
    outside = f"{where}, outside the model's folder; refused (a model may read data beside it only): put the file there"
    if not location or os.path.isabs(location) or location.startswith("\\"):
        raise UsageError(outside)
    current = folder
    for part in Path(location).parts:
        if part == "..":
            if current == folder:
                raise UsageError(outside)
            current = current.parent
            continue
        current = current / part
        if not os.path.lexists(current):
            raise UsageError(f"{where}, which does not exist beside the model; put the data file there")
        if current.is_symlink():
            current = current.resolve()
        if current != folder and folder not in current.parents:
            raise UsageError(outside)
    if not current.is_file():
        raise UsageError(f"{where}, which is not a regular file beside the model; put the data file there")
    return current
