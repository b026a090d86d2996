"""`batchcheck fix` on ONNX models: each fixable fixture is rewritten, re-checked invariant, compared with the
reference of the original's inference semantics and with its clean counterpart run in plain onnxruntime; stale
statistics are recalibrated to the population statistics of the calibration images; `--fold-bn` folds into Conv and
Gemm and leaves alone what it cannot fold; dynamic quantization and bad `-o` paths are refused in one line."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from batchcheck.options import CheckConfig
from conftest import REAL_ONNX_MODELS

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

IMAGES = Path(__file__).resolve().parent.parent / "fixtures" / "images"
QUICK = dict(trials=3, batch_sizes=(2, 5))
RANDOM_OPS = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Bernoulli", "Multinomial"}

# name, fix options, rewrite counts, (statistics source, count), the clean case whose outputs the fixed model gives
FIXABLE = [
    ("onnx_bn_training", {}, {"bn_inference": 31}, ("graph", 31), "onnx_mobilenet"),
    ("onnx_bn_training_deep", {}, {"bn_inference": 1}, ("graph", 1), "onnx_mobilenet"),
    ("onnx_bn_training_v9", {"fold_bn": True}, {"bn_inference": 31, "bn_folded": 31}, ("graph", 31),
     "onnx_mobilenet"),
    ("onnx_dropout_training", {}, {"dropout_identity": 1}, (None, 0), "onnx_mobilenet"),
    ("onnx_dropout_seeded", {}, {"dropout_identity": 1}, (None, 0), "onnx_mobilenet"),
    ("onnx_random_noise", {}, {"dropout_identity": 1}, (None, 0), "onnx_mobilenet"),
]


def _outputs(path: Path, batch: np.ndarray) -> list[np.ndarray]:
    """The model's outputs on `batch` in plain onnxruntime, its batch axis relaxed."""
    model = onnx.load(str(path))
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "N"
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: batch})


def _batch(shape=(3, 64, 64), count: int = 6) -> np.ndarray:
    return np.random.default_rng(3).uniform(-1, 1, (count, *shape)).astype(np.float32)


def _assert_inference_only(path: Path) -> None:
    """A valid ONNX model with no BatchNormalization in training mode, no Dropout and no random op left."""
    onnx.checker.check_model(str(path), full_check=True)
    model = onnx.load(str(path))
    for node in model.graph.node:
        assert node.op_type not in RANDOM_OPS | {"Dropout"}, node.name
        if node.op_type == "BatchNormalization":
            training = {a.name: a.i for a in node.attribute}.get("training_mode", 0)
            assert not training and len(node.output) == 1, node.name


@pytest.mark.parametrize("name,options,rewrites,statistics,clean", FIXABLE, ids=[c[0] for c in FIXABLE])
def test_fixed_invariant_and_agrees_with_reference_and_clean_model(name, options, rewrites, statistics, clean,
                                                                   case_model, tmp_path):
    import batchcheck

    path, _ = case_model(name)
    out = tmp_path / "fixed.onnx"
    result = batchcheck.fix(path, out, CheckConfig(**QUICK), repeats=1, **options)
    assert result.rewrite_counts() == rewrites
    assert result.proof.verdict == "invariant" and bool(result) and result.exit_code == 0, result.proof.failed
    source, count = statistics
    assert [s.source for s in result.statistics] == [source] * count
    for output in result.proof.outputs:
        assert output.max_abs_diff <= output.allowed_abs_diff and output.agreement == 1.0, output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fixed.onnx"]
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.onnx"]
    _assert_inference_only(out)
    batch = _batch()
    for got, want in zip(_outputs(out, batch), _outputs(case_model(clean)[0], batch)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def test_stale_statistics_need_calibrate_then_are_the_calibration_images_statistics(case_model, run_cli, tmp_path):
    """BatchNorms built with track_running_stats=False have running mean 0 and variance 1: without --calibrate, one
    line (exit 2); with it, each BatchNorm's statistics are its input's per-channel mean and variance over the
    images, with every earlier BatchNorm already fixed, measured here in the written model by plain onnxruntime."""
    from batchcheck.load.images import pool_from_dir

    path, _ = case_model("onnx_bn_untracked")
    out = tmp_path / "fixed.onnx"
    refused = run_cli(path, "-o", out, command="fix", json_report=False)
    assert refused.code == 2 and refused.err.count("\n") == 1 and "--calibrate DIR" in refused.err
    assert "stale" in refused.err and not out.exists()
    result = run_cli(path, "-o", out, "--calibrate", IMAGES, "--trials", "3", "--repeats", "1", command="fix")
    assert result.code == 0 and "PASS written and proven" in result.out, result.out + result.err
    report = result.report
    assert report["verdict"] == "fixed" and report["proof"]["verdict"] == "invariant"
    assert {s["source"] for s in report["statistics"]} == {"calibration"} and len(report["statistics"]) == 31
    assert report["calibration_images"] == len([p for p in IMAGES.iterdir() if p.stem != "README"])
    assert "stale" in report["statistics"][0]["detail"]
    _assert_inference_only(out)

    model = onnx.load(str(out))
    norms = [n for n in model.graph.node if n.op_type == "BatchNormalization"]
    weights = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "N"
    model.graph.output.extend(onnx.helper.make_empty_tensor_value_info(n.input[0]) for n in norms)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    images = pool_from_dir(IMAGES, (64, 64, 3), np.dtype(np.float32), "symmetric").in_layout("NCHW").array
    inputs = session.run([n.input[0] for n in norms], {"input": images})
    for norm, values in zip(norms, inputs):
        np.testing.assert_allclose(weights[norm.input[3]], values.mean(axis=(0, 2, 3)), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(weights[norm.input[4]], values.var(axis=(0, 2, 3)), rtol=1e-3, atol=1e-5)
    assert run_cli(out, "--trials", "3").code == 0


def test_output_named_is_the_fixed_models_output(case_model, tmp_path):
    """--output: the written model ends there, with that value typed as its output, and is proven up to it."""
    import batchcheck

    path, _ = case_model("onnx_bn_training_deep")
    out = tmp_path / "fixed.onnx"
    result = batchcheck.fix(path, out, CheckConfig(outputs=("/features/features.5/Add",), **QUICK), repeats=1)
    assert result and result.rewrite_counts() == {"bn_inference": 1}
    assert result.outputs == ["/features/features.5/Add:0"]
    _assert_inference_only(out)
    model = onnx.load(str(out))
    assert [o.name for o in model.graph.output] == ["/features/features.5/Add_output_0"]
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert not {"GlobalAveragePool", "Gemm", "Softmax"} & {n.op_type for n in model.graph.node}


# name, BatchNorms folded, ops folded into
FOLD_CASES = [("onnx_mobilenet", 31, {"Conv"}), ("onnx_gemm_bn", 32, {"Conv", "Gemm"}),
              ("onnx_uint8_nhwc", 3, {"Conv"})]  # tf2onnx Conv with a bias, NHWC uint8 input


@pytest.mark.parametrize("name,folded,ops", FOLD_CASES, ids=[c[0] for c in FOLD_CASES])
def test_fold_bn_on_clean_model(name, folded, ops, case_model, tmp_path):
    import batchcheck

    path, _ = case_model(name)
    out = tmp_path / "folded.onnx"
    result = batchcheck.fix(path, out, CheckConfig(**QUICK), fold_bn=True, repeats=1)
    assert result and result.proof.verdict == "invariant"
    assert result.rewrite_counts() == {"bn_folded": folded}
    assert {r.detail.rsplit("(", 1)[1].rstrip(")") for r in result.rewrites} == ops
    assert result.proof.before.batchnorm_nodes == folded and result.proof.after.batchnorm_nodes == 0
    assert result.proof.after.nodes == result.proof.before.nodes - folded
    for output in result.proof.outputs:
        assert output.max_abs_diff <= output.allowed_abs_diff and output.agreement == 1.0
    _assert_inference_only(out)
    model = onnx.load(str(path))
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim[1:]]
    batch = _batch(tuple(dims)) if model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT else \
        np.random.default_rng(3).integers(0, 256, (6, *dims), dtype=np.uint8)
    for got, want in zip(_outputs(out, batch), _outputs(path, batch)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


@pytest.mark.skipif(not (REAL_ONNX_MODELS / "mesonet_tf2onnx.onnx").exists(),
                    reason="../shared/real-models-onnx is absent")
def test_fold_bn_leaves_batchnorms_after_an_activation_alone(tmp_path):
    """MesoNet's four inference BatchNormalizations each follow a Relu, not a Conv: nothing to fold, nothing
    rewritten, and the written model gives the original's outputs exactly."""
    import batchcheck

    path = REAL_ONNX_MODELS / "mesonet_tf2onnx.onnx"
    out = tmp_path / "mesonet.onnx"
    result = batchcheck.fix(path, out, CheckConfig(**QUICK), fold_bn=True, repeats=1)
    assert result and result.proof.verdict == "invariant" and result.rewrites == []
    assert result.proof.before.batchnorm_nodes == result.proof.after.batchnorm_nodes == 4
    _assert_inference_only(out)
    batch = _batch((256, 256, 3), count=3)
    for got, want in zip(_outputs(out, batch), _outputs(path, batch)):
        np.testing.assert_array_equal(got, want)


def test_dynamic_quantization_is_refused_with_static_quantization_named(case_model, run_cli, tmp_path):
    path, _ = case_model("onnx_dynamic_quant_matmul")
    out = tmp_path / "fixed.onnx"
    result = run_cli(path, "-o", out, command="fix", json_report=False)
    assert result.code == 2 and result.err.count("\n") == 1 and "Traceback" not in result.err
    assert "DynamicQuantizeLinear" in result.err and "quantize_static" in result.err and "calibration" in result.err
    assert not out.exists()


def test_unfixable_dependence_written_but_proof_fails(case_model, run_cli, tmp_path):
    """A reduction over the batch axis is not one of the rewrites: the model is written, the re-check fails."""
    path, _ = case_model("onnx_reduce_batch")
    out = tmp_path / "fixed.onnx"
    result = run_cli(path, "-o", out, "--trials", "3", "--repeats", "1", command="fix")
    assert result.code == 1 and out.exists() and "rewrites none" in result.out
    assert "FAIL written, but: re-check: the fixed graph is batch_dependent" in result.out
    assert result.report["verdict"] == "not_proven"


@pytest.mark.parametrize("out,words", [
    ("{model}", "is the model itself"),
    ("{tmp}/nope/fixed.onnx", "does not exist"),
    ("{tmp}/fixed.pb", "give a path ending in .onnx"),
    ("{tmp}/folder.onnx", "is a folder"),
], ids=["same-file", "out-folder-missing", "not-onnx", "a-folder"])
def test_bad_out_path_one_line(out, words, case_model, run_cli, tmp_path):
    path, _ = case_model("onnx_bn_training")
    (tmp_path / "folder.onnx").mkdir()
    before = path.read_bytes()
    result = run_cli(path, "-o", out.format(model=path, tmp=tmp_path), command="fix", json_report=False)
    assert result.code == 2 and result.err.count("\n") == 1 and words in result.err, result.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder.onnx"] and path.read_bytes() == before
