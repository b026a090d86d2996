"""The JSON report is a contract: on every fixture case it keeps the keys, values and figures of the
reports saved in `tests/golden/` (first written by batchcheck 0.1 before the package layout changed).
Keys may be added, never removed or renamed; a deliberate change of a value is a new golden file in the
same commit, saying why."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

GOLDEN = Path(__file__).parent / "golden"
# Figures are measured (rounding differences between batch sizes): they may move with the CPU's kernels.
FIGURE_KEYS = {"max_abs_diff", "max_rel_diff", "noise_floor", "rtol"}


def same(golden, now, key: str = "") -> list[str]:
    """Where `now` differs from `golden`: paths of differing keys, values or lengths."""
    if isinstance(golden, dict) and isinstance(now, dict):
        if set(golden) - set(now):
            return [f"{key}: keys {sorted(set(golden) - set(now))} are gone"]
        return [d for k in golden for d in same(golden[k], now[k], f"{key}.{k}")]
    if isinstance(golden, list) and isinstance(now, list):
        if len(golden) != len(now):
            return [f"{key}: {len(golden)} items, now {len(now)}"]
        return [d for i, (g, n) in enumerate(zip(golden, now)) for d in same(g, n, f"{key}[{i}]")]
    if key.rsplit(".", 1)[-1] in FIGURE_KEYS and golden is not None and now is not None:
        g, n = float(golden), float(now)
        return [] if g == n or math.isclose(g, n, rel_tol=0.05, abs_tol=1e-9) else [f"{key}: {golden} → {now}"]
    return [] if golden == now else [f"{key}: {golden!r} → {now!r}"]


def without_random_figures(report: dict) -> dict:
    """`report` with the figures of random values (dropout masks differ on every run) blanked."""
    random = [t for t in report["tensors"] if t["status"] in ("nondeterministic", "unjudged")]
    random += [r for r in [*report["roots"], report["first_divergence"] or {}] if r.get("cause") == "random_op"]
    for entry in random:
        entry["max_abs_diff"] = entry["max_rel_diff"] = None
    return report


@pytest.mark.parametrize("name", sorted(path.stem for path in GOLDEN.glob("*.json")))
def test_report_matches_the_saved_one(name, case_model, run_cli):
    from fixtures.graphs import CASES

    path, args = case_model(name)
    report = run_cli(path, *args, "--trials", "3").report
    assert report is not None
    report.pop("versions")
    report["model"]["path"] = f"<{name}>"
    golden = json.loads((GOLDEN / f"{name}.json").read_text())
    assert CASES[name].verdict == golden["verdict"]
    differences = same(without_random_figures(golden), without_random_figures(report))
    assert not differences, "\n".join(differences[:20])
