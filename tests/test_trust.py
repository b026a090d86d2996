"""A verdict means what it says (issue 19 §1–3): an output that never runs on one image is no pass; a batch folded into
a head's anchors is a batch limit, not a dependence; batch-mates that break the model are dropped, and said."""
from __future__ import annotations

import pytest

QUICK = ("--trials", "3", "--batch-sizes", "2,3,5")


@pytest.mark.parametrize("name, node, said", [
    ("assert_fires", "CheckScale/Assert", "only scale 2 is supported"),
    ("broken_const", "SmallNet/Conv2d_0/weights", "Cannot parse tensor"),
])
def test_an_output_that_never_runs_alone_is_no_pass(name, node, said, case_model, run_cli) -> None:
    path, args = case_model(name)
    run = run_cli(path, *args, *QUICK)
    assert run.code == 2 and run.err.count("\n") == 1, run.err
    assert f"fails on one image alone at node `{node}`" in run.err and said in run.err
    assert "never runs" in run.err and run.report["verdict"] == "error"


def test_a_head_that_folds_the_batch_is_a_batch_limit(case_model, run_cli) -> None:
    path, args = case_model("head_fold")
    run = run_cli(path, *args, *QUICK)
    assert run.code == 0, run.out + run.err
    (limit,) = run.report["limits"]
    assert limit["node"] == "head/Reshape" and limit["reason"].startswith("folds the batch into other axes")
    assert limit["tensors_beyond"] == 2 and run.report["roots"] == []
    statuses = {t["tensor"]: t["status"] for t in run.report["tensors"]}
    assert statuses["head/Slice:0"] == statuses["scores:0"] == "not_compared"
    lint = run_cli(path, *args, command="lint")
    assert not [f for f in lint.report["findings"] if f["severity"] == "error"]


def test_batch_mates_that_break_the_model_are_dropped(case_model, run_cli) -> None:
    """The flat black and white mates fail the exposure check; the other mates show the batch-wide range."""
    path, args = case_model("quantized_batch_range")
    run = run_cli(path, *args, "--trials", "6", "--batch-sizes", "2,3,5,8")
    assert run.code == 1, run.out + run.err
    report = run.report
    dropped = [note for note in report["model"]["notes"] if note.startswith("dropped batch-mate(s)")]
    assert dropped and "flat black, flat white" in dropped[0] and "exposure/Check" in dropped[0]
    assert not {"flat black", "flat white"} & {mate for trial in report["trials"] for mate in trial["mates"]}
    first = report["first_divergence"]
    assert first["node"] in ("Quantize/Min", "Quantize/Max") and first["cause"] == "batch_reduction"
    lint = run_cli(path, *args, command="lint").report
    assert {"Quantize/Min", "Quantize/Max"} <= {f["node"] for f in lint["findings"] if f["kind"] == "batch_reduction"}
