"""BatchNorm parameters that are computed, not stored (issue 20 §1): each form (a Const, an Identity/Cast chain,
Const arithmetic, a Dequantize of eight-bit weights, Fill, no gamma) through lint, explain (batch vs moving
statistics), and fix: the inference rewrite from the stored statistics with the BatchNorm folded, and the
recalibration of a graph that stored none, each proven. An inference BatchNorm whose Rsqrt a converter folded into
a Const is still one: explained, found foldable, folded."""
from __future__ import annotations

import pytest

from fixtures.bn_params import FOLDED_RSQRT, FORMS, LAYER, build_bn_params

FAST = ("--trials", "2", "--batch-sizes", "2,3")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """`model(form, **options)` → the path of that `bn_params_model`, built once."""
    built = {}

    def build(form: str, **options) -> str:
        key = (form, *sorted(options.items()))
        if key not in built:
            folder = tmp_path_factory.mktemp("bn-params")
            built[key] = build_bn_params(form, **options)(folder)
        return built[key]
    return build


@pytest.mark.parametrize("form", [*FORMS, "moments"])
def test_explain_names_the_statistics_of_every_form(form, model, run_cli) -> None:
    form, fused = ("arithmetic", False) if form == "moments" else (form, True)
    node = f"{LAYER}/moments/mean" if not fused else f"{LAYER}/FusedBatchNormV3"
    training = run_cli(model(form, fused=fused), "--node", node, command="explain").report
    assert training["computes"] == "batch_statistics", training["conclusion"]
    node = node if fused else f"{LAYER}/batchnorm/add_1"
    inference = run_cli(model(form, fused=fused, training=False), "--node", node, command="explain").report
    assert inference["computes"] == "moving_statistics", inference["conclusion"]
    gamma = inference["parameters"]["gamma"]
    assert gamma.get("absent") if form == "absent" else gamma["constant"] and gamma["channels"] == 8


@pytest.mark.parametrize("form", FORMS)
def test_lint_reads_every_form(form, model, run_cli) -> None:
    findings = run_cli(model(form), command="lint").report["findings"]
    assert [(f["kind"], f["node"]) for f in findings if f["severity"] == "error"] == [
        ("batchnorm_training", f"{LAYER}/FusedBatchNormV3")]
    folds = run_cli(model(form, training=False), command="lint").report["findings"]
    assert f"{LAYER}/FusedBatchNormV3" in next(f for f in folds if f["kind"] == "foldable_batchnorm")["evidence"]["nodes"]


@pytest.mark.parametrize("form", [*FORMS, "moments"])
def test_fix_rewrites_folds_and_recalibrates_every_form(form, model, run_cli, tmp_path) -> None:
    form, fused = ("arithmetic", False) if form == "moments" else (form, True)
    stored = run_cli(model(form, fused=fused), "-o", tmp_path / "folded.pb", "--fold-bn", "--repeats", "1", *FAST,
                     command="fix")
    assert stored.code == 0, stored.out + stored.err
    kinds = {r["kind"] for r in stored.report["rewrites"]}
    assert {"bn_inference", "bn_folded"} <= kinds and stored.report["statistics"][0]["source"] == "graph"
    bare = run_cli(model(form, fused=fused, stored=False), "-o", tmp_path / "calibrated.pb", "--calibrate",
                   "fixtures/images", "--repeats", "1", *FAST, command="fix")
    assert bare.code == 0, bare.out + bare.err
    assert bare.report["statistics"][0]["source"] == "calibration" and bare.report["proof"]["verdict"] == "invariant"


def test_a_folded_rsqrt_is_still_a_batchnorm(model, run_cli, tmp_path) -> None:
    path, node = model(FOLDED_RSQRT, fused=False, training=False), f"{LAYER}/add_1"
    explained = run_cli(path, "--node", node, command="explain").report
    assert explained["computes"] == "moving_statistics", explained["conclusion"]
    assert explained["parameters"]["variance"]["node"] == f"{LAYER}/Rsqrt"
    findings = run_cli(path, command="lint").report["findings"]
    assert node in next(f for f in findings if f["kind"] == "foldable_batchnorm")["evidence"]["nodes"]
    folded = run_cli(path, "-o", tmp_path / "folded.pb", "--fold-bn", "--repeats", "1", *FAST, command="fix")
    assert folded.code == 0, folded.out + folded.err
    assert [r["kind"] for r in folded.report["rewrites"]] == ["bn_folded"]
    assert folded.report["proof"]["verdict"] == "invariant"
