"""The ONNX benchmark (benchmarks/bench_onnx.py --quick) runs end to end: MobileNetV2 at width 0.35 and 96 px and
chains of 100 and 250 nodes, plain onnxruntime and the check each in its own child, the figures printed and written."""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))  # the scripts import each other

from bench_onnx import main  # noqa: E402


def test_quick_run_prints_its_figures(tmp_path, capsys) -> None:
    assert main(["--quick", "--out", str(tmp_path), "--json", str(tmp_path / "figures.json")]) == 0

    out = capsys.readouterr().out
    assert "MobileNetV2 0.35 at 96x96" in out and "--batch-sizes 32 --trials 12" in out
    assert "plain ran the same plans: yes; verdict invariant (exit 0)" in out
    assert "imported neither onnx nor ml_dtypes" in out
    assert "whole      batchcheck / plain = " in out and "(target <= 1.5x)" in out
    figures = json.loads((tmp_path / "figures.json").read_text())
    assert set(figures["mobilenet"]["ratios"]) >= {"whole", "rss", "trials_paired"}
    rows = figures["chains"]["rows"]
    assert [row["nodes"] for row in rows] == [100, 250] and {row["verdict"] for row in rows} == {"invariant"}
    assert figures["chains"]["growth"]["tensor_ratio"] == 2.5
