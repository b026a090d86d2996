"""The JSON report is a contract: on every fixture case it keeps the keys, values and figures of the
reports saved in `tests/golden/` (first written by batchcheck 0.1 before the package layout changed).
Keys may be added, never removed or renamed; a deliberate change of a value is a new golden file in the
same commit, saying why.

Decisions (verdict, statuses, nodes, causes, hints, counts, keys) compare exactly. Measured figures are
rounding and move with the CPU's kernels (`TF_ENABLE_ONEDNN_OPTS=0`, another instruction set), so they
compare by meaning: an ok tensor's figures stay within its report's tolerance, a divergent tensor's exceed
it and keep their order of magnitude, noise floors keep theirs (one of a few roundings, zero included, counts
as MIN_RTOL)."""
from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest

from batchcheck.judge.tolerance import MIN_RTOL, NOISE_FACTOR

GOLDEN = Path(__file__).parent / "golden"
FIGURES = ("max_abs_diff", "max_rel_diff")
# A noise floor up to MIN_RTOL is a few float32 roundings (eps 1.2e-7): whether a batch of one and a batch of
# many round alike depends on the CPU's instruction set (0 with AVX-512, 1e-6 with AVX2 on the same MobileNet).
# Such a floor, and the rtol it sets, count as that least floor.
LEAST_FLOOR = {"noise_floor": MIN_RTOL, "rtol": NOISE_FACTOR * MIN_RTOL}


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
    return [] if golden == now else [f"{key}: {golden!r} → {now!r}"]


def same_magnitude(golden: float, now: float) -> bool:
    """Within a factor of 10 (infinities only match themselves)."""
    if math.isinf(golden) or math.isinf(now) or golden == 0 or now == 0:
        return golden == now
    return max(golden, now) / min(golden, now) <= 10


def within_tolerance(entry: dict, tolerance: dict) -> bool:
    """Whether a tensor's largest difference stays within atol + rtol × max|solo| (the scale is
    max_abs_diff / max_rel_diff, as the report measured it)."""
    diff, relative = float(entry["max_abs_diff"]), float(entry["max_rel_diff"])
    if diff == 0:
        return True
    return diff * (1 - tolerance["rtol"] / relative) <= tolerance["atol"]


def figure_differences(golden: dict, now: dict) -> list[str]:
    """Where the measured figures of `now` mean something else than `golden`'s (see the module docstring)."""
    differences = []
    for key in ("noise_floor", "rtol"):
        g, n = (max(float(report["tolerance"][key]), LEAST_FLOOR[key]) for report in (golden, now))
        if not same_magnitude(g, n):
            differences.append(f".tolerance.{key}: {golden['tolerance'][key]} → {now['tolerance'][key]}")
    pairs = [(".first_divergence", golden["first_divergence"], now["first_divergence"])]
    pairs += [(f".roots[{i}]", g, n) for i, (g, n) in enumerate(zip(golden["roots"], now["roots"]))]
    pairs += [(f".tensors[{i}]", g, n) for i, (g, n) in enumerate(zip(golden["tensors"], now["tensors"]))]
    for key, g, n in pairs:
        if not g or not n or g["max_abs_diff"] is None or n["max_abs_diff"] is None:
            continue
        divergent = g.get("status", "divergent") == "divergent"   # roots and first_divergence diverge
        within = [within_tolerance(g, golden["tolerance"]), within_tolerance(n, now["tolerance"])]
        if divergent and any(within) or not divergent and not all(within):
            differences.append(f"{key}: {g['max_abs_diff']}, {g['max_rel_diff']} → {n['max_abs_diff']}, "
                               f"{n['max_rel_diff']}: " + ("a divergent tensor within the tolerance" if divergent
                                                           else "an ok tensor beyond the tolerance"))
        elif divergent and not all(same_magnitude(float(g[f]), float(n[f])) for f in FIGURES):
            differences.append(f"{key}: {g['max_abs_diff']}, {g['max_rel_diff']} → {n['max_abs_diff']}, "
                               f"{n['max_rel_diff']}: another order of magnitude")
    return differences


def without_figures(report: dict) -> dict:
    """A copy of `report` with its measured figures blanked (they are compared by `figure_differences`)."""
    report = copy.deepcopy(report)
    for key in ("noise_floor", "rtol"):
        report["tolerance"][key] = None
    for entry in [*report["tensors"], *report["roots"], report["first_divergence"] or {}]:
        entry.update({figure: None for figure in FIGURES if figure in entry})
    return report


def without_random_figures(report: dict) -> dict:
    """`report` with the figures of random values (dropout masks differ on every run) blanked."""
    random = [t for t in report["tensors"] if t["status"] in ("nondeterministic", "unjudged")]
    random += [r for r in [*report["roots"], report["first_divergence"] or {}] if r.get("cause") == "random_op"]
    for entry in random:
        entry["max_abs_diff"] = entry["max_rel_diff"] = None
    return report


def report_differences(golden: dict, now: dict) -> list[str]:
    """Decisions that differ, then figures that mean something else."""
    golden, now = without_random_figures(golden), without_random_figures(now)
    return same(without_figures(golden), without_figures(now)) + figure_differences(golden, now)


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
    differences = report_differences(golden, report)
    assert not differences, "\n".join(differences[:20])


def _perturbed(report: dict, change) -> dict:
    report = copy.deepcopy(report)
    change(report)
    return report


def _first(report: dict, status: str) -> dict:
    return next(t for t in report["tensors"] if t["status"] == status)


def _scale(entry: dict, factor: float) -> None:
    entry.update({figure: entry[figure] * factor for figure in FIGURES})


ROUNDING_MOVES = {
    "an ok tensor's figures move within the tolerance":
        lambda r: _first(r, "ok").update(max_abs_diff=2.4e-07, max_rel_diff=1.5e-07),
    "the noise floor moves by rounding":
        lambda r: r["tolerance"].update(noise_floor=1.35e-06, rtol=1.35e-05),
    "a noise floor of a few roundings is zero on another instruction set":
        lambda r: r["tolerance"].update(noise_floor=0.0, rtol=1e-06),
    "a divergent tensor's figures move by rounding":
        lambda r: _scale(_first(r, "divergent"), 1.0001),
}
MEANINGFUL_CHANGES = {
    "the verdict changes": lambda r: r.update(verdict="invariant"),
    "a tensor's status changes": lambda r: _first(r, "ok").update(status="divergent"),
    "the root's cause changes": lambda r: r["roots"][0].update(cause="batch_reduction"),
    "an ok tensor's figures leave the tolerance":
        lambda r: _first(r, "ok").update(max_abs_diff=0.5, max_rel_diff=0.1),
    "a divergent tensor's figures fall within the tolerance":
        lambda r: _first(r, "divergent").update(max_abs_diff=1e-07, max_rel_diff=1e-07),
    "a divergence is a hundred times smaller":
        lambda r: _scale(r["roots"][0], 0.01),
    "the noise floor grows a hundredfold":
        lambda r: r["tolerance"].update(noise_floor=1.5e-04, rtol=1.5e-03),
}


@pytest.mark.parametrize("change", ROUNDING_MOVES)
def test_rounding_moves_keep_the_report(change):
    golden = json.loads((GOLDEN / "mobilenet_v1_unfused_bn_training.json").read_text())
    assert report_differences(copy.deepcopy(golden), _perturbed(golden, ROUNDING_MOVES[change])) == []


@pytest.mark.parametrize("change", MEANINGFUL_CHANGES)
def test_meaningful_changes_fail_the_comparison(change):
    golden = json.loads((GOLDEN / "mobilenet_v1_unfused_bn_training.json").read_text())
    assert report_differences(copy.deepcopy(golden), _perturbed(golden, MEANINGFUL_CHANGES[change]))
