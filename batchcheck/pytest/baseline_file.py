"""The baseline file: `{"batchcheck_baseline": 1, "models": {KEY: ENTRY}}`, KEY being the model's path relative
to the file's folder; read, written atomically (other models' entries kept), one innermost object a line."""
from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError, first_line
from ..serial import plain, typed

FORMAT_VERSION = 1


@dataclass
class LayerFigures:
    """One layer under the fixed plan: ok | divergent | nondeterministic, and its figures (3 digits)."""
    status: str
    max_abs_diff: float
    max_rel_diff: float


@dataclass
class TaskMetric:
    """Solo vs batched agreement of one output over the image pool: `top1` or `pixels`."""
    kind: str
    agreement: float
    images: int


@dataclass
class RootSummary:
    """A root of the check, as the baseline remembers it."""
    node: str
    layer: str
    op: str
    cause: str


@dataclass(kw_only=True)
class BaselineEntry:
    """What a model looked like when it was accepted."""
    verdict: str
    nondeterministic: bool
    roots: list[RootSummary]
    plan: str  # the fixed plan the layers were measured under, described
    layers: dict[str, LayerFigures]
    metrics: dict[str, TaskMetric]


def baseline_key(model: Path, baseline_file: Path) -> str:
    """The model's key in `baseline_file`: its path relative to the file's folder, with forward slashes."""
    return Path(os.path.relpath(Path(model).resolve(), Path(baseline_file).resolve().parent)).as_posix()


def load_baseline(path: Path) -> dict[str, BaselineEntry]:
    """The entries of baseline `path` by model key; `UsageError` if it is not a batchcheck baseline."""
    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise UsageError(f"baseline `{path}`: cannot be read ({exc.strerror}); check the path, or write it "
                         f"with --graph-update-baseline") from None
    except ValueError as exc:
        raise UsageError(f"baseline `{path}`: not JSON ({first_line(exc)}); fix it, or delete it and write "
                         f"it again with --graph-update-baseline") from None
    if not isinstance(data, dict) or data.get("batchcheck_baseline") != FORMAT_VERSION \
            or not isinstance(data.get("models"), dict):
        raise UsageError(f"baseline `{path}`: not a batchcheck baseline (version {FORMAT_VERSION}); "
                         f"write it with --graph-update-baseline")
    try:
        return typed(dict[str, BaselineEntry], data["models"])
    except (TypeError, ValueError, AttributeError) as exc:
        raise UsageError(f"baseline `{path}`: an entry is not a batchcheck baseline entry ({first_line(exc)}); "
                         f"write it again with --graph-update-baseline") from None


def write_baseline(path: Path, entries: dict[str, BaselineEntry]) -> None:
    """Add or replace `entries` in baseline `path`, keeping the other models' entries; atomic."""
    path = Path(path)
    models = load_baseline(path) if path.exists() else {}
    models.update(entries)
    text = _dumps({"batchcheck_baseline": FORMAT_VERSION, "models": dict(sorted(models.items()))})
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as file:
            file.write(text)
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp's 0600 is for secrets; a baseline is a plain file
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _dumps(data: dict) -> str:
    """Strict, indented JSON with every innermost object (a layer, a metric, a root) on one line."""
    text = json.dumps(plain(data), indent=2, allow_nan=False)
    leaf = re.compile(r"\{\n\s+([^{}\[\]]*?)\n\s+\}")  # a raw newline only occurs between tokens
    return leaf.sub(lambda m: "{" + re.sub(r"\n\s+", " ", m.group(1)) + "}", text) + "\n"
