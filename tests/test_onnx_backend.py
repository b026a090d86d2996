"""The ONNX backend end to end through the CLI: every ONNX fixture case checked (verdict, culprit, cause, batch limit,
exit code), linted and explained; the shared real-world ONNX models; a dynamically quantized one; and, without onnx
installed, one line saying what to install (`fix` is in test_onnx_fix.py)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REAL_ONNX_MODELS
from fixtures.onnx import ONNX_CASES

pytest.importorskip("onnxruntime")

EXIT = {"invariant": 0, "batch_dependent": 1, "nondeterministic": 1, "error": 2}
REPO = Path(__file__).resolve().parent.parent
IMAGES = REPO / "fixtures" / "images"
needs_real = pytest.mark.skipif(not (REAL_ONNX_MODELS / "MANIFEST.md").exists(),
                                reason="../shared/real-models-onnx is absent")
# Dynamic quantization takes its range from the whole batch: the synthetic images mostly span the full range, so the
# input's range seldom moves; on images of different contrasts the first DynamicQuantizeLinear, at the input, shows.
CONTRASTS = {"onnx_dynamic_quant"}


@pytest.fixture(scope="session")
def contrasts(tmp_path_factory) -> Path:
    """A folder of noise images at five contrasts, each with its own pixel range."""
    import numpy as np
    from PIL import Image

    folder = tmp_path_factory.mktemp("contrasts")
    rng = np.random.default_rng(5)
    for contrast in (1.0, 0.8, 0.6, 0.4, 0.2):
        pixels = 127.5 + contrast * rng.uniform(-127.5, 127.5, (64, 64, 3))
        Image.fromarray(pixels.astype(np.uint8)).save(folder / f"noise-{contrast}.png")
    return folder
# a Reshape to a constant [1, …] folds the batch: the node before it
FOLDING = {"onnx_head_fold": "/head/box/Transpose", "onnx_reshape_locked": "/GlobalAveragePool"}


@pytest.mark.parametrize("name", sorted(ONNX_CASES))
def test_case_verdict(name, case_model, run_cli, contrasts):
    case = ONNX_CASES[name]
    path, args = case_model(name)
    images = ["--images", str(contrasts)] if name in CONTRASTS else []
    result = run_cli(path, *args, *images, "--trials", "4")
    assert result.code == EXIT[case.verdict], result.out + result.err
    if case.verdict == "error":
        assert result.err.count("\n") == 1 and case.error_mentions in result.err and "Traceback" not in result.err
        return
    report = result.report
    assert result.err == "" and report["verdict"] == case.verdict
    assert report["model"]["format"] == "onnx" and report["versions"]["onnxruntime"]
    first = report["first_divergence"]
    if case.verdict == "invariant":
        assert first is None and report["roots"] == [] and report["coverage"]["compared_tensors"] >= 10
        return
    assert (first["node"], first["op"], first["cause"]) == (case.first_node, case.first_op, case.cause)
    assert f"`{case.first_node}`" in result.out


def test_dynamic_quantization_on_synthetic_images_is_found_at_a_dynamic_quantizer(case_model, run_cli):
    path, _ = case_model("onnx_dynamic_quant")
    result = run_cli(path, "--trials", "3")
    first = result.report["first_divergence"]
    assert result.code == 1 and (first["op"], first["cause"]) == ("DynamicQuantizeLinear", "batch_reduction")
    assert "quantize_static" in first["hint"] and "calibration" in first["hint"]


def test_hints_speak_pytorch(case_model, run_cli):
    for name, words in (("onnx_bn_training", "model.eval()"), ("onnx_dropout_training", "TrainingMode.EVAL"),
                        ("onnx_instancenorm_folded", "x.size(0)")):
        path, _ = case_model(name)
        assert words in run_cli(path, "--trials", "2").report["first_divergence"]["hint"], name


def test_instance_norm_behind_a_fold_says_where_the_change_shows(case_model, run_cli):
    """Its output has no per-image row (the Reshape folded the batch into the last axis): the change shows first
    where the batch comes back, and the report names the normalisation."""
    case = ONNX_CASES["onnx_instancenorm_folded"]
    path, _ = case_model(case.name)
    report = run_cli(path, "--trials", "2").report
    assert f"the change shows at `{case.changed_first}`" in report["first_divergence"]["hint"]
    statuses = {t["tensor"]: t["status"] for t in report["tensors"]}
    assert statuses[f"{case.first_node}:0"] == "not_compared" and statuses[f"{case.changed_first}:0"] == "divergent"


@pytest.mark.parametrize("name", sorted(FOLDING))
def test_a_folding_reshape_stops_the_comparison_there(name, case_model, run_cli):
    """What comes before the Reshape to [1, …] is compared; it and the output are not (the batch is folded into
    another axis, and onnxruntime fails after it or the output keeps it folded)."""
    case = ONNX_CASES[name]
    path, _ = case_model(name)
    result = run_cli(path, "--trials", "2")
    status = {t["tensor"].rpartition(":")[0]: t["status"] for t in result.report["tensors"]}
    assert result.code == 0 and status[FOLDING[name]] == "ok"
    assert status[case.batch_limit] == status[result.report["model"]["outputs"][0].rpartition(":")[0]] == "not_compared"


@pytest.mark.parametrize("name", sorted(FOLDING))
def test_the_folding_reshape_is_the_batch_limit(name, case_model, run_cli):
    path, _ = case_model(name)
    report = run_cli(path, "--trials", "2").report
    assert [limit["node"] for limit in report["limits"]][:1] == [ONNX_CASES[name].batch_limit]


def test_fixed_batch_is_relaxed(case_model, run_cli):
    path, _ = case_model("onnx_fixed_batch1")
    report = run_cli(path, "--trials", "2").report
    assert report["model"]["shipped_batch"] == 1 and report["model"]["batch_relaxed"]
    assert report["model"]["per_image_shape"] == [3, 64, 64]


def test_nhwc_uint8_input_takes_pixels_channels_last(case_model, run_cli):
    path, _ = case_model("onnx_uint8_nhwc")
    report = run_cli(path, "--trials", "2", "--images", str(IMAGES)).report
    assert report["model"]["input_dtype"] == "uint8" and report["model"]["per_image_shape"] == [48, 48, 3]
    assert report["verdict"] == "invariant"


def test_names_outputs_and_inputs_by_onnx_value(case_model, run_cli):
    path, _ = case_model("onnx_mobilenet")
    value = "/features/features.5/Add_output_0"
    report = run_cli(path, "--trials", "2", "--output", value).report
    assert report["model"]["outputs"] == ["/features/features.5/Add:0"]
    inner = run_cli(path, "--trials", "2", "--input", value, "--output", "output").report
    assert inner["model"]["input"] == f"{value}:0" and inner["model"]["per_image_shape"] == [8, 8, 8]
    missing = run_cli(path, "--output", "/features/features.5/Addd", json_report=False)
    assert missing.code == 2 and "did you mean `/features/features.5/Add`" in missing.err


# -- lint, explain, inspect ------------------------------------------------------------------------------------

LINTED = sorted(n for n, c in ONNX_CASES.items() if c.verdict != "error" and n != "onnx_reshape_locked")


@pytest.mark.parametrize("name", LINTED)
def test_lint_finds_the_cause_statically(name, case_model, run_cli):
    case = ONNX_CASES[name]
    path, args = case_model(name)
    result = run_cli(path, *args, command="lint")
    errors = [(f["kind"], f["node"]) for f in result.report["findings"] if f["severity"] == "error"]
    if case.cause is None:
        assert result.code == 0 and not errors
    else:
        assert result.code == 1 and (case.cause, case.first_node) in errors


def test_lint_words_for_onnx(case_model, run_cli):
    path, _ = case_model("onnx_dynamic_quant_matmul")
    [finding] = [f for f in run_cli(path, command="lint").report["findings"] if f["severity"] == "error"]
    assert "DynamicQuantizeLinear" in finding["message"] and "quantize_static" in finding["fix"]
    path, _ = case_model("onnx_dropout_seeded")
    [finding] = run_cli(path, "--confirm", command="lint").report["findings"][:1]
    assert finding["kind"] == "random_op" and finding["confirmed"] and "model.eval()" in finding["fix"]


@pytest.mark.parametrize("name, computes", [("onnx_bn_training", "batch_statistics"),
                                            ("onnx_mobilenet", "moving_statistics")])
def test_explain_computes_a_batchnorm_by_hand(name, computes, case_model, run_cli):
    path, _ = case_model(name)
    report = run_cli(path, "--node", ONNX_CASES["onnx_bn_training"].first_node, command="explain").report
    assert report["computes"] == computes and report["parameters"]["epsilon"] == pytest.approx(1e-5)


def test_explain_dynamic_quantization_names_static_quantization(case_model, run_cli):
    path, _ = case_model("onnx_dynamic_quant_matmul")
    result = run_cli(path, command="explain")
    assert result.code == 1 and result.report["depends_on_batch"]
    assert "quantize_static" in result.report["conclusion"]


def test_inspect_lists_inputs_and_batchnorms(case_model, run_cli):
    path, args = case_model("onnx_two_inputs")
    report = run_cli(path, *args, command="inspect").report
    assert [p["name"] for p in report["placeholders"]] == ["input", "temperature"]
    assert report["input"] == "input:0" and len(report["batchnorms"]) == 31


# -- real models -----------------------------------------------------------------------------------------------

REAL = {"srgan_netG.onnx": (), "mesonet_tf2onnx.onnx": (), "captcha_crnn_tf2onnx.onnx": (),
        "lowlight_enhance.onnx": ("--input-shape", "3,32,32")}


@needs_real
@pytest.mark.parametrize("name", sorted(REAL))
def test_real_onnx_models_are_invariant(name, run_cli):
    result = run_cli(REAL_ONNX_MODELS / name, *REAL[name], "--trials", "3")
    assert result.code == 0 and result.report["verdict"] == "invariant", result.out + result.err
    if name == "mesonet_tf2onnx.onnx":  # its inference BatchNormalization nodes are not flagged
        assert not [f for f in run_cli(REAL_ONNX_MODELS / name, command="lint").report["findings"]
                    if f["severity"] == "error"]


@needs_real
def test_a_symbolic_spatial_size_needs_input_shape(run_cli):
    result = run_cli(REAL_ONNX_MODELS / "lowlight_enhance.onnx", json_report=False)
    assert result.code == 2 and "--input-shape" in result.err and "3,?,?" in result.err


@needs_real
def test_dynamically_quantized_real_model_diverges_at_its_first_dynamic_quantizer(tmp_path, run_cli, contrasts):
    from fixtures.onnx.cases import quantized

    path = quantized(lambda _: REAL_ONNX_MODELS / "mesonet_tf2onnx.onnx", tmp_path)
    result = run_cli(path, "--images", str(contrasts), "--trials", "3")
    first = result.report["first_divergence"]
    assert result.code == 1 and first["node"] == "model/conv2d/BiasAdd__6:0_QuantizeLinear"
    assert (first["op"], first["cause"]) == ("DynamicQuantizeLinear", "batch_reduction")


# -- without the extra -----------------------------------------------------------------------------------------

def test_without_onnx_installed_one_line_says_what_to_install(case_model, tmp_path):
    path, _ = case_model("onnx_mobilenet")
    (tmp_path / "sitecustomize.py").write_text("import sys\nsys.modules['onnx'] = None\n"
                                               "sys.modules['onnxruntime'] = None\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO)]))
    env.pop("BATCHCHECK_UNSUPERVISED", None)
    for command in ("check", "lint", "inspect"):
        done = subprocess.run([sys.executable, "-m", "batchcheck", command, str(path)], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
        assert "pip install 'batchcheck[onnx]'" in done.stderr and "Traceback" not in done.stderr
