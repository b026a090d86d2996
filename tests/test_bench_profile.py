"""The benchmark's profile table names batchcheck functions that exist: a rename breaks this test, not the figures."""
from __future__ import annotations

import pytest

from benchmarks.profiling import ONNX_PROFILED, PROFILED, Profiled, Profiler, resolve

EVERY_ENTRY = list(dict.fromkeys(PROFILED + ONNX_PROFILED))


@pytest.mark.parametrize("entry", EVERY_ENTRY, ids=[f"{e.module}.{e.attribute}" for e in EVERY_ENTRY])
def test_profiled_name_exists(entry: Profiled) -> None:
    owner, name, function = resolve(entry)
    assert callable(function) and getattr(owner, name) == function


@pytest.mark.parametrize("table", [PROFILED, ONNX_PROFILED], ids=["tf", "onnx"])
def test_profiled_labels_are_unique(table) -> None:
    labels = [entry.label for entry in table]
    assert len(labels) == len(set(labels))


def test_missing_name_stops_the_profile_with_one_line_and_wraps_nothing() -> None:
    from batchcheck.checker import Checker

    original = Checker.run_plan
    table = (Profiled("batchcheck.checker", "Checker.run_plan", "run_plan"),
             Profiled("batchcheck.checker", "Checker.run_plans", "run_plans"))
    with pytest.raises(SystemExit) as stopped:
        Profiler(started=0.0).install(table)
    message = str(stopped.value)
    assert "`batchcheck.checker.Checker.run_plans` no longer exists" in message and "PROFILED" in message
    assert "\n" not in message
    assert Checker.run_plan is original
