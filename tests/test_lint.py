"""`batchcheck lint`: static findings on fixture graphs, real-world graphs and Keras applications, and
agreement with `check` (every root check reports is a lint error at the same node; no lint error where
check passes)."""
from __future__ import annotations

import pytest

from conftest import REAL_MODELS
from fixtures.registry import ALL_CASES

BATCH_KINDS = {"batchnorm_training", "random_op", "batch_reduction", "batch_size", "position", "row_selection"}
QUICK = ("--trials", "3", "--batch-sizes", "2,5")
MN = "MobilenetV1"


def lint(run_cli, path, *args):
    """`batchcheck lint` with a case's check arguments, less the trial options lint does not take."""
    from batchcheck.options import OPTIONS

    trial_flags = {option.flag_text() for option in OPTIONS if "lint" not in option.commands}
    kept = [word for i, word in enumerate(args) if word not in trial_flags and (i == 0 or args[i - 1] not in trial_flags)]
    return run_cli(path, *kept, command="lint")


def by_kind(report, kind):
    return [f for f in report["findings"] if f["kind"] == kind]


@pytest.mark.parametrize("name", sorted(n for n, c in ALL_CASES.items() if c.verdict != "error"))
def test_lint_agrees_with_check(name, case_model, run_cli):
    path, args = case_model(name)
    check = run_cli(path, *args, *(QUICK if "--batch-sizes" not in args else QUICK[:2])).report
    result = lint(run_cli, path, *args)
    assert result.code == (1 if any(f["severity"] == "error" for f in result.report["findings"]) else 0)
    errors = {f["node"] for f in result.report["findings"] if f["severity"] == "error" and f["kind"] in BATCH_KINDS}
    roots = {root["node"] for root in check["roots"]}
    assert roots <= errors, (roots, errors)
    if check["verdict"] == "invariant":
        assert not errors, errors
    for root in check["roots"]:
        assert root["cause"] in {f["kind"] for f in result.report["findings"] if f["node"] == root["node"]}


def test_json_report_shape(case_model, run_cli):
    path, _ = case_model("mobilenet_v1_bn_training")
    report = lint(run_cli, path).report
    assert set(report) == {"schema", "verdict", "findings", "model", "versions"} and report["verdict"] == "errors"
    assert set(report["findings"][0]) == {"kind", "severity", "node", "op", "layer", "message", "fix",
                                          "confirmed", "evidence"}
    assert all(f["confirmed"] is None for f in report["findings"])


def test_question_training_bn_and_its_flag(case_model, run_cli):
    """'After Conv2d_0 activations differ by batch': which BN trains, and which flag selects that."""
    path, _ = case_model("mobilenet_v1_bn_training")
    result = lint(run_cli, path)
    first = result.report["findings"][0]
    assert result.code == 1 and first["kind"] == "batchnorm_training" and first["severity"] == "error"
    assert first["node"] == f"{MN}/Conv2d_0/BatchNorm/FusedBatchNormV3" and "constant attribute" in first["message"]
    path, _ = case_model("cond_v1")
    report = lint(run_cli, path).report
    flag = by_kind(report, "training_flag")[0]
    assert (flag["node"], flag["severity"]) == ("is_training", "warning")
    assert flag["evidence"]["default"] == "true" and flag["evidence"]["inference_value"] == "false"
    assert "--feed is_training=false" in by_kind(report, "batchnorm_training")[0]["fix"]
    fed = lint(run_cli, path, "--feed", "is_training=false")
    assert fed.code == 0 and not by_kind(fed.report, "batchnorm_training")


def test_question_missing_gamma_is_scale_false(case_model, run_cli):
    path, _ = case_model("mobilenet_v1_no_scale")
    result = lint(run_cli, path)
    no_scale = by_kind(result.report, "no_scale")
    assert result.code == 0 and len(no_scale) == 11 and {f["severity"] for f in no_scale} == {"info"}
    assert "scale=False" in no_scale[0]["message"]
    assert not by_kind(lint(run_cli, case_model("mobilenet_v1")[0]).report, "no_scale")


def test_question_statistics_never_updated(case_model, run_cli):
    """A meta graph + checkpoint whose train op skips UPDATE_OPS: statistics stay 0/1."""
    path, args = case_model("meta_update_ops_skipped")
    result = lint(run_cli, path, *args)
    assert result.code == 1
    update = by_kind(result.report, "update_ops_not_run")[0]
    assert update["node"] == "train_op" and update["evidence"]["update_ops"] == 2
    stale = by_kind(result.report, "stale_statistics")
    assert [f["node"] for f in stale] == ["Net/BatchNorm/FusedBatchNormV3_eval"]
    path, args = case_model("meta_checkpoint")
    updated = lint(run_cli, path, *args)
    assert not by_kind(updated.report, "update_ops_not_run") and not by_kind(updated.report, "stale_statistics")


def test_question_baked_training_and_unused_flag(case_model, run_cli):
    path, _ = case_model("baked_training_unused_flag")
    report = lint(run_cli, path).report
    unused = by_kind(report, "unused_flag")
    assert [(f["node"], f["severity"]) for f in unused] == [("is_training", "warning")]
    assert "changes nothing" in unused[0]["message"]
    assert len(by_kind(report, "batchnorm_training")) == 11


def test_question_deeplab_inference_bn_is_foldable(case_model, run_cli):
    path, _ = case_model("deeplab")
    result = lint(run_cli, path)
    assert result.code == 0 and not by_kind(result.report, "batchnorm_training")
    (fold,) = by_kind(result.report, "foldable_batchnorm")
    # every BN but the atrous depthwise one (SpaceToBatchND, depthwise, BatchToSpaceND, then BN)
    assert fold["severity"] == "info" and fold["evidence"]["count"] == result.report["model"]["batchnorms"] - 1 == 16
    assert f"{MN}/Conv2d_5_depthwise/BatchNorm/FusedBatchNormV3" not in fold["evidence"]["nodes"]
    assert fold["evidence"]["multiply_adds_per_image"] > 0 and f"{MN}/Conv2d_0/Conv2D" in fold["evidence"]["producers"]


def test_tiny_variance_warning(case_model, run_cli):
    path, _ = case_model("tiny_variance")
    (tiny,) = by_kind(lint(run_cli, path).report, "tiny_variance")
    assert tiny["severity"] == "warning" and tiny["evidence"]["channels"] == [1, 4, 6]


@pytest.mark.parametrize("name", ["per_sample_norms", "keras_layer_norm_fused"])
def test_per_sample_norms_not_flagged(name, case_model, run_cli):
    result = lint(run_cli, case_model(name)[0])
    assert result.code == 0 and not by_kind(result.report, "batchnorm_training")


def test_dropout_flag_and_neutral_feeds(case_model, run_cli):
    path, _ = case_model("keep_prob_half")
    half = lint(run_cli, path, "--feed", "keep_prob=0.5").report
    assert by_kind(half, "random_op")[0]["fix"] == "--feed keep_prob=1.0 turns it off"
    assert lint(run_cli, path, "--feed", "keep_prob=1.0").code == 0
    path, _ = case_model("learning_phase_dropout")
    assert lint(run_cli, path).code == 0
    on = lint(run_cli, path, "--feed", "keras_learning_phase=true")
    assert on.code == 1 and "keras_learning_phase=false" in by_kind(on.report, "random_op")[0]["fix"]


def test_confirm_runs_each_finding(case_model, run_cli):
    for name, kind in (("batch_mean", "batch_reduction"), ("row_selection", "row_selection"),
                       ("dropout", "random_op"), ("stateless_dropout", "random_op"),
                       ("mobilenet_v1_bn_training_deep", "batchnorm_training"),
                       ("batch_size_arith", "batch_size"), ("row_index_arith", "position")):
        report = lint(run_cli, case_model(name)[0], "--confirm").report
        finding = by_kind(report, kind)[0]
        assert finding["confirmed"] is True and finding["evidence"]["measured"], (name, finding)
        assert all(f["confirmed"] is None for f in report["findings"] if f["severity"] != "error")


def test_cannot_be_linted_exits_2_with_one_line(case_model, run_cli, tmp_path):
    missing = lint(run_cli, tmp_path / "nope.pb")
    assert missing.code == 2 and missing.err.count("\n") == 1 and "no such file" in missing.err
    feed = lint(run_cli, case_model("keep_prob_missing")[0])
    assert feed.code == 2 and "--feed keep_prob=" in feed.err and "Traceback" not in feed.err


REAL = [
    ("ssoniya_mobilenet_v1_0.25_128_frozen_graph.pb", (), set()),
    ("ssoniya_retrained_graph.pb", ("--output", "final_result"), set()),
    ("ssoniya_optimized_graph.pb", ("--input-shape", "128,128,3"), set()),
    ("dl4j_fused_batch_norm_float32_nhwc.pb", ("--input", "in_0"), {"batchnorm_training"}),
    # dl4j's BN test graphs were never trained: moving mean 0 and variance 1
    ("dl4j_batchnorm_rank4_nhwc_batch2_sz5_fused.pb", ("--input", "in_0"), {"stale_statistics"}),
    ("dl4j_batchnorm_rank4_nhwc_batch4_sz5_noFused.pb", ("--input", "in_0"), {"stale_statistics"}),
    ("dl4j_lenet_frozen.pb", ("--input-shape", "784"), set()),
    ("cdyang_emotion_minixception_model.pb", (), set()),
    ("cdyang_emotion_tiny_cnn_049.pb", (), set()),
    ("utensor_cifar10_cnn_rate.pb", ("--feed", "rate=0"), set()),
    ("utensor_cifar10_cnn_rate.pb", ("--feed", "rate=0.5"), {"random_op"}),
    ("utensor_cifar10_buggy.pb", ("--feed", "keep_prob=1"), set()),
    ("utensor_cifar10_cnn.pb", (), set()),
    ("gsig_charades_frozen_model.pb", ("--input-shape", "224,224,3"), set()),
    ("guorbit_model.pb", (), set()),
]


@pytest.mark.skipif(not (REAL_MODELS / "MANIFEST.md").exists(), reason="../shared/real-models is absent")
@pytest.mark.parametrize("name,args,errors", REAL, ids=[f"{r[0]}{''.join(r[1][:2])}" for r in REAL])
def test_real_models(name, args, errors, run_cli):
    result = lint(run_cli, REAL_MODELS / name, *args)
    assert result.code == (1 if errors else 0), result.out + result.err
    assert {f["kind"] for f in result.report["findings"] if f["severity"] == "error"} == errors


def test_keras_mobilenet_v2_untrained_has_only_stale_statistics(tmp_path, run_cli):
    """weights=None: every BN keeps its initial statistics, which lint says; nothing depends on the batch."""
    import keras

    path = tmp_path / "mobilenet_v2.keras"
    keras.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35, weights=None).save(path)
    result = lint(run_cli, path)
    assert result.report["model"]["batchnorms"] == 52
    assert {f["kind"] for f in result.report["findings"] if f["severity"] == "error"} == {"stale_statistics"}
    assert len(by_kind(result.report, "stale_statistics")) == 52
    assert by_kind(result.report, "foldable_batchnorm")[0]["evidence"]["count"] == 52


def test_check_names_row_selection_and_how_to_fix_it(case_model, run_cli):
    """check used to call `softmax[0]` a batch reduction; its hint now says to return the whole batch."""
    path, _ = case_model("row_selection")
    first = run_cli(path, *QUICK).report["first_divergence"]
    assert (first["node"], first["cause"]) == ("RowSelect/strided_slice", "row_selection")
    assert "one image's result per run" in first["hint"] and "return the whole batch" in first["hint"]
    assert "--output" in first["hint"] and "per-image axes" not in first["hint"]
