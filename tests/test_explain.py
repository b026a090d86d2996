"""`batchcheck explain`: BatchNorm by hand against the graph's output, other ops' rows measured,
the first divergent node by default, on fixtures and real-world graphs."""
from __future__ import annotations

import pytest

from conftest import REAL_MODELS
from fixtures.registry import ALL_CASES

MN = "MobilenetV1"


def explain(run_cli, path, *args):
    return run_cli(path, *args, command="explain")


@pytest.mark.parametrize("name,node,computes", [
    ("mobilenet_v1", f"{MN}/Conv2d_0/BatchNorm/FusedBatchNormV3", "moving_statistics"),
    ("mobilenet_v1_bn_training", f"{MN}/Conv2d_0/BatchNorm/FusedBatchNormV3", "batch_statistics"),
    ("baked_training_unused_flag", f"{MN}/Conv2d_1_pointwise/BatchNorm/FusedBatchNormV3", "batch_statistics"),
    ("mobilenet_v1_unfused_bn_training", f"{MN}/Conv2d_2_pointwise/BatchNorm/batchnorm/add_1", "batch_statistics"),
    ("keras", "bn0_1/batchnorm/add_1", "moving_statistics"),
    ("keras_bn_training", "bn0_1/moments/mean", "batch_statistics"),
    ("per_sample_norms", "NormNet/LayerNorm/moments/mean", "per_sample_statistics"),
    ("deeplab", "image_pooling/BatchNorm/FusedBatchNormV3", "moving_statistics"),
])
def test_batchnorm_by_hand(name, node, computes, case_model, run_cli):
    path, args = case_model(name)
    result = explain(run_cli, path, *args, "--node", node)
    report = result.report
    assert set(report) >= {"node", "op", "kind", "parameters", "computes", "figures"}
    assert report["computes"] == computes, result.out
    assert result.code == (1 if computes == "batch_statistics" else 0)
    figures = report["figures"]
    assert figures["max_abs_graph_vs_batch_stats"] <= figures["tolerance"] or computes == "moving_statistics"
    assert "this node normalises with" in result.out


def test_question_hand_computed_bn_differs(case_model, run_cli):
    """'I computed BN from the moving statistics and my numbers differ': the graph uses the batch's own."""
    path, _ = case_model("cond_v1")
    report = explain(run_cli, path, "--node", f"{MN}/Conv2d_0/BatchNorm/cond/FusedBatchNormV3").report
    figures = report["figures"]
    assert report["computes"] == "batch_statistics"
    assert figures["max_abs_graph_vs_batch_stats"] < 1e-3 < 0.5 < figures["max_abs_graph_vs_moving_stats"]
    assert figures["moving_stats_from"] == f"{MN}/Conv2d_0/BatchNorm/moving_mean"
    source = report["parameters"]["is_training_source"]
    assert "cond" in source and "flag `is_training` (default true)" in source


def test_question_baked_attribute_not_the_flag(case_model, run_cli):
    path, _ = case_model("baked_training_unused_flag")
    report = explain(run_cli, path, "--node", f"{MN}/Conv2d_0/BatchNorm/FusedBatchNormV3").report
    assert "a constant attribute of the node" in report["parameters"]["is_training_source"]
    assert report["figures"]["max_abs_graph_vs_moving_stats"] is None  # not in the frozen graph


def test_missing_gamma_shown_as_one(case_model, run_cli):
    path, _ = case_model("mobilenet_v1_no_scale")
    report = explain(run_cli, path, "--node", f"{MN}/Conv2d_0/BatchNorm/FusedBatchNormV3").report
    assert report["parameters"]["gamma"] == {"node": None, "absent": True, "value": 1.0}
    assert report["computes"] == "moving_statistics"


@pytest.mark.parametrize("name,node,mixes", [
    ("batch_mean", "BatchMean/Mean", True),
    ("batch_softmax", "BatchSoftmax/Softmax", True),
    ("row_selection", "RowSelect/strided_slice", True),
    ("row_index_arith", "RowIndex/add", True),
    ("mobilenet_v1", f"{MN}/Predictions/Softmax", False),
    ("deeplab", "image_pooling/Mean", False),
])
def test_other_ops_rows_measured(name, node, mixes, case_model, run_cli):
    path, _ = case_model(name)
    result = explain(run_cli, path, "--node", node)
    report = result.report
    assert report["depends_on_batch"] is mixes and result.code == int(mixes), result.out
    assert report["figures"]["mixes_rows"] is mixes and "output_shape" in report["attributes"]


def test_row_selection_hint_says_return_the_batch(case_model, run_cli):
    path, _ = case_model("row_selection")
    report = explain(run_cli, path, "--node", "RowSelect/strided_slice").report
    assert report["attributes"]["cause"] == "row_selection"
    assert "one image's result per run" in report["conclusion"] and "--output" in report["conclusion"]
    assert report["attributes"]["shrink_axis_mask"] == 1


def test_default_node_is_the_first_divergent(case_model, run_cli):
    path, _ = case_model("mobilenet_v1_bn_training_deep")
    report = explain(run_cli, path).report
    assert report["node"] == f"{MN}/Conv2d_3_pointwise/BatchNorm/FusedBatchNormV3"
    assert report["computes"] == "batch_statistics"
    clean = explain(run_cli, case_model("mobilenet_v1")[0])
    assert clean.code == 0 and "no node diverges" in clean.out


def test_random_op(case_model, run_cli):
    path, _ = case_model("dropout")
    report = explain(run_cli, path, "--node", "dropout/random_uniform/RandomUniform").report
    assert report["kind"] == "random" and report["figures"]["differs_between_runs"] is True


def test_seeded_random_op_is_the_same_every_run_but_mixes_rows(case_model, run_cli):
    """A stateless draw (Keras 3 dropout with training=True) agrees run to run; its batch changes it."""
    path, _ = case_model("stateless_dropout")
    report = explain(run_cli, path, "--node", "dropout/stateless_random_uniform/StatelessRandomUniformV2").report
    assert report["kind"] == "random" and report["depends_on_batch"] is True
    assert report["figures"]["differs_between_runs"] is False and "seeded" in report["conclusion"]


def test_bad_node_exits_2_with_one_line(case_model, run_cli):
    path, _ = case_model("mobilenet_v1")
    result = explain(run_cli, path, "--node", f"{MN}/Conv2d_0/BatchNorm/FusedBatchNormV")
    assert result.code == 2 and result.err.count("\n") == 1 and "did you mean" in result.err
    path, _ = case_model("cond_v1")
    dead = explain(run_cli, path, "--node", f"{MN}/Conv2d_0/BatchNorm/cond/FusedBatchNormV3_1")
    assert dead.code == 2 and "untaken cond branch" in dead.err


@pytest.mark.parametrize("name", sorted(n for n, c in ALL_CASES.items() if c.verdict != "error"))
def test_explains_every_fixture(name, case_model, run_cli):
    """Each fixture's first running BatchNorm (or its output node) is explained without error."""
    from batchcheck.cli import build_parser
    from batchcheck.load.open import open_model
    from batchcheck.options import config_from_options
    from batchcheck.probe import graph_facts

    path, args = case_model(name)
    parsed = build_parser().parse_args(["explain", str(path), *args])
    config = config_from_options(lambda dest: getattr(parsed, dest, None))
    facts = graph_facts(open_model(path, config)[1], config.feeds)
    norms = [bn.name for bn in facts.norms if bn.name in facts.live]
    node = norms[0] if norms else facts.prepared.outputs[0].split(":")[0]
    result = explain(run_cli, path, *args, "--node", node)
    if name.startswith("batch_only"):  # nothing runs on one image: explain cannot measure, and says why
        assert result.code == 2 and result.err.count("\n") == 1 and "fixed to one batch size" in result.err
        return
    assert result.code in (0, 1) and result.report["node"] == node, result.err


REAL = [
    ("ssoniya_mobilenet_v1_0.25_128_frozen_graph.pb", (), "MobilenetV1/MobilenetV1/Conv2d_0/BatchNorm/batchnorm/add_1",
     "moving_statistics"),
    ("dl4j_fused_batch_norm_float32_nhwc.pb", ("--input", "in_0"), "FusedBatchNormV3", "batch_statistics"),
    ("cdyang_emotion_minixception_model.pb", (), "batch_normalization_1/batchnorm_1/add_1", "moving_statistics"),
]


@pytest.mark.skipif(not (REAL_MODELS / "MANIFEST.md").exists(), reason="../shared/real-models is absent")
@pytest.mark.parametrize("name,args,node,computes", REAL, ids=[r[0] for r in REAL])
def test_real_models(name, args, node, computes, run_cli):
    report = explain(run_cli, REAL_MODELS / name, *args, "--node", node).report
    assert report["computes"] == computes


def test_help_of_both_commands(capsys):
    from batchcheck.cli import main

    for command, words in (("lint", ("--confirm", "--feed", "--json", "no images")),
                           ("explain", ("--node", "--images", "--json", "first divergent"))):
        with pytest.raises(SystemExit) as exit_info:
            main([command, "--help"])
        out = capsys.readouterr().out
        assert exit_info.value.code == 0 and all(word in out for word in words), out
