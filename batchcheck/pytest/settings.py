"""The plugin's settings: the `--graph` models and the `--graph-*` options, validated once per session."""
from __future__ import annotations

import glob
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ..errors import UsageError
from ..options import CheckConfig, config_from_options
from ..report.failure import PYTEST_PREFIX as PREFIX
from .baseline_file import BaselineEntry, baseline_key, load_baseline

GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class Model:
    """One model to check: its path, as given and resolved, and its label in test ids."""
    given: str
    path: Path
    label: str


@dataclass
class Settings:
    """The plugin's options, validated once per pytest session."""
    models: list[Model]
    check_config: CheckConfig
    examples: int | None
    baseline: Path | None
    update_baseline: bool
    expected: dict[str, BaselineEntry] = field(default_factory=dict)  # baseline entries by key

    def baseline_key(self, model: Model) -> str:
        assert self.baseline is not None
        return baseline_key(model.path, self.baseline)

    def accepted(self, model: Model) -> BaselineEntry | None:
        """The model's entry in the baseline, if there is one."""
        return self.expected.get(self.baseline_key(model)) if self.baseline else None


SETTINGS = pytest.StashKey[Settings]()


def settings_from(config: pytest.Config) -> Settings:
    """The session's settings from pytest's options; `UsageError` naming the `--graph-*` flag at fault."""
    check_config = config_from_options(config.getoption, PREFIX)
    examples, baseline = config.getoption("graph_examples"), config.getoption("graph_baseline")
    update = config.getoption("graph_update_baseline")
    models = _models(config.getoption("graph"), config.invocation_params.dir, check_config.format)
    if examples is not None and examples < 1:
        raise UsageError(f"--graph-examples {examples}: give a whole number of at least 1")
    if update and baseline is None:
        raise UsageError("--graph-update-baseline: say which file with --graph-baseline FILE")
    if baseline is not None and not models:
        raise UsageError(f"--graph-baseline {baseline}: the gate checks --graph models; add --graph MODEL")
    settings = Settings(models, check_config, examples, None, update)
    if baseline is not None:
        settings.baseline = (config.invocation_params.dir / baseline).resolve()
        settings.expected = _expected(settings.baseline, update)
    return settings


def _models(patterns: list[str], root: Path, model_format: str) -> list[Model]:
    """`--graph` patterns expanded in order, each model once; `UsageError` for a pattern matching nothing."""
    from ..formats import SUPPORTED, detect_format

    found: dict[Path, str] = {}
    for pattern in patterns:
        if GLOB_CHARS & set(pattern):
            matches = sorted(glob.glob(pattern, root_dir=root, recursive=True))
            if not matches:
                raise UsageError(f"--graph {pattern}: matches no file or folder (from {root})")
        else:
            if not (root / pattern).exists():
                raise UsageError(f"--graph {pattern}: no such file or folder; pass {SUPPORTED}")
            matches = [pattern]
        for match in matches:
            path = (root / match).resolve()
            if path.is_dir() and model_format in ("auto", "savedmodel"):
                detect_format(path)  # a folder must be a SavedModel
            found.setdefault(path, match)
    labels = unique_labels([Path(given) for given in found.values()])
    return [Model(given, path, label) for (path, given), label in zip(found.items(), labels)]


def unique_labels(paths: list[Path]) -> list[str]:
    """The shortest path suffixes that tell the models apart: `model.pb`, or `a/model.pb` and `b/model.pb`."""
    parts = [p.parts or (".",) for p in paths]
    depth = [1] * len(paths)
    while True:
        labels = ["/".join(p[-d:]) for p, d in zip(parts, depth)]
        clashing = {label for label in labels if labels.count(label) > 1}
        grow = [i for i, label in enumerate(labels) if label in clashing and depth[i] < len(parts[i])]
        if not grow:
            return labels
        for i in grow:
            depth[i] += 1


def _expected(baseline: Path, update: bool) -> dict[str, BaselineEntry]:
    if not baseline.parent.is_dir():
        raise UsageError(f"--graph-baseline {baseline}: folder `{baseline.parent}` does not exist")
    if baseline.exists():
        return load_baseline(baseline)
    if update:
        return {}
    raise UsageError(f"--graph-baseline {baseline}: no such file; write it first with --graph-update-baseline")

