"""`batchcheck fix` on fixtures: each graph is rewritten, re-checked invariant and compared with the
reference of the original's inference semantics; the figures are asserted, not just the exit code."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from batchcheck.errors import UsageError
from batchcheck.options import CheckConfig

IMAGES = Path(__file__).resolve().parent.parent / "fixtures" / "images"
QUICK = dict(trials=3, batch_sizes=(2, 5))

# name, builder module ("graphs" or "repair"), fix options, expected rewrite kinds, statistics source and count
CASES = [
    ("mobilenet_bn_training_all", "repair", {}, {"bn_inference": 11}, ("graph", 11)),
    ("mobilenet_bn_training_one", "repair", {}, {"bn_inference": 1}, ("graph", 1)),
    ("mobilenet_unfused_training_all", "repair", {}, {"bn_inference": 11}, ("graph", 11)),
    ("mobilenet_unfused_training_one", "repair", {}, {"bn_inference": 1}, ("graph", 1)),
    ("deeplab_aspp_training", "repair", {}, {"bn_inference": 3}, ("graph", 3)),
    ("small_bn_training_dropout", "repair", {}, {"bn_inference": 2, "dropout_identity": 1}, ("graph", 2)),
    ("mobilenet_v1_bn_training", "graphs", {"calibrate": IMAGES}, {"bn_inference": 11}, ("calibration", 11)),
    ("mobilenet_v1_unfused_bn_training", "graphs", {"calibrate": IMAGES}, {"bn_inference": 1}, ("calibration", 1)),
    ("dropout", "graphs", {}, {"dropout_identity": 1}, (None, 0)),
    ("keep_prob_half", "graphs", {}, {"dropout_identity": 1}, (None, 0)),
    ("stateless_dropout", "graphs", {}, {"dropout_identity": 1}, (None, 0)),
    ("cond_v1", "graphs", {}, {"flag_constant": 1, "branch_pruned": 1}, ("graph", 11)),
    ("cond_v2", "graphs", {}, {"flag_constant": 1, "branch_pruned": 1}, ("graph", 11)),
    ("keras_bn_training", "graphs", {}, {"bn_inference": 1}, ("keras", 1)),
    ("keras2_bn_training", "graphs", {}, {"bn_inference": 1}, ("keras", 1)),
    ("meta_checkpoint_bn_training", "graphs", {}, {"bn_inference": 11}, ("checkpoint", 11)),
]


@pytest.fixture(scope="module")
def repair_model(tmp_path_factory, case_model):
    from fixtures import repair

    root = tmp_path_factory.mktemp("repair")

    def build(name: str, module: str) -> tuple[Path, list[str]]:
        if module == "repair":
            return repair.build(name, root), []
        return case_model(name)
    return build


def _config(args: list[str]) -> CheckConfig:
    options = dict(QUICK)
    if "--checkpoint" in args:
        options.update(checkpoint=Path(args[args.index("--checkpoint") + 1]),
                       outputs=(args[args.index("--output") + 1],))
    return CheckConfig(**options)


@pytest.mark.parametrize("name,module,options,rewrites,statistics", CASES, ids=[c[0] for c in CASES])
def test_fixed_invariant_and_agrees_with_reference(name, module, options, rewrites, statistics, repair_model,
                                                    tmp_path):
    import batchcheck

    path, args = repair_model(name, module)
    result = batchcheck.fix(path, tmp_path / "fixed.pb", _config([a for a in args if "--feed" not in a]),
                            repeats=2, **options)
    counts = result.rewrite_counts()
    assert {kind: counts.get(kind) for kind in rewrites} == rewrites, counts
    assert result.proof.verdict == "invariant" and bool(result), result.proof.failed
    source, count = statistics
    assert [s.source for s in result.statistics] == [source] * count
    if source == "calibration":
        assert result.calibration_images == len([p for p in IMAGES.iterdir() if p.stem != "README"])
    for output in result.proof.outputs:
        assert output.max_rel_diff < 1e-4 and output.agreement == 1.0, output
    assert result.proof.images >= 8
    assert all(ms > 0 for ms in [*result.proof.before.latency_ms.values(), *result.proof.after.latency_ms.values()])
    _assert_plain_tensorflow_loads(tmp_path / "fixed.pb", result)


def _assert_plain_tensorflow_loads(path: Path, result) -> None:
    import tensorflow as tf

    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(path.read_bytes())
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    for name in [result.input, *result.outputs]:
        graph.get_tensor_by_name(name)


# name, builder module, BatchNorms folded, ops folded into
FOLD_CASES = [("mobilenet_v1", "graphs", 11, {"Conv2D", "DepthwiseConv2dNative"}),
              ("deeplab", "graphs", 17, {"Conv2D", "DepthwiseConv2dNative"}),  # one through BatchToSpaceND
              ("keras", "graphs", 2, {"Conv2D"}),                              # Keras' Mul/Add arithmetic
              ("dense_bn", "repair", 3, {"Conv2D", "MatMul"})]


@pytest.mark.parametrize("name,module,folded,ops", FOLD_CASES, ids=[c[0] for c in FOLD_CASES])
def test_fold_bn_on_clean_graph(name, module, folded, ops, repair_model, tmp_path):
    import batchcheck

    path, _ = repair_model(name, module)
    result = batchcheck.fix(path, tmp_path / "folded.pb", CheckConfig(**QUICK), fold_bn=True, repeats=2)
    assert result and result.proof.verdict == "invariant"
    assert result.rewrite_counts()["bn_folded"] == folded
    assert {r.detail.split("(")[1].split(")")[0] for r in result.rewrites if r.kind == "bn_folded"} == ops
    assert result.proof.before.batchnorm_nodes > 0 and result.proof.after.batchnorm_nodes == 0
    assert result.proof.after.nodes < result.proof.before.nodes
    for output in result.proof.outputs:
        assert output.max_abs_diff <= output.allowed_abs_diff and output.agreement == 1.0
    assert set(result.proof.after.latency_ms) == {1, 32}


def test_missing_statistics_need_calibrate(case_model, tmp_path):
    import batchcheck

    path, _ = case_model("mobilenet_v1_bn_training")
    with pytest.raises(UsageError, match="--calibrate DIR"):
        batchcheck.fix(path, tmp_path / "fixed.pb", CheckConfig(**QUICK))
    assert not (tmp_path / "fixed.pb").exists()


def test_cli_exit_codes_and_json(case_model, tmp_path, capsys):
    from batchcheck.cli import main

    path, _ = case_model("mobilenet_v1_bn_training")
    out = tmp_path / "fixed.pb"
    assert main(["fix", str(path), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--calibrate" in err
    report = tmp_path / "fix.json"
    code = main(["fix", str(path), "-o", str(out), "--calibrate", str(IMAGES), "--fold-bn", "--trials", "3",
                 "--repeats", "2", "--json", str(report)])
    printed = capsys.readouterr().out
    assert code == 0 and "PASS written and proven" in printed
    data = json.loads(report.read_text())
    assert data["proof"]["verdict"] == "invariant" and data["calibration_images"] > 0
    assert {s["source"] for s in data["statistics"]} == {"calibration"}
    assert data["proof"]["after"]["batchnorm_nodes"] == 0
    assert main(["check", str(out), "--trials", "3"]) == 0
    assert main(["fix", str(path), "-o", str(tmp_path / "missing" / "x.pb")]) == 2


def test_calibrate_skips_unreadable_files_with_skip_bad_images(case_model, tmp_path, capsys):
    from batchcheck.cli import main

    path, _ = case_model("mobilenet_v1_bn_training")
    calibration = tmp_path / "calibration"
    calibration.mkdir()
    for name in ("hopper-rgb.jpg", "hopper-gray.png", "hopper-rgba.png"):
        (calibration / name).write_bytes((IMAGES / name).read_bytes())
    (calibration / "broken.png").write_bytes(b"not an image")
    argv = ["fix", str(path), "-o", str(tmp_path / "fixed.pb"), "--calibrate", str(calibration), "--trials", "3",
            "--repeats", "1"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "broken.png" in err and "--calibrate" in err and err.count("\n") == 1, err
    assert main([*argv, "--skip-bad-images"]) == 0
    assert "skipped 1 unreadable file(s)" in capsys.readouterr().err


def test_unfixable_dependence_written_but_proof_fails(case_model, tmp_path, capsys):
    """A reduction over the batch axis is not one of the rewrites: the graph is written, the re-check fails."""
    from batchcheck.cli import main

    path, _ = case_model("batch_mean")
    out = tmp_path / "fixed.pb"
    assert main(["fix", str(path), "-o", str(out), "--trials", "3", "--repeats", "1"]) == 1
    printed = capsys.readouterr().out
    assert out.exists() and "rewrites none" in printed
    assert "FAIL written, but: re-check: the fixed graph is batch_dependent" in printed


@pytest.mark.parametrize("extra,words", [
    (["-o", "{model}"], "is the model itself"),
    (["-o", "{tmp}/out.pb", "--calibrate", "{tmp}/nope"], "--calibrate"),
    (["-o", "{tmp}/out.pb", "--calibrate", "{tmp}/empty"], "point --calibrate at another folder"),
    (["-o", "{tmp}/out.pb", "--repeats", "0"], "--repeats 0"),
    (["-o", "{tmp}/nope/out.pb"], "does not exist"),
    (["-o", "{tmp}/out.pb", "--output", "gone"], "--output `gone`: no such node"),
], ids=["same-file", "calibrate-missing", "calibrate-empty", "repeats", "out-folder", "output-missing"])
def test_bad_arguments_one_line(extra, words, case_model, tmp_path, capsys):
    from batchcheck.cli import main

    path, _ = case_model("mobilenet_v1_bn_training")
    (tmp_path / "empty").mkdir()
    argv = [arg.format(model=path, tmp=tmp_path) for arg in extra]
    assert main(["fix", str(path), *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err and "Traceback" not in err, err
    assert not (tmp_path / "out.pb").exists()
