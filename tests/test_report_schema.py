"""Every command's JSON report is a typed contract: it carries the schema version, reads back into its result type
(`from_dict`) and writes the same report again; reports written by earlier versions still read."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from batchcheck.explain import Explanation
from batchcheck.inspect import Inventory
from batchcheck.lint import LintResult
from batchcheck.repair.result import FixResult
from batchcheck.result import CheckResult, Verdict
from batchcheck.serial import SCHEMA

GOLDEN = Path(__file__).parent / "golden"


@pytest.mark.parametrize("command, result_type, extra", [
    ("check", CheckResult, ["--trials", "2"]),
    ("lint", LintResult, []),
    ("explain", Explanation, ["--node", "MobilenetV1/Conv2d_0/BatchNorm/FusedBatchNormV3"]),
    ("inspect", Inventory, []),
    ("fix", FixResult, ["-o", "{tmp}/fixed.pb", "--trials", "2", "--repeats", "1"]),
])
def test_each_report_has_its_schema_and_reads_back_typed(command, result_type, extra, case_model, run_cli,
                                                        tmp_path) -> None:
    path, args = case_model("mobilenet_v1_bn_training" if command != "fix" else "mobilenet_v1")
    run = run_cli(path, *args, *(word.replace("{tmp}", str(tmp_path)) for word in extra), command=command)
    assert run.code in (0, 1), run.err
    report = run.report
    assert report["schema"] == SCHEMA
    typed = result_type.from_dict(report)
    assert isinstance(typed, result_type)
    assert typed.to_dict() == report


def test_reports_of_batchcheck_0_1_still_read() -> None:
    """The golden reports predate the schema key and some model keys: they read, with defaults for the rest."""
    for golden in sorted(GOLDEN.glob("*.json")):
        report = json.loads(golden.read_text())
        result = CheckResult.from_dict(report)
        assert result.verdict == Verdict(report["verdict"])
        assert [t.tensor for t in result.tensors] == [t["tensor"] for t in report["tensors"]]
        written = result.to_dict()
        assert {k: v for k, v in written.items() if k in report} == report | {"model": written["model"]}


def test_error_reports_and_many_models_carry_the_schema(run_cli, case_model, tmp_path) -> None:
    broken = tmp_path / "broken.pb"
    broken.write_bytes(b"\x00not a graph")
    for model in (tmp_path / "missing.pb", broken):
        run = run_cli(model)
        assert run.code == 2 and run.report["schema"] == SCHEMA and run.report["verdict"] == "error"
    many = run_cli(broken, case_model("grayscale")[0], "--trials", "1")
    assert many.report["schema"] == SCHEMA
    assert [r["verdict"] for r in many.report["models"]] == ["error", "invariant"]
    assert all(r["schema"] == SCHEMA for r in many.report["models"])
