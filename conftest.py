"""Shared test fixtures: fixture models built on demand (once per worker) and an in-process CLI runner."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Checks run in-process here (one TensorFlow per worker); tests/test_safety.py and test_hostile.py turn the
# supervised child back on where they test it.
os.environ.setdefault("BATCHCHECK_UNSUPERVISED", "1")

REAL_MODELS = Path(__file__).resolve().parent.parent / "shared" / "real-models"
REAL_ONNX_MODELS = REAL_MODELS.parent / "real-models-onnx"


@dataclass
class CliRun:
    """One in-process `batchcheck` run: exit code, stdout, stderr and the JSON report if written."""
    code: int
    out: str
    err: str
    report: dict | None


@pytest.fixture(scope="session")
def case_model(tmp_path_factory):
    """`case_model(name)` → (model path, extra CLI args) for a fixture case (TensorFlow or ONNX), built once
    per worker."""
    from fixtures.registry import build_case, find_case

    root = tmp_path_factory.mktemp("cases")
    built: dict[str, Path] = {}

    def build(name: str) -> tuple[Path, list[str]]:
        if name not in built:
            built[name] = build_case(name, root)
        path = built[name]
        case_dir = path if path.is_dir() else path.parent
        return path, [arg.replace("{dir}", str(case_dir)) for arg in find_case(name).args]
    return build


@pytest.fixture
def run_cli(tmp_path, capsys):
    """`run_cli(*args, command="check")` runs `batchcheck COMMAND …` in-process with `--json`, returning a `CliRun`."""
    from batchcheck.cli import main

    def run(*args: str, json_report: bool = True, command: str = "check") -> CliRun:
        report_path = tmp_path / "report.json"
        report_path.unlink(missing_ok=True)
        argv = [command, *map(str, args)] + (["--json", str(report_path)] if json_report else [])
        code = main(argv)
        captured = capsys.readouterr()
        report = json.loads(report_path.read_text()) if report_path.exists() else None
        return CliRun(code, captured.out, captured.err, report)
    return run
