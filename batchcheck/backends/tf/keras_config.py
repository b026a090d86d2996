"""What a Keras file holds, read without loading it: which Keras wrote it, its model config (the architecture),
and whether that config carries Python, refused before any Keras deserialises it.

A `.keras` zip keeps `metadata.json` (the writer's version) and `config.json`; an `.h5` keeps `keras_version` and
`model_config` in its attributes, or only weights (`save_weights`), whose architecture (`model.to_json()`) then
sits beside it as `model.json` or `NAME.json`. Read with h5py, zipfile and json only: no TensorFlow, no Keras.
"""
from __future__ import annotations

import json
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import UsageError, first_line, one_line

MAX_CONFIG_BYTES = 64 << 20  # a model config is kilobytes to a few megabytes; a larger entry is not read here
# Modules a config may name: Keras' own (Keras 3 writes `keras.src.…`, tf-keras `keras.layers`).
KERAS_MODULES = re.compile(r"(keras|tf_keras)(\.|$)")
# TFOpLambda / SlicingOpLambda (tf-keras' wrappers of a TensorFlow function called on a Keras tensor) name the
# function by its public TensorFlow path; these reach Python or the file system rather than build an op.
PYTHON_TF_APIS = frozenset({"py_function", "numpy_function", "py_func", "gfile", "io", "saved_model", "autograph",
                            "function", "config", "distribute", "debugging", "summary", "train", "data", "lite"})
TF_OP_LAMBDAS = frozenset({"TFOpLambda", "SlicingOpLambda"})
TF_API_NAME = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*\Z")


@dataclass
class KerasFile:
    """A Keras file as it says: its writer's version ('' when unknown), its model config, and where that came from."""
    path: Path
    keras_version: str = ""
    config: dict | None = None
    architecture: Path | None = None  # the JSON beside a weights-only .h5
    notes: list[str] = field(default_factory=list)

    @property
    def major(self) -> int | None:
        """The writer's major Keras version (2 for '2.2.4-tf'), None when the file does not say."""
        match = re.match(r"\s*(\d+)\.", self.keras_version)
        return int(match.group(1)) if match else None

    @property
    def config_source(self) -> Path:
        return self.architecture or self.path


def read_keras_file(path: Path) -> KerasFile:
    """What `path` says about itself; an empty `KerasFile` when it is not a readable .keras zip or HDF5 file (the
    loader then says what it is). `UsageError` for a weights-only .h5 without its architecture beside it."""
    if zipfile.is_zipfile(path):
        return _read_zip(path)
    return _read_h5(path)


def _read_zip(path: Path) -> KerasFile:
    try:
        with zipfile.ZipFile(path) as archive:
            metadata, config = (_json_entry(archive, name) for name in ("metadata.json", "config.json"))
    except (zipfile.BadZipFile, OSError, ValueError):
        return KerasFile(path)
    version = metadata.get("keras_version", "") if isinstance(metadata, dict) else ""
    return KerasFile(path, str(version), config if isinstance(config, dict) else None)


def _json_entry(archive: zipfile.ZipFile, name: str):
    if name not in archive.namelist() or archive.getinfo(name).file_size > MAX_CONFIG_BYTES:
        return None
    return json.loads(archive.read(name))


def _read_h5(path: Path) -> KerasFile:
    import h5py  # TensorFlow and Keras depend on it

    try:
        with h5py.File(path, "r") as file:
            attrs = dict(file.attrs)
    except (OSError, ValueError):  # not HDF5, truncated, unreadable
        return KerasFile(path)
    version = _text(attrs.get("keras_version"))
    raw = attrs.get("model_config")
    if raw is not None:
        try:
            config = json.loads(_text(raw))
        except ValueError:
            config = None
        return KerasFile(path, version, config if isinstance(config, dict) else None)
    if "layer_names" in attrs:  # model.save_weights(): the architecture lives elsewhere
        return _with_architecture(path, version)
    return KerasFile(path, version)


def _with_architecture(path: Path, version: str) -> KerasFile:
    """A weights-only .h5 with the architecture JSON found beside it."""
    candidates = list(dict.fromkeys([path.with_suffix(".json"), path.parent / "model.json"]))
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        raise UsageError(f"model `{path}`: holds weights only (written by model.save_weights), no architecture; put "
                         f"the architecture beside it as {' or '.join(f'`{c.name}`' for c in candidates)} "
                         f"(model.to_json()) and pass the .h5 again")
    try:
        config = json.loads(found.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"model `{path}`: holds weights only, and its architecture `{found}` is not readable JSON "
                         f"({first_line(exc)}); write it again with model.to_json()") from None
    if not isinstance(config, dict) or "class_name" not in config or "config" not in config:
        what = "a TensorFlow.js model" if isinstance(config, dict) and "modelTopology" in config else "no Keras model"
        raise UsageError(f"model `{path}`: holds weights only, and `{found}` beside it is {what}, not a Keras "
                         f"architecture; write one with model.to_json()")
    note = f"architecture from `{found.name}` beside `{path.name}`, which holds weights only"
    return KerasFile(path, str(config.get("keras_version") or version), config, found, [note])


def _text(value) -> str:
    if value is None:
        return ""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def refuse_python(keras_file: KerasFile) -> None:
    """`UsageError` naming the layer when the model config carries Python that deserialising would run or import:
    Lambda layers (marshalled bytecode or a function reference), other `function` code, modules outside Keras,
    custom objects. What safe mode refuses in Keras 3, checked here before tf-keras reads anything."""
    if keras_file.config is None:
        return
    found = _python_in(keras_file.config, layer=None)
    if found is not None:
        layer, what = found
        where = f"layer `{one_line(layer)}`" if layer else "the model config"
        raise UsageError(f"model `{keras_file.config_source}`: refused to load: {where} {what}, which loading would "
                         f"run; batchcheck runs no Python from a model file (Keras' safe mode refuses it too); "
                         f"rebuild it from built-in layers and save it again")


def _python_in(value, layer: str | None) -> tuple[str | None, str] | None:
    """(layer name, what) for the first Python-carrying entry in a config, depth first."""
    if isinstance(value, list):
        return next((found for item in value if (found := _python_in(item, layer)) is not None), None)
    if not isinstance(value, dict):
        return None
    config = value.get("config")
    if isinstance(value.get("class_name"), str) and isinstance(config, dict) and isinstance(config.get("name"), str):
        layer = config["name"]
    what = _python_carried(value)
    if what is not None:
        return layer, what
    return next((found for item in value.values() if (found := _python_in(item, layer)) is not None), None)


def _python_carried(entry: dict) -> str | None:
    """What Python `entry` (one object of a config) carries, or None."""
    class_name, config = entry.get("class_name"), entry.get("config")
    module, registered = entry.get("module"), entry.get("registered_name")
    if class_name == "Lambda":
        return "is a Lambda layer (a Python function)"
    if class_name == "__lambda__" or "function_type" in entry:
        return "holds a Python function (marshalled bytecode)"
    if class_name in TF_OP_LAMBDAS and isinstance(config, dict):
        function = config.get("function")
        if not isinstance(function, str) or not TF_API_NAME.match(function) or \
                PYTHON_TF_APIS & set(function.split(".")):
            return f"({class_name}) calls `{one_line(str(function))}`, not a TensorFlow op"
    if isinstance(module, str) and not KERAS_MODULES.match(module):
        return f"({class_name}) names Python module `{one_line(module)}`, which Keras would import"
    for name in (class_name, registered):
        if isinstance(name, str) and ">" in name and not KERAS_MODULES.match(name):
            return f"is a custom object (`{one_line(name)}`), whose Python class the file does not hold"
    return None
