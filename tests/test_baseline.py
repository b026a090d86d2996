"""Regression baseline: the file, the comparison rules, and measuring real fixture models."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from batchcheck.errors import UsageError
from batchcheck.options import CheckConfig
from batchcheck.pytest.baseline import (
    FIGURE_SLACK,
    METRIC_TOLERANCE,
    _agreement,
    _metric_kind,
    compare,
    fixed_plan,
    measure,
)
from batchcheck.pytest.baseline_file import (
    BaselineEntry,
    LayerFigures,
    RootSummary,
    TaskMetric,
    baseline_key,
    load_baseline,
    write_baseline,
)

CLEAN = BaselineEntry(
    verdict="invariant",
    nondeterministic=False,
    roots=[],
    plan="batch of 4, probe `noise-0` at 1, mates: flat black, gaussian-1, extreme checkerboard",
    layers={"Conv0": LayerFigures("ok", 0.0, 0.0), "Conv1": LayerFigures("ok", 1e-7, 1e-7)},
    metrics={"Predictions:0": TaskMetric("top1", 1.0, 12)},
)


def broken() -> BaselineEntry:
    entry = copy.deepcopy(CLEAN)
    entry.verdict = "batch_dependent"
    entry.roots = [RootSummary("Conv0/BN", "Conv0", "FusedBatchNormV3", "batchnorm_training")]
    entry.layers["Conv0"] = LayerFigures("divergent", 2.0, 0.5)
    entry.metrics["Predictions:0"].agreement = 0.75
    return entry


# -- the file ------------------------------------------------------------------------------------

def test_key_is_the_path_relative_to_the_baseline_folder(tmp_path: Path) -> None:
    assert baseline_key(tmp_path / "zoo" / "a.pb", tmp_path / "baseline.json") == "zoo/a.pb"
    assert baseline_key(tmp_path / "a.pb", tmp_path / "gate" / "baseline.json") == "../a.pb"


def test_write_then_load_round_trips_and_keeps_other_models(tmp_path: Path) -> None:
    path = tmp_path / "baseline.json"
    write_baseline(path, {"b.pb": broken()})
    write_baseline(path, {"a.pb": CLEAN})
    assert load_baseline(path) == {"a.pb": CLEAN, "b.pb": broken()}
    write_baseline(path, {"b.pb": CLEAN})
    assert load_baseline(path) == {"a.pb": CLEAN, "b.pb": CLEAN}
    assert [p.name for p in tmp_path.iterdir()] == ["baseline.json"]  # no temporary file left behind


def test_file_is_written_like_any_file_the_user_creates(tmp_path: Path) -> None:
    import os
    import stat

    path = tmp_path / "baseline.json"
    previous = os.umask(0o022)
    try:
        write_baseline(path, {"net.pb": CLEAN})
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_file_has_one_line_per_layer_and_metric(tmp_path: Path) -> None:
    path = tmp_path / "baseline.json"
    write_baseline(path, {"a.pb": broken()})
    lines = path.read_text().splitlines()
    assert '        "Conv0": {"status": "divergent", "max_abs_diff": 2.0, "max_rel_diff": 0.5},' in lines
    assert any(line.strip().startswith('"Predictions:0": {"kind": "top1"') for line in lines)
    assert json.loads(path.read_text())["batchcheck_baseline"] == 1


def test_infinite_figures_are_strict_json_and_compare_as_numbers(tmp_path: Path) -> None:
    path = tmp_path / "baseline.json"
    entry = broken()
    entry.layers["Conv0"].max_rel_diff = float("inf")
    write_baseline(path, {"a.pb": entry})
    assert '"max_rel_diff": "inf"' in path.read_text()
    stored = load_baseline(path)["a.pb"]
    assert compare(stored, entry) == []
    assert compare(broken(), entry)[0].now == "divergent, relative inf"


@pytest.mark.parametrize("text, message", [
    ("{not json", "not JSON"),
    ('{"models": {}}', "not a batchcheck baseline"),
    ('{"batchcheck_baseline": 99, "models": {}}', "not a batchcheck baseline"),
    ("[]", "not a batchcheck baseline"),
    ('{"batchcheck_baseline": 1, "models": {"a.pb": {"verdict": "invariant"}}}', "not a batchcheck baseline entry"),
])
def test_unusable_files_are_usage_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "baseline.json"
    path.write_text(text)
    with pytest.raises(UsageError, match=message):
        load_baseline(path)
    with pytest.raises(UsageError, match=message):  # and are never overwritten
        write_baseline(path, {"a.pb": CLEAN})
    assert path.read_text() == text


# -- comparing -----------------------------------------------------------------------------------

def test_no_change_means_no_changes() -> None:
    assert compare(CLEAN, copy.deepcopy(CLEAN)) == []
    assert compare(broken(), broken()) == []


def test_a_model_that_breaks_regresses_and_says_what_changed() -> None:
    changes = {c.what: c for c in compare(CLEAN, broken())}
    assert all(c.regression for c in changes.values())
    assert changes["verdict"].baseline == "invariant"
    assert changes["verdict"].now == "batch_dependent (root `Conv0/BN`)"
    assert changes["layer `Conv0`"].now == "divergent, relative 0.5"
    metric = changes["top-1 agreement `Predictions:0` (12 images, solo vs batched)"]
    assert (metric.baseline, metric.now) == ("1.000", "0.750")


def test_a_model_that_is_fixed_improves() -> None:
    changes = compare(broken(), CLEAN)
    assert changes and not any(c.regression for c in changes)


def test_figures_regress_only_beyond_the_slack() -> None:
    worse = broken()
    worse.layers["Conv0"].max_rel_diff = 0.5 * FIGURE_SLACK * 0.99
    assert compare(broken(), worse) == []
    worse.layers["Conv0"].max_rel_diff = 0.5 * FIGURE_SLACK * 1.01
    [change] = compare(broken(), worse)
    assert change.regression and change.what == "layer `Conv0` diverges more"


def test_metric_drops_within_tolerance_pass() -> None:
    slightly = copy.deepcopy(CLEAN)
    slightly.metrics["Predictions:0"].agreement = 1.0 - METRIC_TOLERANCE / 2
    assert compare(CLEAN, slightly) == []


def test_new_layers_nondeterminism_and_plan_changes_regress() -> None:
    changed = copy.deepcopy(CLEAN)
    changed.layers["Extra"] = LayerFigures("divergent", 1.0, 1.0)
    changed.nondeterministic = True
    changed.plan = "batch of 2, probe `cat.jpg` at 1, mates: flat black"
    whats = {c.what for c in compare(CLEAN, changed) if c.regression}
    assert whats == {"layer `Extra`", "run to run", "fixed plan (images or options changed; refresh the baseline)"}


def test_metric_kinds_and_agreement() -> None:
    assert _metric_kind(np.zeros((1, 10), np.float32)) == "top1"
    assert _metric_kind(np.zeros((1, 8, 8, 5), np.float32)) == "pixels"
    assert _metric_kind(np.zeros((1, 8, 8), np.int64)) == "pixels"
    assert _metric_kind(np.zeros((1, 1), np.float32)) is None
    assert _metric_kind(np.zeros((1, 8, 8, 1), np.float32)) is None
    scores = np.array([[[0.1, 0.9], [0.8, 0.2]]])
    assert _agreement("pixels", scores, scores[..., ::-1]) == 0.0
    assert _agreement("pixels", np.array([[1, 2], [3, 4]]), np.array([[1, 2], [3, 0]])) == 0.75
    assert _agreement("top1", np.array([0.1, 0.9]), np.array([0.2, 0.8])) == 1.0


# -- measuring real models -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def open_case(tmp_path_factory: pytest.TempPathFactory):
    from batchcheck.checker import Checker
    from fixtures.graphs import build_case

    folder = tmp_path_factory.mktemp("baseline-models")
    opened = []

    def open_(name: str, **feeds: str):
        checker = Checker.open(build_case(name, folder), CheckConfig(trials=2, batch_sizes=(2, 4), feeds=feeds))
        opened.append(checker)
        return checker

    yield open_
    for checker in opened:
        checker.close()


def test_measure_a_clean_classifier_and_a_batch_dependent_one(open_case) -> None:
    clean = open_case("grayscale")
    entry = measure(clean, clean.check())
    assert entry.verdict == "invariant" and entry.roots == [] and not entry.nondeterministic
    assert entry.plan == clean.describe(fixed_plan(clean))
    assert entry.plan.startswith("batch of 4, probe `noise-0` at 1, mates: flat black,")
    assert {layer.status for layer in entry.layers.values()} == {"ok"}
    [(output, metric)] = entry.metrics.items()
    assert metric == TaskMetric("top1", 1.0, clean.main_images)

    bad = open_case("batch_mean")
    bad_entry = measure(bad, bad.check())
    assert bad_entry.verdict == "batch_dependent" and bad_entry.roots[0].node == "BatchMean/Mean"
    assert bad_entry.layers["BatchMean"].status == "divergent"
    whats = {c.what for c in compare(entry, bad_entry) if c.regression}
    assert {"verdict", "layer `BatchMean`"} <= whats


def test_measure_a_segmenter_gives_pixel_agreement(open_case) -> None:
    checker = open_case("deeplab")
    entry = measure(checker, checker.check())
    assert entry.verdict == "invariant"
    assert [metric.kind for metric in entry.metrics.values()] == ["pixels"]
    assert all(metric.agreement == 1.0 for metric in entry.metrics.values())


def test_nondeterminism_recorded_only_when_randomness_reaches_the_data(open_case) -> None:
    """keep_prob=1: the RandomUniform differs run to run, the mask does not; keep_prob=0.5: it does."""
    kept = open_case("keep_prob_1", keep_prob="1.0")
    assert measure(kept, kept.check()).nondeterministic is False
    dropped = open_case("keep_prob_half", keep_prob="0.5")
    assert measure(dropped, dropped.check()).nondeterministic is True
