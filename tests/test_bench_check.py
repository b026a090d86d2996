"""The check benchmark's DeepLab mode (benchmarks/bench_check.py --net deeplab --quick) runs end to end:
a 65 px DeepLabV3 MobileNetV2 core (depth multiplier 0.35), its plain and batchcheck children, the figures."""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))  # the scripts import each other

from bench_check import main, model_path, parse_args  # noqa: E402
from bench_roles import NETS  # noqa: E402


def test_deeplab_quick_run_prints_its_figures(tmp_path, capsys) -> None:
    argv = ["--net", "deeplab", "--quick", "--out", str(tmp_path), "--json", str(tmp_path / "figures.json")]
    args = parse_args(argv)
    NETS["deeplab"].freeze(args.size, model_path(args, tmp_path), args.alpha)  # here: one child fewer to start

    assert main(argv) == 0

    out = capsys.readouterr().out
    assert "DeepLabV3 MobileNetV2 core" in out and "default batch sizes, --trials 8" in out
    assert "plain ran the same plans: yes; verdict invariant (exit 0)" in out
    assert "whole      batchcheck / plain = " in out and "(target <= 3.0x)" in out
    assert "running naive" not in out
    figures = json.loads((tmp_path / "figures.json").read_text())
    assert figures["batch"] is None and figures["trials"] == 8 and figures["targets"] == {"whole": 3.0}
    assert set(figures["ratios"]) == {"per_trial", "whole", "rss"} and all(r > 0 for r in figures["ratios"].values())
