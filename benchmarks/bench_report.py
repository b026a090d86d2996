"""The benchmark's summaries of the children's measurements, its figures and its printed report."""
from __future__ import annotations

import os
import platform
from pathlib import Path

from bench_roles import NETS, load_meta
from profiling import CACHE_SOLO, CHECK, COMPARE, COMPILE, MB, OPEN, RUN_PLAN


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values) if values else float("nan")


def summarise_plain(plain: dict) -> dict:
    trials = plain["trials"]
    steady = trials[1:] or trials
    return {"first_trial_s": trials[0]["total_s"],
            "trial_s": _mean(t["total_s"] for t in steady),
            "trial_cpu_s": _mean(t["cpu_s"] for t in steady),
            "solo_s": _mean(t["solo_s"] for t in steady),
            "batch_s": _mean(t["batch_s"] for t in steady)}


def _session_calls(events: list[dict]) -> list[dict]:
    """The calls that run the session: each `compare`, and each `cache_solo` that ran its probe."""
    return [e for e in events if e["name"] == COMPARE or (e["name"] == CACHE_SOLO and not e["info"]["hit"])]


def summarise_batchcheck(bc: dict) -> dict:
    events = bc["events"]
    plans = [e for e in events if e["name"] == RUN_PLAN]
    top = [e for e in plans if e["depth"] == min(x["depth"] for x in plans)]
    screened = [e for e in top if e["info"]["mode"] == "screen"]
    detail = [e for e in top if e["info"]["mode"] == "detail"]

    def inside(parent, calls):
        lo, hi = parent["start_s"], parent["start_s"] + parent["seconds"]
        return [e for e in calls if lo <= e["start_s"] <= hi]

    calls = _session_calls(events)
    steady = screened  # both callables compile during the analysis (`TFSession.compile`)
    solo_calls = [c for e in steady for c in inside(e, calls) if c["name"] == CACHE_SOLO]
    compare_calls = [c for e in steady for c in inside(e, calls) if c["name"] == COMPARE]
    # judging and bookkeeping: a trial's time outside its session calls
    judge = [e["seconds"] - sum(c["seconds"] for c in inside(e, calls)) for e in steady]
    opened = next(e for e in events if e["name"] == OPEN)
    check = next(e for e in events if e["name"] == CHECK)
    localised = [e for e in screened if any(p["info"]["mode"] == "detail" for p in inside(e, plans))]
    return {"trial_s": _mean(e["seconds"] for e in steady),
            "trial_cpu_s": _mean(e["cpu_s"] for e in steady),
            "compile_s": next((e["seconds"] for e in events if e["name"] == COMPILE), None),
            "solo_s": _mean(c["seconds"] for c in solo_calls) if solo_calls else None,
            "compare_s": _mean(c["seconds"] for c in compare_calls),
            "judge_s": _mean(judge),
            "fresh_probe_trials": len(solo_calls), "steady_trials": len(steady),
            "screened_trials": len(screened), "localised_trials": len(localised),
            "detail_trial_s": detail[0]["seconds"] if detail else None,
            "open_s": opened["seconds"], "check_s": check["seconds"],
            "plans": [e["info"]["plan"] for e in top]}


def summarise_naive(naive: dict, trials: int) -> dict:
    per_trial = _mean(t["total_s"] for t in naive["trials"])
    setup = naive["import_tf_s"] + naive["load_s"]
    return {"trial_s": per_trial, "trials_run": len(naive["trials"]),
            "extrapolated_whole_s": naive["wall_s"] - sum(t["total_s"] for t in naive["trials"]) + trials * per_trial,
            "setup_s": setup, "fetched_mb": max(t["fetched_mb"] for t in naive["trials"])}


def _describe(event: dict) -> str:
    """'screen rows=32', 'detail key=3 cached', …: what a call was given."""
    info = event.get("info", {})
    words = [str(info["mode"])] if "mode" in info else []
    words += [f"{key}={info[key]}" for key in ("key", "rows") if key in info]
    words += ["cached"] if info.get("hit") else []
    return " ".join(words)


def print_profile(bc: dict, plain: dict, imports: str = "") -> None:
    """The batchcheck child's timeline (each trial's own calls summed into the trial lines), after the
    line `imports` (default: the TensorFlow children's imports)."""
    print("\nbatchcheck profile (inside the child)")
    print(f"  {'call':<34}{'':<42}{'wall':>8} {'cpu':>7}  {'rss MB':>6} {'peak':>6} {'ever':>6}")
    print(f"  {'':<76}{'':>16}  {'after':>6} {'during':>6} {'so far':>6}")
    print(imports or f"  import tensorflow {bc['import_tf_s']:.2f}s, import batchcheck "
                     f"{bc['import_batchcheck_s']:.2f}s (plain: import tensorflow {plain['import_tf_s']:.2f}s, load .pb + "
                     f"Session {plain['load_s']:.2f}s)")
    in_check = False
    for event in bc["events"]:
        name = event["name"]
        in_check = in_check or name == CHECK
        if name == RUN_PLAN or (in_check and name in (CACHE_SOLO, COMPARE)):
            continue
        indent = "  " * event["depth"]
        print(f"  {indent + name:<34}{_describe(event):<42}{event['seconds']:7.2f}s {event['cpu_s']:6.2f}s"
              f"  {event['rss_after_mb']:6.0f} {event['peak_mb']:6.0f} {event['maxrss_after_mb']:6.0f}")
    print("  trials (wall, cpu, peak rss during the trial):")
    for event in bc["events"]:
        if event["name"] == RUN_PLAN:
            info = event["info"]
            print(f"    {'  ' * event['depth']}run_plan {info['mode']:<6} probe={info['plan']['probe']:<3}"
                  f"{' (solo cached)' if info['solo_cached'] else '':<15} {event['seconds']:7.2f}s "
                  f"{event['cpu_s']:6.2f}s  peak {event['peak_mb']:6.0f}")


def _secs(value) -> str:
    return "-" if value is None else f"{value:.2f}s"


def against_target(ratio: float, target: float | None) -> str:
    """'(target <= 1.1x) PASS', or '(no target)' when the net sets none for this ratio."""
    if target is None:
        return "(no target)"
    return f"(target <= {target}x) {'PASS' if ratio <= target else 'FAIL'}"


def growth_words(figures: dict, kind: str, missing: str) -> str:
    """'3.90x (0.78x linear)' from `figures`' KIND_ratio and KIND_growth, or `missing` where there is no ratio."""
    ratio = figures[f"{kind}_ratio"]
    return missing if ratio is None else f"{ratio:.2f}x ({figures[f'{kind}_growth']:.2f}x linear)"


def check_rss(run: dict) -> float:
    """The batchcheck child's peak during the check itself (before the paired measurements)."""
    return run.get("check_maxrss_bytes", run["maxrss_bytes"]) / MB


def report(args, runs: dict, load_start: list[float]) -> dict:
    """Print the figures of `runs` (role -> runs) and return them as a dict."""
    plain_runs, bc_runs = runs["plain"], runs["batchcheck"]
    plain = min(plain_runs, key=lambda r: r["wall_s"])
    bc = min(bc_runs, key=lambda r: r["wall_s"])
    p, b = summarise_plain(plain), summarise_batchcheck(bc)
    plain_rss_all = [r["maxrss_bytes"] / MB for r in plain_runs]
    bc_rss_all = [check_rss(r) for r in bc_runs]
    plain_rss, bc_rss = max(plain_rss_all), max(bc_rss_all)  # the worst run: peaks vary with scheduling
    # per trial, across processes (the two children ran at different moments)
    per_trial_fresh = ((b["solo_s"] or p["solo_s"]) + b["compare_s"] + b["judge_s"]) / p["trial_s"]
    per_trial_drawn = b["trial_s"] / p["trial_s"]
    # per trial, paired in one process (each screened trial next to its plain forward passes)
    pairs = [pair for run in bc_runs for pair in run.get("paired", [])]
    paired = (sum(x["trial_s"] for x in pairs) / sum(x["plain_s"] for x in pairs)) if pairs else None
    paired_cpu = (sum(x["trial_cpu_s"] for x in pairs) / sum(x["plain_cpu_s"] for x in pairs)) if pairs else None
    ratios = {"per_trial": paired if paired is not None else max(per_trial_fresh, per_trial_drawn),
              "whole": bc["wall_s"] / plain["wall_s"], "rss": bc_rss / plain_rss}
    naive = runs.get("naive", [None])[0]
    n = summarise_naive(naive, args.trials) if naive else None

    meta = load_meta(Path(args.model))
    net = NETS[args.net]
    sizes = f"--batch-sizes {args.batch}" if args.batch else "default batch sizes"
    print(f"\nbatchcheck benchmark: {net.label} {net.width_name} {args.alpha:g} at {args.size}x{args.size} (random "
          f"weights, {meta['nodes']} frozen nodes), {sizes}, --trials {args.trials}")
    print(f"python {platform.python_version()}, tensorflow {meta['tensorflow']}, {os.cpu_count()} cpus, "
          f"threads: {args.threads or 'TF default'} (same in every child), repeat {args.repeat} "
          f"(wall: each approach's fastest run; peak RSS: its highest)")
    loads = [r[k][0] for rs in runs.values() for r in rs for k in ("load_before", "load_after")]
    print(f"load average (1/5/15 min) at start {'/'.join(f'{v:.2f}' for v in load_start)}; 1-min load around "
          f"the children {min(loads):.2f}..{max(loads):.2f} (the running child itself adds ~1-2)")
    if load_start[0] > 0.5 * (os.cpu_count() or 1):
        print(f"WARNING: the machine was busy before the benchmark started (1-min load {load_start[0]:.2f} on "
              f"{os.cpu_count()} cpus): whole-run wall ratios are unreliable; the paired per-trial ratio and the "
              f"cpu-time ratios hold up better; rerun on an idle machine, --repeat 3 keeps each best run")
    print(f"batchcheck measured: {bc['batchcheck_package']} (sources sha1 {bc['batchcheck_digest']})")
    same = b["plans"] == plain["plans"]
    print(f"plans: batchcheck ran {len(b['plans'])} trials, plain ran the same plans: {'yes' if same else 'NO'}; "
          f"verdict {bc['verdict']} (exit {bc['exit_code']}), {bc['compared_tensors']} tensors compared, "
          f"{bc['screened_tensors']} screened, {b['localised_trials']} screened trial(s) localised")

    def rss_note(values):
        return "" if len(values) < 2 else f"; peak RSS over runs {min(values):.0f}..{max(values):.0f} MB"

    print(f"\n{'approach':<12}{'wall s':>9}{'cpu s':>9}{'per-trial s':>13}{'peak RSS MB':>13}  notes")
    print(f"{'plain':<12}{plain['wall_s']:9.2f}{plain['cpu_s']:9.2f}{p['trial_s']:13.3f}{plain_rss:13.0f}  "
          f"solo {p['solo_s']:.3f}s + batch {p['batch_s']:.3f}s; first trial {p['first_trial_s']:.2f}s "
          f"(graph optimisation){rss_note(plain_rss_all)}")
    print(f"{'batchcheck':<12}{bc['wall_s']:9.2f}{bc['cpu_s']:9.2f}{b['trial_s']:13.3f}{bc_rss:13.0f}  "
          f"open {b['open_s']:.2f}s, check {b['check_s']:.2f}s; screened trial: solo {b['solo_s'] or 0:.3f}s + "
          f"compare {b['compare_s']:.3f}s; compiling both callables (in parallel) {_secs(b['compile_s'])}; "
          f"detail trial {_secs(b['detail_trial_s'])}{rss_note(bc_rss_all)}")
    if n:
        note = (f"ran {n['trials_run']} of {args.trials} trials; whole extrapolated to {args.trials}: "
                f"{n['extrapolated_whole_s']:.1f}s; {naive['tensors']} tensors, {n['fetched_mb']:.0f} MB fetched/trial")
        print(f"{'naive':<12}{naive['wall_s']:9.2f}{naive['cpu_s']:9.2f}{n['trial_s']:13.3f}"
              f"{naive['maxrss_bytes'] / MB:13.0f}  {note}")
    print()
    paired_note = (f"paired in one process over {len(pairs)} screened trials, fresh probe each (cpu time "
                   f"{paired_cpu:.2f}x); " if pairs else "")

    def judged(name: str) -> str:
        return f"{ratios[name]:.2f}x  {against_target(ratios[name], net.targets.get(name))}"

    print(f"per-trial  batchcheck / plain = {judged('per_trial')}   "
          f"[{paired_note}across processes: fresh probe {per_trial_fresh:.2f}x, as drawn {per_trial_drawn:.2f}x "
          f"({b['steady_trials'] - b['fresh_probe_trials']}/{b['steady_trials']} steady trials reused the cached "
          f"probe), cpu time as drawn {b['trial_cpu_s'] / p['trial_cpu_s']:.2f}x]")
    print(f"whole      batchcheck / plain = {judged('whole')}   [cpu time: {bc['cpu_s'] / plain['cpu_s']:.2f}x]")
    print(f"peak RSS   batchcheck / plain = {judged('rss')}")
    if n:
        print(f"naive      / plain: per-trial {n['trial_s'] / p['trial_s']:.2f}x, whole (extrapolated) "
              f"{n['extrapolated_whole_s'] / plain['wall_s']:.2f}x, peak RSS {naive['maxrss_bytes'] / MB / plain_rss:.2f}x")
    if args.profile or any(ratios[k] > target for k, target in net.targets.items()):
        print_profile(bc, plain)

    return {"model": meta, "batch": args.batch, "trials": args.trials, "threads": args.threads,
            "load_start": load_start, "targets": net.targets, "ratios": ratios,
            "pass": {k: ratios[k] <= target for k, target in net.targets.items()},
            "per_trial_paired": paired, "per_trial_paired_cpu": paired_cpu,
            "per_trial_fresh_probe": per_trial_fresh, "per_trial_as_drawn": per_trial_drawn,
            "whole_cpu": bc["cpu_s"] / plain["cpu_s"],
            "plain": {**p, "wall_s": plain["wall_s"], "cpu_s": plain["cpu_s"], "peak_rss_mb": plain_rss},
            "batchcheck": {**b, "wall_s": bc["wall_s"], "cpu_s": bc["cpu_s"], "peak_rss_mb": bc_rss,
                           "verdict": bc["verdict"]},
            "naive": ({**n, "wall_s": naive["wall_s"], "peak_rss_mb": naive["maxrss_bytes"] / MB,
                       "tensors": naive["tensors"]} if n else None),
            "runs": runs}
