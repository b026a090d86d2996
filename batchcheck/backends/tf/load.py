"""TensorFlow loaders: turn a frozen GraphDef, SavedModel, Keras file or meta graph + checkpoint into one
representation, a frozen GraphDef (with TF2 control flow inlined).

Each loader returns a `LoadedModel`; everything after it (preparation, running, comparing) only
sees the GraphDef and the input/output names the format itself declares.
"""
from __future__ import annotations

import re
from pathlib import Path

from ...errors import UsageError, did_you_mean, first_line
from ...formats import SUPPORTED
from ...model import LoadedModel
from .env import import_tf
from .keras2 import load_keras2, tf_keras_install, trace_keras2, usable_tf_keras
from .keras_config import KerasFile, read_keras_file, refuse_python
from .keras_notes import augmentation_notes
from .library import drop_uncalled_functions, inline_functions
from .scan import scan_graph_def, scan_meta_graph, scan_saved_model

CALL_OPS = frozenset({"If", "StatelessIf", "While", "StatelessWhile", "Case", "StatelessCase",
                      "PartitionedCall", "StatefulPartitionedCall"})
# A text-format GraphDef starts with one of its fields (comments allowed), whatever the file is named.
TEXT_GRAPH_DEF = re.compile(rb"^\s*(#[^\n]*\n\s*)*(node|versions|library)\s*[{:]")
VARIABLE_OPS = frozenset({"VariableV2", "Variable", "VarHandleOp"})


def load_graph(path: Path, model_format: str, *, signature: str = "serving_default",
               checkpoint: Path | None = None, outputs: list[str] | None = None,
               allowed_ops: tuple[str, ...] = ()) -> LoadedModel:
    """Load `path` into a `LoadedModel`; `UsageError` with one line when it cannot be used or holds a refused op.

    The op scan runs before TensorFlow imports anything the file holds (SavedModel and meta graph loaders scan
    their files first) and again on the final GraphDef (what a Keras file became)."""
    if model_format == "savedmodel" and path.is_file():
        path = path.parent
    loader = {"pb": _load_graph_def, "pbtxt": _load_graph_def, "savedmodel": _load_saved_model,
              "keras": _load_keras, "meta": _load_meta_graph}[model_format]
    loaded = loader(path, model_format=model_format, signature=signature,
                    checkpoint=checkpoint, outputs=outputs or [], allowed_ops=allowed_ops)
    if model_format in ("pb", "pbtxt"):
        drop_uncalled_functions(loaded)
    # what the SavedModel, meta graph or Keras file became keeps its own saver functions (never called)
    saver_roots = None if model_format in ("pb", "pbtxt") else ()
    loaded.scan = scan_graph_def(loaded.graph, path, allowed_ops, saver_roots=saver_roots)
    _reject_variables(loaded)
    if any(n.op in CALL_OPS for n in loaded.graph.node):
        loaded.graph = inline_functions(loaded.graph)
    return loaded


def _reject_variables(loaded: LoadedModel) -> None:
    variables = [n.name for n in loaded.graph.node if n.op in VARIABLE_OPS]
    if variables:
        raise UsageError(
            f"model `{loaded.path}`: not frozen, it holds variables without their values (e.g. `{variables[0]}`); "
            f"freeze it with its checkpoint (python -m tensorflow.python.tools.freeze_graph --input_graph "
            f"{loaded.path.name}{' --input_binary' if loaded.format == 'frozen-pb' else ''} --input_checkpoint "
            f"PREFIX --output_node_names OUTPUT --output_graph frozen.pb) or pass its .meta with --checkpoint PREFIX")


def _load_graph_def(path: Path, *, model_format: str, **_) -> LoadedModel:
    tf = import_tf()
    is_text = model_format == "pbtxt" or bool(TEXT_GRAPH_DEF.match(_head(path)))
    notes = [f"`{path.name}` holds a text-format GraphDef: read as text"] if is_text and model_format != "pbtxt" else []
    graph_def = _parsed(path, tf.compat.v1.GraphDef(), "TensorFlow GraphDef", text=is_text)
    if not graph_def.node or any(not n.op for n in graph_def.node):
        raise UsageError(f"model `{path}`: not a TensorFlow GraphDef: {describe_content(path, 'GraphDef')} (no nodes); "
                         f"pass {SUPPORTED}")
    return LoadedModel(path, "frozen-pbtxt" if is_text else "frozen-pb", graph_def, notes=notes)


def _freeze_concrete(path: Path, concrete, model_format: str) -> LoadedModel:
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    tf = import_tf()
    try:
        frozen = convert_variables_to_constants_v2(concrete)
    except Exception as exc:  # TF raises many types here; all mean "cannot freeze this function"
        raise UsageError(f"model `{path}`: cannot be frozen for checking ({first_line(exc)}); "
                         f"export it for inference and try again") from None
    inputs = [t.op.name for t in frozen.inputs if t.dtype != tf.resource]
    outputs = [t.name for t in frozen.outputs]
    return LoadedModel(path, model_format, frozen.graph.as_graph_def(), inputs, outputs)


def _load_saved_model(path: Path, *, signature: str, allowed_ops: tuple[str, ...], **_) -> LoadedModel:
    tf = import_tf()
    from tensorflow.core.protobuf import saved_model_pb2

    binary = (path / "saved_model.pb").exists()
    proto_path = path / ("saved_model.pb" if binary else "saved_model.pbtxt")
    scan = scan_saved_model(_parsed(proto_path, saved_model_pb2.SavedModel(), "SavedModel", text=not binary),
                            path, allowed_ops)
    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as exc:  # corrupt or foreign files surface as several TF error types
        # e.g. a TF 2.0 Keras SavedModel whose optimizer slots the object loader cannot restore
        model = _load_saved_model_v1(path, signature, first_line(exc))
    else:
        model = _freeze_concrete(path, _signature(path, dict(getattr(loaded, "signatures", {})), signature),
                                 "savedmodel")
    model.notes[:0] = scan.notes
    return model


def _signature(path: Path, signatures: dict, name: str):
    if name not in signatures:
        available = ", ".join(sorted(signatures)) or "none"
        raise UsageError(f"model `{path}`: no signature `{name}` (available: {available}); "
                         f"choose one with --signature NAME")
    return signatures[name]


def _load_saved_model_v1(path: Path, signature: str, object_error: str) -> LoadedModel:
    """The TF1 loader (tag `serve`): it restores variables by name, ignoring the object graph."""
    tf = import_tf()
    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
        try:
            meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(path))
        except Exception as exc:  # no serve tag, corrupt variables…
            raise UsageError(f"model `{path}`: not a loadable SavedModel ({object_error}; the TF1 loader with "
                             f"tag serve: {first_line(exc)}); pass {SUPPORTED}") from None
        chosen = _signature(path, dict(meta_graph.signature_def), signature)
        inputs = [info.name.split(":")[0] for info in chosen.inputs.values()]
        outputs = [info.name for info in chosen.outputs.values()]
        frozen = tf.compat.v1.graph_util.convert_variables_to_constants(
            session, graph.as_graph_def(), sorted({name.split(":")[0] for name in outputs}))
    note = (f"loaded with the TF1 SavedModel loader (tag serve, signature `{signature}`): "
            f"the object loader failed ({object_error})")
    return LoadedModel(path, "savedmodel-v1", frozen, inputs, outputs, [note])


def _load_keras(path: Path, **_) -> LoadedModel:
    """A Keras file, loaded by the Keras that wrote it: Keras 3, or tf-keras for Keras 2 files (`keras2.py`)."""
    import_tf()
    keras_file = read_keras_file(path)
    if keras_file.major is not None and keras_file.major < 3:
        return _load_keras2(keras_file)
    if keras_file.architecture is not None:
        raise UsageError(f"model `{path}`: holds weights only, with its architecture in `{keras_file.architecture}`, "
                         f"written by Keras {keras_file.keras_version}: batchcheck reads that pair from Keras 2 only; "
                         f"save the whole model with model.save('model.keras')")
    model = _keras3_model(keras_file)
    loaded = _freeze_keras3(path, model)
    loaded.notes += augmentation_notes(model)
    return loaded


def _keras3_model(keras_file: KerasFile, tf_keras_unusable: str = ""):
    """The model Keras 3 loads from `keras_file` (safe mode on); `UsageError` with one line when it cannot."""
    import keras

    path, written = keras_file.path, f"written by Keras {keras_file.keras_version}"
    try:
        return keras.models.load_model(str(path), compile=False, safe_mode=True)
    except Exception as exc:  # Keras raises ValueError, OSError, TypeError… for unreadable files
        if tf_keras_unusable:
            raise UsageError(f"model `{path}`: {written}, which Keras 3 cannot load ({first_line(exc)}); its loader "
                             f"is tf-keras, the Keras 2 that TensorFlow maintains, and {tf_keras_unusable}: "
                             f"{tf_keras_install()}") from None
        if keras_file.config is not None:
            raise UsageError(f"model `{path}`: {written}, and Keras {keras.__version__} cannot load it "
                             f"({first_line(exc)}); safe mode refuses Lambda layers and custom objects") from None
        raise UsageError(f"model `{path}`: not a loadable Keras model: {describe_content(path, 'Keras file')} "
                         f"({first_line(exc)}); save it again with model.save('model.keras') (safe mode refuses "
                         f"unsafe Lambda layers)") from None


def _freeze_keras3(path: Path, model) -> LoadedModel:
    import tensorflow as tf

    specs = [tf.TensorSpec((None, *tensor.shape[1:]), tensor.dtype, name=_clean_name(tensor.name))
             for tensor in model.inputs]

    def forward(*inputs):
        # As `model(x)` runs it: layers saved with training=True keep it (model(x, training=False)
        # and predict() would override them). stateless_call traces no variable updates, so it freezes.
        outputs, _ = model.stateless_call(model.trainable_variables, model.non_trainable_variables,
                                          list(inputs) if len(inputs) > 1 else inputs[0])
        return outputs
    return _freeze_concrete(path, tf.function(forward).get_concrete_function(*specs), "keras")


def _load_keras2(keras_file: KerasFile) -> LoadedModel:
    """A file Keras 2 wrote: its config checked for Python, then loaded with tf-keras (format `keras2`); without
    a usable tf-keras, Keras 3 tries it and the report says so."""
    refuse_python(keras_file)
    path, written = keras_file.path, f"written by Keras {keras_file.keras_version}"
    tf_keras, unusable = usable_tf_keras()
    if tf_keras is not None:
        model = load_keras2(keras_file, tf_keras)
        loaded = _freeze_concrete(path, trace_keras2(model), "keras2")
        loaded.notes.append(f"{written}: loaded with tf-keras {tf_keras.__version__}")
    elif keras_file.architecture is not None:
        raise UsageError(f"model `{path}`: {written}, holds weights only with its architecture in "
                         f"`{keras_file.architecture.name}`, which tf-keras loads, and {unusable}: "
                         f"{tf_keras_install()}")
    else:
        model = _keras3_model(keras_file, unusable)
        loaded = _freeze_keras3(path, model)
        loaded.notes.append(f"{written}: loaded with Keras 3, since {unusable}; tf-keras, Keras 2's own loader, "
                            f"reads it as written: {tf_keras_install()}")
    loaded.notes[:0] = keras_file.notes
    loaded.notes += augmentation_notes(model)
    return loaded


def _load_meta_graph(path: Path, *, checkpoint: Path | None, outputs: list[str],
                     allowed_ops: tuple[str, ...], **_) -> LoadedModel:
    tf = import_tf()
    from tensorflow.core.protobuf import meta_graph_pb2

    scan_meta_graph(_parsed(path, meta_graph_pb2.MetaGraphDef(), "TF1 meta graph", text=path.suffix != ".meta"),
                    path, allowed_ops)
    prefix = _checkpoint_prefix(path, checkpoint)
    graph = tf.Graph()
    with graph.as_default():
        try:
            saver = tf.compat.v1.train.import_meta_graph(str(path), clear_devices=True)
        except Exception as exc:  # protobuf and TF import errors
            raise UsageError(f"model `{path}`: not a readable TF1 meta graph ({first_line(exc)}); "
                             f"pass the .meta written by tf.train.Saver") from None
        graph_def = graph.as_graph_def()
        if not outputs:
            raise UsageError(f"model `{path}`: a meta graph holds training ops too; say what to keep with "
                             f"--output NAME (candidates: {', '.join(_output_candidates(graph_def)[:5])})")
        names = [o.split(":")[0] for o in outputs]
        known = {n.name for n in graph_def.node}
        for name in names:
            if name not in known:
                raise UsageError(f"--output `{name}`: no such node in `{path}`{did_you_mean(name, known)}")
        with tf.compat.v1.Session(graph=graph) as session:
            if saver is not None:
                try:
                    saver.restore(session, str(prefix))
                except Exception as exc:  # NotFoundError, DataLossError, InvalidArgumentError…
                    raise UsageError(f"checkpoint `{prefix}`: cannot be restored into `{path}` "
                                     f"({first_line(exc)}); pass the matching --checkpoint PREFIX") from None
            frozen = tf.compat.v1.graph_util.convert_variables_to_constants(session, graph_def, names)
    found = "given with --checkpoint" if checkpoint is not None else "found beside the .meta or as the folder's latest"
    return LoadedModel(path, "meta-checkpoint", frozen, [], list(outputs), [f"weights from checkpoint `{prefix}` ({found})"])


def _head(path: Path) -> bytes:
    """The first 4 KB of `path` (empty when it cannot be read: `_parsed` then says why)."""
    try:
        with path.open("rb") as file:
            return file.read(4096)
    except OSError:
        return b""


# The first bytes of files that turn up under a model's name, and what to call them.
MAGIC = ((b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
         (b"\x89HDF\r\n\x1a\n", "an HDF5 file"), (b"PK\x03\x04", "a zip archive"), (b"\x1f\x8b", "a gzip archive"),
         (b"%PDF", "a PDF document"))


def describe_content(path: Path, kind: str) -> str:
    """What the file at `path` looks like, in words, for a message saying it is not a `kind`."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as file:
            head = file.read(4096)
    except OSError:
        return "it cannot be read"
    if not head:
        return "the file is empty"
    for magic, name in MAGIC:
        if head.startswith(magic):
            if (name, kind) in (("a zip archive", "Keras file"), ("an HDF5 file", "Keras file")):
                return f"{name} of {size:,} bytes, perhaps truncated or not written by Keras"
            return f"it is {name}"
    if kind == "Keras file":
        return "it is neither a .keras zip archive nor an HDF5 .h5 file"
    try:
        head.decode("utf-8")
        return "it is text but not a text-format protobuf"
    except UnicodeDecodeError:
        return f"{size:,} bytes that do not parse as a protobuf (truncated or corrupt?)"


def _parsed(path: Path, proto, kind: str, *, text: bool = False):
    """`proto` parsed from `path` (text format if `text`), before TensorFlow imports anything it holds."""
    from google.protobuf import message, text_format

    try:
        data = path.read_bytes()
        if text:
            text_format.Parse(data.decode("utf-8"), proto)
        else:
            proto.ParseFromString(data)
    except RecursionError:  # the text parser recurses once per nesting level
        raise UsageError(_nested_too_deeply(path, kind)) from None
    except (message.DecodeError, text_format.ParseError, UnicodeDecodeError, RuntimeWarning) as exc:
        if "MaxDepth" in str(exc):  # the binary parser stops at protobuf's nesting limit
            raise UsageError(_nested_too_deeply(path, kind)) from None
        raise UsageError(f"model `{path}`: not a {kind}: {describe_content(path, kind)} ({first_line(exc)}); "
                         f"pass {SUPPORTED}") from None
    except OSError as exc:
        raise UsageError(f"model `{path}`: cannot be read ({exc.strerror}); check the path and permissions") from None
    return proto


def _nested_too_deeply(path: Path, kind: str) -> str:
    return (f"model `{path}`: not a usable {kind}: its values are nested too deeply to parse (over protobuf's "
            f"limit of 100 levels; a value nested in itself?); re-export the model")


def _checkpoint_prefix(meta: Path, checkpoint: Path | None) -> Path:
    """The checkpoint prefix: --checkpoint, else `model-N` beside `model-N.meta`, else the folder's latest."""
    tf = import_tf()
    if checkpoint is not None:
        if not (Path(f"{checkpoint}.index").exists() or checkpoint.exists()):
            raise UsageError(f"checkpoint `{checkpoint}`: not found (no {checkpoint.name}.index); pass "
                             f"--checkpoint PREFIX, the path without .index/.data-*")
        return checkpoint
    beside = meta.with_suffix("")
    if Path(f"{beside}.index").exists():
        return beside
    latest = tf.train.latest_checkpoint(str(meta.parent))
    if latest:
        return Path(latest)
    raise UsageError(f"model `{meta}`: a meta graph needs its weights; pass --checkpoint PREFIX "
                     f"(e.g. {meta.parent / 'model-34000'}, the path without .index/.data-*)")


def _output_candidates(graph_def) -> list[str]:
    """Nodes nothing consumes, outside training bookkeeping: likely outputs."""
    consumed = {i.lstrip("^").split(":")[0] for n in graph_def.node for i in n.input}
    skip = ("save", "gradients", "train", "init", "report_uninitialized", "global_step", "Adam", "Momentum")
    return [n.name for n in graph_def.node
            if n.name not in consumed and n.op not in ("NoOp", "Const", "Assign", "AssignVariableOp")
            and not n.name.split("/")[0].startswith(skip)]


def _clean_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "_-." else "_" for c in name.split(":")[0]) or "input"
