"""The backend contract: every runtime behind the seam passes the same tests, on the same three models
(`fixtures/contract.py`), through the neutral interfaces only (`Backend`, `GraphIndex`, `Session`, `Runner`)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from batchcheck.graph import kinds
from batchcheck.options import CheckConfig
from fixtures.contract import CHANNELS, CONTRACT_MODELS, SIZE

BACKENDS = sorted(CONTRACT_MODELS)
KNOWN_KINDS = {value for name, value in vars(kinds).items() if name.isupper() and isinstance(value, str)}


@pytest.fixture(scope="module", params=BACKENDS)
def model(request, tmp_path_factory):
    """`model(name)` → the contract model `name` of this backend, built once."""
    folder = tmp_path_factory.mktemp(f"contract-{request.param}")
    built: dict[str, Path] = {}

    def build(name: str) -> Path:
        if name not in built:
            built[name] = CONTRACT_MODELS[request.param](name, folder)
        return built[name]
    build.backend = request.param
    return build


def images(count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (count, SIZE, SIZE, CHANNELS)).astype(np.float32)


def opened(path: Path):
    from batchcheck.load.open import open_model

    return open_model(path, CheckConfig())


def session_of(prepared):
    from batchcheck.load.open import backend_for

    return backend_for(prepared).session(prepared)


def test_the_format_table_names_the_backend(model) -> None:
    loaded, prepared = opened(model("clean"))
    assert loaded.backend == prepared.backend == model.backend


def test_the_graph_speaks_the_neutral_vocabulary(model) -> None:
    from batchcheck.load.open import whole_graph

    loaded, prepared = opened(model("batch_mean"))
    index = whole_graph(loaded)
    assert {node.kind for node in index.nodes.values()} <= KNOWN_KINDS
    assert index.nodes["conv"].kind == kinds.CONV
    culprit = prepared.index.nodes["culprit"]
    assert culprit.kind == kinds.REDUCE and culprit.attrs["reduce"] == "mean" and culprit.attrs["axes"] == (0,)
    assert prepared.index.nodes[prepared.input.node].kind == kinds.INPUT
    assert all(isinstance(d, str) for node in index.nodes.values() for d in node.attrs.get("dtypes", ()))
    order = prepared.index.position
    assert order["conv"] < order["culprit"] < order["logits"]


def test_prepare_finds_the_input_and_output_with_a_free_batch(model) -> None:
    _, prepared = opened(model("clean"))
    assert tuple(prepared.input.per_image_shape) in ((SIZE, SIZE, CHANNELS), (CHANNELS, SIZE, SIZE))
    assert prepared.input.dtype == "float32" and prepared.input.shipped_batch is None
    assert [o.split(":")[0] for o in prepared.outputs] == ["logits"]



@pytest.mark.parametrize("given, says", [((SIZE, SIZE), "has per-image rank 3"),
                                         ((SIZE + 1, SIZE, CHANNELS), "only its unknown sizes can be set")])
def test_an_input_shape_the_model_contradicts_is_refused(model, given, says) -> None:
    from batchcheck.errors import UsageError
    from batchcheck.load.open import load_model, prepare

    with pytest.raises(UsageError, match=says):
        prepare(load_model(model("clean"), CheckConfig()), CheckConfig(input_shape=given))

def test_session_measures_shapes_and_names_the_node_that_fails(model) -> None:
    from batchcheck.errors import NodeFailed

    _, prepared = opened(model("batch_limit"))
    session = session_of(prepared)
    try:
        candidates = session.candidates(set()).tensors
        assert "conv:0" in candidates and "limit:0" in candidates
        batch = images(1).reshape((1, *prepared.input.per_image_shape))
        shapes = session.shapes(candidates, batch)
        assert shapes["conv:0"][0] == 1
        with pytest.raises(NodeFailed) as failed:
            session.shapes(candidates, np.concatenate([batch, batch]))
        assert failed.value.node == "limit" and failed.value.message
        [logits] = session.fetch(["logits:0"], batch)
        assert logits.shape == (1, 5)
    finally:
        session.close()


def runner_of(path: Path):
    from batchcheck.run.runner import Runner

    _, prepared = opened(path)
    runner = Runner(session_of(prepared))
    pool = images(3).reshape((3, *prepared.input.per_image_shape))
    runner.analyse(pool[:1], pool[:2])
    return runner, pool


def test_runner_finds_the_batch_limit(model) -> None:
    runner, _ = runner_of(model("batch_limit"))
    try:
        assert [limit.node for limit in runner.limits] == ["limit"]
        assert {t.tensor for t in runner.targets} >= {"conv:0"}
        assert "logits:0" in runner.excluded
    finally:
        runner.close()


@pytest.mark.parametrize("name, divergent", [("clean", False), ("batch_mean", True)])
def test_comparisons_run_in_the_runtime_against_the_probe_alone(model, name, divergent) -> None:
    from batchcheck.result import Mode

    runner, pool = runner_of(model(name))
    try:
        for mode in Mode:
            scales = runner.cache_solo(pool[[0]], "probe-0", mode)
            watched = [runner.targets[i].tensor for i in runner.watched[mode]]
            assert len(scales) == len(watched) and np.all(scales >= 0)
            same = runner.compare(mode, np.repeat(pool[[0]], 3, axis=0), [0, 2])
            assert np.all(same <= 1e-5 * (1 + scales)), "copies of the probe give the probe's values"
            mixed = dict(zip(watched, runner.compare(mode, pool[[1, 0, 2]], [1])))
            assert (mixed["logits:0"] > 1e-3) == divergent
            assert mixed.get("conv:0", 0.0) <= 1e-4 * (1 + float(max(scales))), "before the culprit, rows agree"
    finally:
        runner.close()


def test_check_names_the_culprit_and_its_cause(model) -> None:
    from batchcheck.checker import check

    result = check(model("batch_mean"), CheckConfig(trials=2, batch_sizes=(2, 3)))
    assert str(result.verdict) == "batch_dependent"
    assert result.first_divergence.node == "culprit" and str(result.first_divergence.cause) == "batch_reduction"
    assert set(result.versions) >= {"batchcheck", "numpy", "python"} and len(result.versions) > 3
    assert bool(check(model("clean"), CheckConfig(trials=2, batch_sizes=(2, 3))))


def test_lint_finds_the_batch_reduction_statically(model) -> None:
    from batchcheck.lint import lint

    result = lint(model("batch_mean"))
    assert [(f.kind, f.node) for f in result.errors] == [("batch_reduction", "culprit")]
    assert not lint(model("clean")).errors
