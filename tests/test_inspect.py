"""`batchcheck inspect`: the names a user needs for --input, --output and --feed, from real graphs."""
from __future__ import annotations

import pytest

from conftest import REAL_MODELS


def test_flags_defaults_and_batchnorm_modes(case_model, run_cli):
    path, _ = case_model("cond_v1")
    result = run_cli(path, command="inspect")
    assert result.code == 0 and result.err == ""
    inventory = result.report
    assert inventory["input"] == "input:0" and inventory["per_image_shape"] == [64, 64, 3]
    assert inventory["outputs"] == ["MobilenetV1/Predictions/Reshape_1:0"]
    flag = next(p for p in inventory["placeholders"] if p["name"] == "is_training")
    assert (flag["op"], flag["dtype"], flag["shape"], flag["default"], flag["role"]) == (
        "PlaceholderWithDefault", "bool", "[]", "true", "feed")
    modes = {bn["training"] for bn in inventory["batchnorms"]}
    assert modes == {True, False}  # each cond holds a training and an inference BatchNorm
    assert all(bn["mode_from"] == "cond flag `is_training`" for bn in inventory["batchnorms"])
    assert "is_training" in result.out and "PlaceholderWithDefault" in result.out


def test_a_placeholder_that_must_be_fed_is_listed_without_stopping(case_model, run_cli):
    """`check` stops at a required placeholder; inspect lists it with no default."""
    path, _ = case_model("keep_prob_missing")
    result = run_cli(path, command="inspect")
    assert result.code == 0
    keep_prob = next(p for p in result.report["placeholders"] if p["name"] == "keep_prob")
    assert keep_prob["default"] is None and "must be fed" in result.out
    assert result.report["input"] is None and "--feed keep_prob=VALUE" in result.report["input_note"]


def test_a_graph_without_a_placeholder_says_why_no_input(run_cli):
    path = REAL_MODELS / "dl4j_fused_batch_norm_float32_nhwc.pb"
    if not path.exists():
        pytest.skip("../shared/real-models is absent")
    result = run_cli(path, command="inspect")
    assert result.code == 0 and result.report["input"] is None
    assert "no image placeholder found" in result.report["input_note"]
    assert [bn["training"] for bn in result.report["batchnorms"]] == [True]
    assert {row["layer"] for row in result.report["layers"]} >= {"in_0", "FusedBatchNormV3"}


def test_unreadable_model_is_one_line(run_cli, tmp_path):
    junk = tmp_path / "junk.pb"
    junk.write_bytes(b"\x00\x01garbage" * 10)
    result = run_cli(junk, command="inspect")
    assert result.code == 2 and result.err.count("\n") == 1 and "junk.pb" in result.err
