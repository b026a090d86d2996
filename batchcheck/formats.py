"""The model formats batchcheck reads, in one table: the `--format` names, how a path is recognised, how each
is described to users, and the backend that loads it. Importing this imports no runtime."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import UsageError


@dataclass(frozen=True)
class Format:
    """One model format: its `--format` name, the runtime backend that loads it, the file suffixes that name
    it, and how it is described in help and messages."""
    name: str
    backend: str
    suffixes: tuple[str, ...]
    description: str


FORMATS: tuple[Format, ...] = (
    Format("pb", "tf", (".pb",), "frozen .pb GraphDef"),
    Format("pbtxt", "tf", (".pbtxt", ".txt", ".prototxt"), "frozen .pbtxt GraphDef (text)"),
    Format("savedmodel", "tf", (), "SavedModel folder"),
    Format("keras", "tf", (".keras", ".h5", ".hdf5"), "Keras .keras/.h5 file"),
    Format("meta", "tf", (".meta",), "TF1 .meta with --checkpoint"),
    Format("onnx", "onnx", (".onnx",), "ONNX .onnx file (needs the onnx extra)"),
)
FORMAT_NAMES = ("auto", *(f.name for f in FORMATS))
SUPPORTED = ("a frozen .pb/.pbtxt GraphDef, a SavedModel folder, a Keras .keras/.h5 file, "
             "a TF1 .meta with --checkpoint, or an ONNX .onnx file")
MODEL_HELP = "frozen .pb/.pbtxt, SavedModel folder, .keras/.h5, .meta, or .onnx"


def format_named(name: str) -> Format:
    return next(f for f in FORMATS if f.name == name)


def detect_format(path: Path) -> str:
    """Guess the format from the path: a folder is a SavedModel, else the suffix (a frozen .pb by default)."""
    if path.is_dir():
        if (path / "saved_model.pb").exists() or (path / "saved_model.pbtxt").exists():
            return "savedmodel"
        raise UsageError(f"model `{path}`: a folder but not a SavedModel (no saved_model.pb); "
                         f"pass {SUPPORTED}")
    if path.name == "saved_model.pb":
        return "savedmodel"
    suffix = path.suffix.lower()
    return next((f.name for f in FORMATS if suffix in f.suffixes), "pb")
