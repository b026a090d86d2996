"""Real exports as shipped (issue 7), checked end to end through the CLI: verdict, culprit, coverage."""
from __future__ import annotations

import pytest

from conftest import REAL_MODELS
from fixtures.exports import EXPORT_CASES

pytest_plugins = ("pytester",)
EXIT = {"invariant": 0, "batch_dependent": 1, "nondeterministic": 1, "error": 2}
QUICK = ("--trials", "3", "--batch-sizes", "2,3,5")
# share of conv/matmul/BN ops compared, at least; the SE Reshape to a batch of 12 stops the comparisons


@pytest.fixture
def export_model(case_model):
    return case_model


@pytest.mark.parametrize("name", sorted(EXPORT_CASES))
def test_export_verdict_culprit_and_coverage(name, export_model, run_cli):
    case = EXPORT_CASES[name]
    path, args = export_model(name)
    quick = QUICK if "--batch-sizes" not in args else QUICK[:2]
    result = run_cli(path, *args, *quick)
    assert result.code == EXIT[case.verdict], result.out + result.err
    if case.verdict == "error":
        assert result.err.count("\n") == 1 and case.error_mentions in result.err
        assert "Traceback" not in result.err and result.report["verdict"] == "error"
        return
    assert result.err == ""
    report = result.report
    assert report["verdict"] == case.verdict
    coverage = report["coverage"]
    assert coverage["network_share"] >= 0.8 and coverage["network_ops"] >= 2, coverage
    assert coverage["compared_tensors"] == report["model"]["compared_tensors"] <= coverage["comparable_tensors"]
    complete = coverage["compared_tensors"] == coverage["comparable_tensors"] and coverage["network_share"] == 1
    line = f"coverage {coverage['compared_tensors']} of {coverage['comparable_tensors']} tensors"
    assert (line in result.out) != complete  # the report says what was left out, and only then
    first = report["first_divergence"]
    if case.verdict == "invariant":
        assert first is None
        return
    assert (first["node"], first["op"], first["cause"]) == (case.first_node, case.first_op, case.cause)
    assert f"`{case.first_node}`" in result.out


@pytest.mark.parametrize("name", ["deeplab_export", "map_fn_folded"])
def test_batchable_core_found_and_said(name, export_model, run_cli):
    """One-image preprocessing: tested from the core, to the last output before postprocessing."""
    expected = {"deeplab_export": ("Squeeze", "pad_to_bounding_box/Pad", [64, 64, 3], ["ArgMax:0"]),
                "map_fn_folded": ("Preprocessor/map/TensorArrayUnstack/TensorArrayScatter/TensorArrayScatterV3",
                                  "Preprocessor/map/TensorArrayStack/TensorArrayGatherV3", [48, 48, 3],
                                  ["Predictions/Softmax:0"])}
    one_image, core, shape, outputs = expected[name]
    path, _ = export_model(name)
    model = run_cli(path, "--trials", "2").report["model"]
    assert (model["input"], model["per_image_shape"], model["outputs"]) == (f"{core}:0", shape, outputs)
    note = f"preprocessing `{one_image}` handles one image; tested from `{core}` [{','.join(map(str, shape))}]"
    assert any(n.startswith(note) for n in model["notes"]), model["notes"]


def test_user_input_wins_over_the_core(export_model, run_cli):
    """--input names the one-image input: no core search; the Squeeze is then the batch limit."""
    path, _ = export_model("deeplab_export")
    result = run_cli(path, "--input", "ImageTensor", "--input-shape", "64,64,3", "--trials", "2")
    assert result.code == 2 and result.err.count("\n") == 1
    assert "`Squeeze` fails on a batch of 2" in result.err


def test_pass_over_too_little_exits_2_naming_the_input_to_try(export_model, run_cli):
    """The map_fn export fed at its one-image input compares only the cast: not a pass."""
    path, _ = export_model("map_fn_folded")
    result = run_cli(path, "--input", "image_tensor", *QUICK)
    assert result.code == 2 and result.err.count("\n") == 1, result.err
    assert "compared only 1 of" in result.err and "0 of 5 conv/matmul/BN ops (0%)" in result.err
    assert "limited by batch limit `Preprocessor/map/TensorArrayUnstack" in result.err
    assert "try --input Preprocessor/map/TensorArrayStack/TensorArrayGatherV3" in result.err
    report = result.report  # written all the same: the verdict as measured, with the coverage
    assert report["verdict"] == "invariant" and report["coverage"]["network_share"] == 0.0
    assert "UNTESTED" in result.out


def test_outputs_that_never_run_alone_are_no_pass(export_model, run_cli):
    """The SE Reshape to a batch of 12 fails on the probe alone, so the outputs never run: not a batch limit but a
    model that cannot be tested as asked (exit 2, naming the node); at the one batch size it runs at, all of it is
    tested, batches of 12 with the probe's copies as its reference."""
    path, args = export_model("fixed_batch_12")
    alone = run_cli(path, *args[:4], *QUICK)
    assert alone.code == 2 and alone.report["verdict"] == "error"
    assert "fails on one image alone at node `MobilenetV3/expanded_conv/squeeze_excite/Reshape`" in alone.err
    assert "--batch-sizes N" in alone.err and alone.err.count("\n") == 1
    at_12 = run_cli(path, *args, "--trials", "2").report
    assert at_12["limits"] == [] and {t["batch_size"] for t in at_12["trials"]} == {12}
    assert at_12["coverage"]["network_share"] == 1.0


@pytest.mark.parametrize("name", ["while_loop_bn_v1", "while_loop_bn_v2"])
def test_compared_after_while_loops(name, export_model, run_cli):
    """The loop's outputs and everything after them are compared; frame tensors are named as skipped."""
    path, _ = export_model(name)
    tensors = {t["tensor"]: t for t in run_cli(path, *QUICK).report["tensors"]}
    assert tensors["Head/Conv2D:0"]["status"] == "ok"
    assert tensors["Predictions/Softmax:0"]["status"] == "divergent"
    exits = [t for name, t in tensors.items() if t["op"] == "Exit" and t["status"] != "not_compared"]
    assert exits, "the loop's Exit outputs are compared"
    if name.endswith("v1"):
        skipped = [t for t in tensors.values() if "while loop" in t["note"]]
        assert skipped and all(t["status"] == "not_compared" for t in skipped)


def test_atrous_blocks_compared(export_model, run_cli):
    """Tensors folding the batch with spatial blocks (SpaceToBatchND) compare the probe's blocks."""
    path, _ = export_model("atrous_bn_training")
    tensors = {t["tensor"]: t for t in run_cli(path, *QUICK).report["tensors"]}
    assert tensors["Atrous/SpaceToBatchND:0"]["status"] == "ok"
    assert tensors["Atrous/Conv2D:0"]["status"] == "ok"
    assert tensors["Atrous/BatchNorm/FusedBatchNormV3:0"]["status"] == "divergent"


@pytest.mark.parametrize("name,model_format,note", [
    ("savedmodel_optimizer_slots", "savedmodel-v1", "loaded with the TF1 SavedModel loader"),
    ("text_graph_named_pb", "frozen-pbtxt", "`model.pb` holds a text-format GraphDef"),
    ("unshaped_input", "frozen-pb", "per-image shape 28×28×1 of `input` inferred from `Reshape`"),
])
def test_loading_says_what_it_worked_around(name, model_format, note, export_model, run_cli):
    path, _ = export_model(name)
    result = run_cli(path, "--trials", "2")
    model = result.report["model"]
    assert model["format"] == model_format
    assert any(n.startswith(note) for n in model["notes"]), model["notes"]
    assert note in result.out


def test_unfrozen_graph_says_how_to_freeze(export_model, run_cli):
    path, _ = export_model("unfrozen_graph")
    result = run_cli(path)
    assert "freeze_graph --input_graph model.pb --input_binary --input_checkpoint PREFIX" in result.err


def test_graph_running_at_one_batch_size_tested_at_it(export_model, run_cli):
    """Nothing runs alone: the probe's reference is a batch of its copies; every trial is a batch of 12."""
    path, _ = export_model("batch_only_12_inference")
    report = run_cli(path, *QUICK).report
    assert {t["batch_size"] for t in report["trials"]} == {12} and report["limits"] == []
    assert any(n.startswith("the graph runs only at its batch of 12 (`Reshape` fails on one image)")
               for n in report["model"]["notes"])
    tensors = {t["tensor"]: t for t in report["tensors"]}
    assert tensors["squeeze_excite/Reshape:0"]["batch_axis"] == 0
    assert tensors["squeeze_excite/Reshape:0"]["status"] == "ok"


def test_pytest_plugin_does_not_pass_what_compared_too_little(export_model, pytester):
    """`pytest --graph`: the invariance test of a pass over too little fails with the coverage line."""
    path, _ = export_model("map_fn_folded")
    result = pytester.runpytest("--graph", str(path), "--graph-input", "image_tensor", "--graph-trials", "3",
                                "-k", "invariance", "-rA", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["batchcheck: model `*model.pb`: passed, but compared only 1 of * try --graph-input *"])
    assert "Traceback" not in result.stdout.str()


@pytest.mark.skipif(not (REAL_MODELS / "MANIFEST.md").exists(), reason="../shared/real-models is absent")
def test_real_lenet_without_input_shape(run_cli):
    """dl4j's LeNet: `input` has no shape and is reshaped to [-1,28,28,1]; no --input-shape needed now."""
    result = run_cli(REAL_MODELS / "dl4j_lenet_frozen.pb", *QUICK)
    assert result.code == 0 and result.report["model"]["per_image_shape"] == [28, 28, 1]
    assert result.report["coverage"]["network_share"] == 1.0
