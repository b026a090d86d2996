"""The runner's vectorised comparison agrees, tensor by tensor, with the same comparison done in numpy on
fetched activations: across chunk boundaries, mixed dtypes, NaN and infinities, and batch axes other than 0."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from batchcheck.result import Mode

LAYERS = 40  # x 3 tensors each: more than one chunk of CHUNK_TENSORS


def _mixed_graph():
    """Layers of mul/add/relu (some tensors NaN or infinite for some pixels, in the probe alone and in a
    batch alike), then float16, int32 and bool views, a batch-mean (batch dependent) and a transpose that
    moves the batch to axis 1."""
    from fixtures._tf import image_input, tf

    x = image_input(8)
    for i in range(LAYERS):
        x = tf.nn.relu(x * (1.0 + 0.01 * i) - 0.02, name=f"layer_{i:02d}/relu")
    nan = tf.math.log(x - 0.5, name="nan_where_small")  # NaN below 0.5, -inf at 0.5
    inf = tf.math.reciprocal(x, name="inf_where_zero")
    half = tf.cast(x, tf.float16, name="half")
    whole = tf.cast(x * 100, tf.int32, name="whole")
    positive = tf.greater(x, 0.3, name="positive")
    mixed = tf.subtract(x, tf.reduce_mean(x, axis=0, keepdims=True), name="batch_mean")
    moved = tf.transpose(x, [1, 0, 2, 3], name="moved")
    parts = [tf.reduce_sum(tf.cast(t, tf.float32)) for t in (nan, inf, half, whole, positive, mixed, moved)]
    return tf.add_n(parts, name="output")


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    from batchcheck.load.open import backend_for, open_model
    from batchcheck.options import CheckConfig
    from batchcheck.run.runner import Runner
    from fixtures._tf import write_frozen_graph

    path = write_frozen_graph(_mixed_graph, Path(tmp_path_factory.mktemp("compare")) / "mixed.pb")
    images = np.random.default_rng(0).random((4, 8, 8, 3), dtype=np.float32)
    _, prepared = open_model(path, CheckConfig())
    runner = Runner(backend_for(prepared).session(prepared))
    runner.analyse(images[:1], images[:2])
    yield runner, images
    runner.close()


def _reference(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b|, equal infinities and NaN pairs as equal, a NaN against a number as infinitely far."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    with np.errstate(invalid="ignore"):
        diff = np.abs(a - b)
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    diff = np.where(same, 0.0, np.where(np.isnan(diff), np.inf, diff))
    return float(diff.max(initial=0.0))


def _finite_max_abs(value: np.ndarray) -> float:
    value = np.abs(value.astype(np.float64))
    return float(value[np.isfinite(value)].max(initial=0.0))


@pytest.mark.parametrize("mode", [Mode.DETAIL, Mode.SCREEN])
def test_vectorised_comparison_matches_numpy(runner, mode) -> None:
    runner, images = runner
    targets = runner.targets
    assert len(runner.session._chunks[Mode.DETAIL]) > 2, "the graph should span several chunks"
    assert {"nan_where_small:0", "inf_where_zero:0", "half:0", "whole:0", "positive:0", "moved:0"} <= {
        t.tensor for t in targets}
    probe, batch, position = images[[2]], images[[0, 2, 1]], 1
    scales = runner.cache_solo(probe, "probe-2", mode)
    diffs = runner.compare(mode, batch, [position])
    names = [targets[i].tensor for i in runner.watched[mode]]
    solo_values = runner.forward(probe, names)
    batch_values = runner.forward(batch, names)
    for index, name, got, scale, solo, batched in zip(runner.watched[mode], names, diffs, scales, solo_values,
                                                     batch_values):
        axis = targets[index].batch_axis
        row = np.take(batched, [position], axis=axis) if axis is not None else batched
        assert got == pytest.approx(_reference(row, solo), rel=1e-6, abs=1e-6), name
        assert scale == pytest.approx(_finite_max_abs(solo), rel=1e-6), name
    by_name = dict(zip(names, diffs))
    if mode == Mode.DETAIL:
        assert by_name["batch_mean:0"] > 0.01  # the batch-dependent tensor is seen
        assert by_name["nan_where_small:0"] < 1e-5  # NaN where NaN, -inf where -inf: no difference


def test_complex_tensors_are_reported_not_compared(tmp_path: Path) -> None:
    """A complex tensor cannot be compared as real numbers: the report lists it as not compared, with why."""
    from batchcheck import check
    from fixtures._tf import image_input, tf, write_frozen_graph

    def complex_view():
        x = image_input(8)
        return tf.identity(tf.math.real(tf.complex(x, x, name="as_complex")) * 2.0, name="output")

    result = check(write_frozen_graph(complex_view, tmp_path / "complex.pb"))
    report = {t.tensor: t for t in result.tensors}
    assert report["as_complex:0"].status == "not_compared"
    assert "complex64 values are not compared" in report["as_complex:0"].note
    assert report["output:0"].status == "ok"


def test_shapes_of_tensors_merged_by_common_subexpression_elimination(tmp_path: Path) -> None:
    """Shapes come from a traced run's step stats; TF merges one of two identical ops into the other, so
    the merged one never runs under its own name: it still gets its shape (from a Shape op) and is compared."""
    from batchcheck import check
    from batchcheck.options import CheckConfig
    from fixtures._tf import image_input, tf, write_frozen_graph

    def twins():
        x = image_input(8)
        return tf.add(tf.nn.relu(x, name="twin_a") * 2.0, tf.nn.relu(x, name="twin_b"), name="output")

    result = check(write_frozen_graph(twins, tmp_path / "twins.pb"), CheckConfig(trials=2))
    report = {t.tensor: t for t in result.tensors}
    assert (report["twin_a:0"].status, report["twin_b:0"].status) == ("ok", "ok")
    assert report["twin_b:0"].batch_axis == 0 and report["twin_b:0"].trials >= 1
