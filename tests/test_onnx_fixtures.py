"""The ONNX fixtures load, run, and really have the verdict and culprit their registry claims.

Checked with plain onnxruntime, independent of batchcheck (fixtures/onnx/truth.py): the probe image runs alone
and as row PROBE of a batch with every node output exposed, and the first node whose output changes for it is
the culprit. The shared real-world ONNX models (../shared/real-models-onnx) are checked the same way.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from conftest import REAL_ONNX_MODELS
from fixtures.onnx import ONNX_CASES, OnnxCase, build_onnx_case
from fixtures.onnx.cases import quantized
from fixtures.onnx.hostile import (
    HOSTILE_ONNX,
    build_hostile_onnx,
    nested_if_model_bytes,
)
from fixtures.onnx.large import build_mobilenet_v2, build_onnx_chain
from fixtures.onnx.truth import (
    BATCH,
    PROBE,
    cut_before,
    expose_all,
    first_divergence,
    image_batch,
    image_input,
    relax_batch,
    run,
    session,
)

VERDICTS = {"invariant", "batch_dependent", "nondeterministic", "error"}
CAUSES = {None, "batchnorm_training", "random_op", "batch_reduction", "batch_size", "position", "row_selection"}
CLEAN = 1e-5  # largest relative difference between the probe alone and in a batch for a clean model
# real model → size for its symbolic spatial dimensions (None: all fixed)
REAL_ONNX = {"srgan_netG.onnx": None, "mesonet_tf2onnx.onnx": None, "captcha_crnn_tf2onnx.onnx": None,
             "lowlight_enhance.onnx": 32}
needs_real = pytest.mark.skipif(not (REAL_ONNX_MODELS / "MANIFEST.md").exists(),
                                reason="../shared/real-models-onnx is absent")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("onnx-cases")
    return {name: build_onnx_case(name, root) for name in ONNX_CASES}


def _feeds(case: OnnxCase, model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """The case's `--feed NAME=VALUE` args as onnxruntime feeds (float inputs of their declared shape)."""
    shapes = {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim] for i in model.graph.input}
    pairs = [value.split("=", 1) for flag, value in zip(case.args[::2], case.args[1::2]) if flag == "--feed"]
    return {name: np.full(shapes[name], float(value), np.float32) for name, value in pairs}


def _output_node(model: onnx.ModelProto) -> str:
    return next(n.name for n in model.graph.node if model.graph.output[0].name in n.output)


def _probe_alone_and_batched(path: Path) -> tuple[list, list]:
    """A plain session's outputs for the probe alone and in its batch."""
    model = relax_batch(onnx.load(path))
    images = image_batch(model)
    sess = session(model)
    return sess.run(None, {"input": images[PROBE:PROBE + 1]}), sess.run(None, {"input": images})


# --------------------------------------------------------------------------- registry


def test_registry_is_well_formed() -> None:
    for name, case in ONNX_CASES.items():
        assert case.name == name and name.startswith("onnx_"), name
        assert case.verdict in VERDICTS and case.cause in CAUSES, name
        assert (case.cause is not None) == (case.verdict in ("batch_dependent", "nondeterministic")), name
        assert (case.first_node is not None) == (case.cause is not None) == (case.first_op is not None), name
        assert (case.error_mentions is not None) == (case.verdict == "error"), name
        assert case.changed_first is None or case.verdict == "batch_dependent", name
        assert case.description, name


def test_onnx_cases_build_through_the_shared_registry(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from fixtures.build import main
    from fixtures.registry import ALL_CASES, find_case

    assert not set(ONNX_CASES) & set(ALL_CASES)
    assert find_case("onnx_mobilenet") is ONNX_CASES["onnx_mobilenet"]
    assert main([str(tmp_path), "onnx_mobilenet", "batch_mean"]) == 0
    paths = [Path(line.split("\t")[1]) for line in capsys.readouterr().out.splitlines()]
    assert [p.name for p in paths] == ["model.onnx", "model.pb"] and all(p.is_file() for p in paths)


def test_builds_are_reproducible(tmp_path: Path) -> None:
    for name in ("onnx_mobilenet", "onnx_dynamic_quant"):
        assert build_onnx_case(name, tmp_path / "a").read_bytes() == build_onnx_case(name, tmp_path / "b").read_bytes()


# --------------------------------------------------------------------------- every case


@pytest.mark.parametrize("name", list(ONNX_CASES))
def test_model_is_valid_and_runs(name: str, built: dict[str, Path]) -> None:
    case, path = ONNX_CASES[name], built[name]
    onnx.checker.check_model(str(path), full_check=True)
    model = onnx.load(path)
    images = image_batch(model)
    feeds = {**_feeds(case, model), image_input(model).name: images[PROBE:PROBE + 1]}
    sess = session(model)
    if case.verdict == "error":
        with pytest.raises(ValueError, match=case.error_mentions):
            sess.run(None, feeds)
        return
    outputs = sess.run(None, feeds)
    assert all(np.isfinite(o).all() for o in outputs)


@pytest.mark.parametrize("name", [n for n, c in ONNX_CASES.items() if c.cause is not None])
def test_culprit_is_where_the_probe_first_changes(name: str, built: dict[str, Path]) -> None:
    case, path = ONNX_CASES[name], built[name]
    model = onnx.load(path)
    found = first_divergence(model, _feeds(case, model), limit=case.batch_limit)
    assert found.first == (case.changed_first or case.first_node), found.changed[:5]
    op_type = {n.name: n.op_type for n in model.graph.node}
    assert op_type[case.first_node] == case.first_op
    assert _output_node(model) in found.changed, "the probe's answer does not change"
    if case.changed_first:  # the culprit's output has no per-image row: the change shows right after it
        order = [n.name for n in model.graph.node]
        assert case.first_node in found.skipped
        assert order.index(case.first_node) < order.index(case.changed_first)


@pytest.mark.parametrize("name", [n for n, c in ONNX_CASES.items() if c.verdict in ("invariant", "batch_dependent")])
def test_deterministic_cases_repeat_exactly(name: str, built: dict[str, Path]) -> None:
    """Every node output, run again in the same session and in a new one."""
    case, path = ONNX_CASES[name], built[name]
    model = relax_batch(onnx.load(path))
    if case.batch_limit:
        model = cut_before(model, case.batch_limit)
    model = expose_all(model)
    feeds = {**_feeds(case, model), image_input(model).name: image_batch(model)}
    sess = session(model)
    first = sess.run(None, feeds)
    for again in (sess.run(None, feeds), session(model).run(None, feeds)):
        assert all(np.array_equal(a, b) for a, b in zip(first, again))


@pytest.mark.parametrize("name", [n for n, c in ONNX_CASES.items() if c.verdict == "nondeterministic"])
def test_nondeterministic_cases_differ_run_to_run(name: str, built: dict[str, Path]) -> None:
    model = onnx.load(built[name])
    sess = session(model, optimize=False)
    feeds = {image_input(model).name: image_batch(model)}
    first, second = sess.run(None, feeds)[0], sess.run(None, feeds)[0]
    assert not np.allclose(first, second, rtol=1e-3, atol=0)


@pytest.mark.parametrize("name", [n for n, c in ONNX_CASES.items() if c.verdict == "invariant"])
def test_invariant_cases_agree_alone_and_in_a_batch(name: str, built: dict[str, Path]) -> None:
    case, path = ONNX_CASES[name], built[name]
    model = onnx.load(path)
    found = first_divergence(model, _feeds(case, model), limit=case.batch_limit, rtol=CLEAN)
    assert found.first is None, found.changed[:5]
    assert len(found.relative) >= 10, "too few node outputs compared"


# --------------------------------------------------------------------------- what each construct does in ORT


def test_fixed_batch_refuses_a_batch_until_relaxed(built: dict[str, Path]) -> None:
    model = onnx.load(built["onnx_fixed_batch1"])
    images = image_batch(model)
    with pytest.raises(ort.capi.onnxruntime_pybind11_state.InvalidArgument,
                       match=r"(?s)Got invalid dimensions for input: input .*index: 0 Got: 3 Expected: 1"):
        session(model).run(None, {"input": images})
    assert session(relax_batch(model)).run(None, {"input": images})[0].shape == (BATCH, 10)


def test_locked_reshape_fails_after_its_limit(built: dict[str, Path]) -> None:
    """Relaxed, the hard-coded [1, -1] Reshape folds the batch into the features; the Gemm after it fails."""
    model = relax_batch(onnx.load(built["onnx_reshape_locked"]))
    images = image_batch(model)
    sess = session(model)
    assert sess.run(None, {"input": images[:1]})[0].shape == (1, 10)
    with pytest.raises(ort.capi.onnxruntime_pybind11_state.InvalidArgument,
                       match=re.escape("running Gemm node. Name:'/classifier/classifier.1/Gemm' Status Message: "
                                       "GEMM: Dimension mismatch")):
        sess.run(None, {"input": images})


def test_head_fold_moves_rows_without_changing_values(built: dict[str, Path]) -> None:
    """[1, -1, k] puts image i's anchors at rows i·A … (i+1)·A - 1 of one long anchor axis."""
    (alone,), (batched,) = _probe_alone_and_batched(built["onnx_head_fold"])
    anchors = alone.shape[1]
    assert batched.shape == (1, BATCH * anchors, alone.shape[2])
    np.testing.assert_allclose(batched[0, PROBE * anchors:(PROBE + 1) * anchors], alone[0], rtol=CLEAN, atol=0)


def test_row_select_answers_with_row_0(built: dict[str, Path]) -> None:
    (alone,), (batched,) = _probe_alone_and_batched(built["onnx_row_select"])
    model = relax_batch(onnx.load(built["onnx_row_select"]))
    row0 = session(model).run(None, {"input": image_batch(model)[:1]})[0]
    assert alone.shape == batched.shape == (10,)
    np.testing.assert_array_equal(batched, row0)
    assert not np.allclose(batched, alone)


@pytest.mark.parametrize("name", ["onnx_dropout_training", "onnx_dropout_seeded"])
def test_ort_optimizer_removes_a_training_dropout(name: str, built: dict[str, Path]) -> None:
    """ORT 1.32's basic graph optimisations drop a Dropout after another node even with training_mode=True: a
    plain session answers the same every run and in any batch. Unoptimised, or with the Dropout's output
    fetched (first_divergence exposes every output), the mask is drawn."""
    model = onnx.load(built[name])
    feeds = {"input": image_batch(model)}
    optimized = session(model)
    np.testing.assert_array_equal(optimized.run(None, feeds)[0], optimized.run(None, feeds)[0])
    (alone,), (batched,) = _probe_alone_and_batched(built[name])
    np.testing.assert_array_equal(alone[0], batched[PROBE])
    unoptimized = session(model, optimize=False)
    assert not np.allclose(unoptimized.run(None, feeds)[0], optimized.run(None, feeds)[0])


def test_seeded_dropout_repeats_per_session_not_per_run(built: dict[str, Path]) -> None:
    """ORT 1.32: a Dropout seed seeds the kernel's generator once per session: a fresh session repeats its
    first draw, each further run draws anew; the mask covers the whole batch, so row 0 matches alone."""
    model = onnx.load(built["onnx_dropout_seeded"])
    images = image_batch(model)
    one, other = session(model, optimize=False), session(model, optimize=False)
    first = one.run(None, {"input": images})[0]
    np.testing.assert_array_equal(first, other.run(None, {"input": images})[0])
    assert not np.allclose(first, one.run(None, {"input": images})[0])
    alone = session(model, optimize=False).run(None, {"input": images[:1]})[0]
    np.testing.assert_allclose(alone[0], first[0], rtol=CLEAN)


def test_dynamic_quantization_ops_and_sizes(built: dict[str, Path]) -> None:
    """quantize_dynamic's defaults quantise Conv (ConvInteger) and Gemm (MatMulInteger), each input through a
    DynamicQuantizeLinear; op_types_to_quantize=["MatMul"] only the dense layer. The quantised
    intermediates move by per cents with the batch, the softmax less."""
    for name, integer_ops in (("onnx_dynamic_quant", {"ConvInteger", "MatMulInteger"}),
                              ("onnx_dynamic_quant_matmul", {"MatMulInteger"})):
        model = onnx.load(built[name])
        ops = [n.op_type for n in model.graph.node]
        assert {op for op in ops if op.endswith("Integer")} == integer_ops, name
        dql = [n.name for n in model.graph.node if n.op_type == "DynamicQuantizeLinear"]
        assert dql[0] == ONNX_CASES[name].first_node
        found = first_divergence(model)
        output = found.relative[model.graph.output[0].name]
        scale = found.relative[next(n.output[1] for n in model.graph.node if n.name == dql[0])]
        assert 0 < output < 0.05 and scale > 0.01, (name, output, scale)


# --------------------------------------------------------------------------- large builders


def test_large_builders(tmp_path: Path) -> None:
    model = onnx.load(build_mobilenet_v2(tmp_path))
    assert 150 <= len(model.graph.node) <= 160
    assert session(model).run(None, {"input": np.zeros((1, 3, 224, 224), np.float32)})[0].shape == (1, 1000)
    assert abs(len(onnx.load(build_onnx_chain(tmp_path, 5000)).graph.node) - 5000) <= 3
    chain = build_onnx_chain(tmp_path, 100, training_layer=20)
    assert first_divergence(chain).first == "/layer_00020/BatchNormalization"


# --------------------------------------------------------------------------- real models


@needs_real
@pytest.mark.parametrize("name", list(REAL_ONNX))
def test_real_onnx_model_is_invariant(name: str) -> None:
    found = first_divergence(REAL_ONNX_MODELS / name, size=REAL_ONNX[name], rtol=CLEAN)
    assert found.first is None, found.changed[:5]
    assert len(found.relative) >= 10


@needs_real
def test_real_model_with_a_fixed_batch_needs_relaxing() -> None:
    model = onnx.load(REAL_ONNX_MODELS / "srgan_netG.onnx")
    images = image_batch(model)
    with pytest.raises(ort.capi.onnxruntime_pybind11_state.InvalidArgument, match="index: 0 Got: 3 Expected: 1"):
        session(model).run(None, {"input.1": images})
    assert run(session(relax_batch(model)), {"input.1": images})["146"].shape == (BATCH, 3, 88, 88)


@needs_real
def test_dynamically_quantized_real_model_depends_on_the_batch(tmp_path: Path) -> None:
    path = quantized(lambda _: REAL_ONNX_MODELS / "mesonet_tf2onnx.onnx", tmp_path)
    model = onnx.load(path)
    dql = [n.name for n in model.graph.node if n.op_type == "DynamicQuantizeLinear"]
    found = first_divergence(model)
    assert found.first == dql[0] == "model/conv2d/BiasAdd__6:0_QuantizeLinear"
    assert 0 < found.relative[model.graph.output[0].name] < 0.05


# --------------------------------------------------------------------------- hostile files


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory):
    return build_hostile_onnx(tmp_path_factory.mktemp("hostile-onnx"))


def test_hostile_table_is_well_formed() -> None:
    names = [case.name for case in HOSTILE_ONNX]
    assert len(set(names)) == len(names) >= 20
    for case in HOSTILE_ONNX:
        assert case.description, case.name
        assert case.category is None or case.mentions, case.name


def test_hostile_files_are_refused_by_onnxruntime_or_run(hostile) -> None:
    """Each file really is what its case says: the legitimate ones run, the broken ones fail to load (not run:
    the size cases are checked by their declared sizes)."""
    for case, path in hostile:
        model_sizes = {"too_large", "memory_limit"}
        if case.category in model_sizes:
            continue
        if case.category is None:
            assert session(path).run(None, {"input": np.ones((2, 3, 16, 16), np.float32)})[0].shape == (2, 3), case.name
            continue
        with pytest.raises((ort.capi.onnxruntime_pybind11_state.Fail, ort.capi.onnxruntime_pybind11_state.InvalidArgument,
                            ort.capi.onnxruntime_pybind11_state.InvalidGraph,
                            ort.capi.onnxruntime_pybind11_state.InvalidProtobuf)):
            session(path)


def test_hostile_size_cases_declare_what_they_claim(hostile) -> None:
    paths = {case.name: path for case, path in hostile}
    dims = [d.dim_value for d in onnx.load(paths["huge-dimension"]).graph.input[0].type.tensor_type.shape.dim[1:]]
    assert np.prod(dims, dtype=np.float64) * 4 > 2**35
    shape = onnx.numpy_helper.to_array(onnx.load(paths["memory-bomb"]).graph.initializer[0])
    assert np.prod(shape, dtype=np.float64) * 4 >= 2**35


def test_nesting_is_what_makes_the_deep_file_unreadable() -> None:
    """The same raw encoding 10 deep is a valid model that runs: only the depth of nested-if-200 is hostile."""
    model = onnx.load_from_string(nested_if_model_bytes(10))
    onnx.checker.check_model(model)
    feeds = {"input": np.full((1, 3, 16, 16), -1.0, np.float32), "flag": np.array(True)}
    np.testing.assert_array_equal(session(model).run(None, feeds)[0], np.full((1, 3), -1.0))
    with pytest.raises(Exception, match="MaxDepth"):
        onnx.load_from_string(nested_if_model_bytes(200))


def test_external_data_outside_the_folder_is_refused_by_onnx_too(hostile) -> None:
    for case, path in hostile:
        if case.category == "external_data_outside":
            with pytest.raises(onnx.checker.ValidationError):
                onnx.load(path)
