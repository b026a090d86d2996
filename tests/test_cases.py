"""Every fixture case, checked end to end through the CLI: verdict, exit code, first root, cause."""
from __future__ import annotations

import pytest

from fixtures.graphs import CASES

EXIT = {"invariant": 0, "batch_dependent": 1, "nondeterministic": 1, "error": 2}


@pytest.mark.parametrize("name", sorted(CASES))
def test_case_verdict(name, case_model, run_cli):
    case = CASES[name]
    path, args = case_model(name)
    result = run_cli(path, *args, "--trials", "4")
    assert result.code == EXIT[case.verdict], result.out + result.err
    if case.verdict == "error":
        assert result.err.count("\n") == 1 and case.error_mentions in result.err
        assert "Traceback" not in result.err
        return
    assert result.err == ""
    report = result.report
    assert report["verdict"] == case.verdict
    first = report["first_divergence"]
    if case.verdict == "invariant":
        assert first is None and report["roots"] == []
        return
    assert first["cause"] == case.cause
    if case.first_op:
        assert first["op"] == case.first_op
    if case.first_node:
        assert first["node"] == case.first_node
        assert f"`{case.first_node}`" in result.out


def test_batch1_graph_reports_its_limit(case_model, run_cli):
    """Google-style graphs fix the batch at 1: relaxed, tested up to the hard-coded Reshape."""
    path, _ = case_model("mobilenet_v1_batch1")
    report = run_cli(path, "--trials", "2").report
    assert report["model"]["shipped_batch"] == 1 and report["model"]["batch_relaxed"]
    assert [limit["node"] for limit in report["limits"]] == ["MobilenetV1/Predictions/Reshape"]
    assert any(t["status"] == "not_compared" and "batch limit" in t["note"] for t in report["tensors"])


def test_cond_v1_flag_named_in_hint(case_model, run_cli):
    path, _ = case_model("cond_v1")
    first = run_cli(path, "--trials", "2").report["first_divergence"]
    assert "--feed is_training=false" in first["hint"]


def test_report_json_shape(case_model, run_cli):
    path, _ = case_model("mobilenet_v1_bn_training_deep")
    result = run_cli(path, "--trials", "3", "--seed", "7")
    report = result.report
    assert set(report) >= {"verdict", "first_divergence", "roots", "tensors", "trials", "model",
                           "tolerance", "versions"}
    assert set(report["first_divergence"]) == {"node", "op", "output", "layer", "cause", "max_abs_diff",
                                               "max_rel_diff", "hint"}
    assert report["first_divergence"]["layer"] == "MobilenetV1/Conv2d_3_pointwise"
    # upstream layers agree, the divergence starts at the BN and propagates
    statuses = {t["tensor"]: t["status"] for t in report["tensors"]}
    assert statuses["MobilenetV1/Conv2d_0/Relu6:0"] == "ok"
    assert statuses["MobilenetV1/Conv2d_3_pointwise/Conv2D:0"] == "ok"
    assert statuses["MobilenetV1/Conv2d_3_pointwise/BatchNorm/FusedBatchNormV3:0"] == "divergent"
    assert [t["seed"] for t in report["trials"]] == [[7, 0], [7, 1], [7, 2]]
    assert report["tolerance"]["source"] == "measured" and report["tolerance"]["rtol"] < 1e-3


def test_same_seed_same_trials(case_model, run_cli):
    path, _ = case_model("mobilenet_v1")
    first = run_cli(path, "--trials", "3", "--seed", "3").report["trials"]
    again = run_cli(path, "--trials", "3", "--seed", "3").report["trials"]
    other = run_cli(path, "--trials", "3", "--seed", "4").report["trials"]
    assert first == again and first != other


def test_exact_tolerance_still_passes_clean_graph_or_reports_rounding(case_model, run_cli):
    """--exact turns the tolerance off; --atol/--rtol are used as given."""
    path, _ = case_model("mobilenet_v1")
    report = run_cli(path, "--trials", "2", "--atol", "0.5", "--rtol", "0").report
    assert report["tolerance"] == {"atol": 0.5, "rtol": 0.0, "source": "user", "noise_floor": None}
    assert run_cli(path, "--trials", "2", "--exact").report["tolerance"]["source"] == "exact"


@pytest.mark.parametrize("name,shape", [("mobilenet_v1", "64×64×3"), ("grayscale", None)])
def test_real_image_files(name, shape, case_model, run_cli):
    """The awkward image files (grayscale, RGBA, palette, 16-bit, EXIF, CMYK) feed real graphs."""
    from pathlib import Path

    images = Path(__file__).resolve().parent.parent / "fixtures" / "images"
    path, _ = case_model(name)
    result = run_cli(path, "--images", images, "--trials", "3")
    assert result.code == 0, result.err
    assert result.report["model"]["images"] == str(images)
    probes = {t["probe"] for t in result.report["trials"]}
    assert probes <= {p.name for p in images.iterdir()}


@pytest.mark.parametrize("name,kind", [("mobilenet_v1_stale_stats", "stale_statistics"),
                                       ("mobilenet_v1_no_scale", "no_scale"), ("mobilenet_v1", None)])
def test_batchnorm_findings(name, kind, case_model, run_cli):
    """Pitfalls users meet with BN that are not batch dependence: noted, verdict unchanged."""
    path, _ = case_model(name)
    result = run_cli(path, "--trials", "2")
    assert result.code == 0
    kinds = {f["kind"] for f in result.report["findings"]}
    assert kinds == ({kind} if kind else set())
    if kind:
        assert "note: 11 BatchNorm layer(s), e.g. `MobilenetV1/Conv2d_0`" in result.out
