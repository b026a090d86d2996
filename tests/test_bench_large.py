"""The large-graph benchmark's figures (benchmarks/bench_large.py): linear growth passes, a check that
timed out is a `timeout` cell and fails its targets. No child is run: the rows are given."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))  # the scripts import each other

from bench_large import Measured, Row, parse_args, print_report  # noqa: E402
from profiling import MB  # noqa: E402

IMPORT_ONLY = Measured(wall_s=2.0, maxrss_bytes=500 * MB, status="ok")


def chain_row(nodes: int, check: Measured) -> Row:
    plain = Measured(wall_s=3.0, maxrss_bytes=520 * MB, status="ok")
    compared = (nodes - 2) * 3 // 5 + 1 if check.ok else None
    return Row(f"chain_{nodes}", "chain", nodes, "--trials 3 --batch-sizes 2,4", compared,
               "invariant" if check.ok else None, check, plain)


def test_cost_linear_in_the_nodes_passes_every_target(capsys) -> None:
    def linear(nodes: int) -> Measured:  # 1 ms and 50 KB a node beyond the TF import
        return Measured(2.0 + nodes / 1000, (500 + nodes * 50 / 1024) * MB, "ok")

    figures = print_report(parse_args([]), [chain_row(n, linear(n)) for n in (1252, 5002, 10002)],
                           IMPORT_ONLY, (0.0, 0.0, 0.0))

    linearity = figures["linearity"]
    assert (linearity["time_growth"], linearity["memory_growth"]) == (pytest.approx(1.0), pytest.approx(1.0))
    assert [t["pass"] for t in figures["targets"]] == [True] * 4
    out = capsys.readouterr().out
    largest = next(line for line in out.splitlines() if line.startswith("chain_10002"))
    assert largest.split()[-2:] == ["1.00", "50"]  # ms and KB per node beyond the TF import
    assert out.count("PASS") == 4


def test_a_check_that_timed_out_is_a_cell_and_fails_its_targets(capsys) -> None:
    rows = [chain_row(1252, Measured(12.0, 900 * MB, "ok")), chain_row(10002, Measured(600.0, 3000 * MB, "timeout"))]

    figures = print_report(parse_args([]), rows, IMPORT_ONLY, (0.0, 0.0, 0.0))

    assert figures["linearity"]["time_growth"] is None
    assert [(t["value"], t["pass"]) for t in figures["targets"]] == [(None, False)] * 4
    out = capsys.readouterr().out
    timed_out = next(line for line in out.splitlines() if line.startswith("chain_10002"))
    assert timed_out.split()[2:5] == ["-", "-", "timeout"]
    assert out.count("FAIL") == 4 and "time beyond the TF import timeout" in out
