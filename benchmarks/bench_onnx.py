#!/usr/bin/env python3
"""Benchmark `batchcheck check` on ONNX models against plain onnxruntime forward passes of the same plans.

The targets (issue 21), on MobileNetV2 1.0 at 224x224 built as PyTorch exports it (`fixtures/onnx/large.py`:
torchvision's architecture, BatchNormalization as nodes, seeded random weights; nothing is downloaded),
checked with `--batch-sizes 32 --trials 12`:

* whole check: `batchcheck check` costs <= 1.5x a script that only runs those plans' forward passes;
* memory:      peak RSS <= 1.5x that script's.

Then chains of `relu(x * a + b)` layers on [N, 3, 16, 16] inputs (`build_onnx_chain`) of about 1,000, 2,500
and 5,000 nodes, checked the same way: the check's time and memory against the plain passes, and how its
cost grows with the node outputs it compares (no target: figures).

Each approach runs in its own child process (`--role NAME`, started afresh for every run):

* plain:      imports numpy and onnxruntime only, makes one `InferenceSession` with onnxruntime's defaults
              (every graph optimisation, CPU) and, for each of the check's trial plans (`draw_plans`, written
              by this parent: the same images, probes, positions and mates), runs the probe alone and the
              batch, fetching only the model output;
* batchcheck: the real `batchcheck check MODEL --batch-sizes B --trials N` (`cli.main`, unsupervised), timed
              from outside by wrapping the functions of `profiling.ONNX_PROFILED`; then, in the same process,
              each screened trial (fresh probe) paired with the plain forward passes it needs
              (`Checker.forward`): the trials alone.

Figures: whole = the child's wall time from spawn to exit (the batchcheck child's less its paired measurements
after the check); peak RSS = `ru_maxrss` (the batchcheck child's as at the end of the check). The two approaches
alternate `--repeat` times (the machine is shared: its load moves both); each keeps its fastest run and its highest
peak, and the ratios of each round's pair are printed beside them.

    python benchmarks/bench_onnx.py                  # the issue's setting and the chains (about 3 minutes)
    python benchmarks/bench_onnx.py --quick          # smoke run: width 0.35 at 96 px, chains of 100/250 nodes
    python benchmarks/bench_onnx.py --chains none --repeat 11 --profile
    python benchmarks/bench_onnx.py --batchcheck-root ../other-checkout --json out/onnx.json

Shares bench_check.py's children (`run_role`, `child_env`), bench_roles.py's profiled check and timed
plans, and bench_report.py's summaries. This is a script, not a test: it prints figures (and PASS/FAIL
against the targets) and exits 0 unless something crashed.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench_check import (  # puts the batchcheck to measure on sys.path
    add_child_options,
    child_env,
    run_role,
)
from bench_report import (
    against_target,
    check_rss,
    growth_words,
    print_profile,
    summarise_batchcheck,
    summarise_plain,
)
from bench_roles import (
    REPO,
    finish,
    load_meta,
    pool_and_plans,
    profiled_check,
    timed_plans,
)
from profiling import MB, ONNX_PROFILED, RUN_PLAN, plan_dict

TARGETS = {"whole": 1.5, "rss": 1.5}  # issue 21: batchcheck / plain
CHAIN_NODES = (1000, 2500, 5000)
QUICK = {"width": 0.35, "size": 96, "chains": (100, 250)}


# -- children ---------------------------------------------------------------------------------------

def role_build(args, started: float) -> dict:
    """Write the MobileNetV2 (in a folder per width) and the chains into `--out`, each with its meta (.json)
    beside it; a model whose meta is there already is kept."""
    sys.path.insert(0, str(REPO))
    import onnx
    import onnxruntime

    from fixtures.onnx.large import (
        CHAIN_SIZE,
        build_mobilenet_v2,
        build_onnx_chain,
        chain_layers_for_nodes,
    )

    mobilenet = args.out / f"width_{args.width:g}" / f"mobilenet_v2_{args.size}.onnx"
    chains = [args.out / f"chain_{chain_layers_for_nodes(nodes)}.onnx" for nodes in args.chains]
    built = [(mobilenet, args.size, lambda: build_mobilenet_v2(mobilenet.parent, size=args.size, width=args.width))]
    built += [(path, CHAIN_SIZE, lambda nodes=nodes: build_onnx_chain(args.out, nodes))
              for path, nodes in zip(chains, args.chains)]
    for path, size, build in built:
        if path.with_suffix(".json").exists():
            continue
        build()
        meta = {"input": "input", "output": "output", "per_image_shape": [3, size, size],
                "nodes": len(onnx.load(str(path)).graph.node), "onnx": onnx.__version__,
                "onnxruntime": onnxruntime.__version__}
        path.with_suffix(".json").write_text(json.dumps(meta, indent=1))
    return {"models": [str(path) for path, _, _ in built]}


def role_plain(args, started: float) -> dict:
    """Only the forward passes of the check's plans, in a session with onnxruntime's defaults."""
    t0 = time.perf_counter()
    import numpy as np
    import onnxruntime

    t1 = time.perf_counter()
    session = onnxruntime.InferenceSession(args.model, providers=["CPUExecutionProvider"])
    t2 = time.perf_counter()
    meta = load_meta(Path(args.model))
    pool = np.load(args.pool)
    plans = json.loads(Path(args.plans).read_text())
    batches = [([p["probe"]], [*p["mates"][:p["position"]], p["probe"], *p["mates"][p["position"]:]]) for p in plans]
    trials = timed_plans(batches, lambda rows: session.run([meta["output"]], {meta["input"]: pool[rows]}))
    return {"import_s": t1 - t0, "load_s": t2 - t1, "trials": trials, "plans": plans}


def role_batchcheck(args, started: float) -> dict:
    """The real `batchcheck check`, profiled, then the paired trials; and whether it imported onnx."""
    result = profiled_check(args, started, ONNX_PROFILED)
    return {**result, "imported": [name for name in ("onnx", "ml_dtypes", "tensorflow") if name in sys.modules]}


ROLES = {"build": role_build, "plain": role_plain, "batchcheck": role_batchcheck}


# -- runs -------------------------------------------------------------------------------------------

def write_plans(model: Path, args, workdir: Path) -> tuple[Path, Path]:
    """The check's image pool (.npy) and seeded trial plans (.json) for `model`, for the plain child."""
    import numpy as np

    pool, plans = pool_and_plans(load_meta(model), (args.batch,), args.trials)
    pool_path, plans_path = workdir / f"{model.stem}.pool.npy", workdir / f"{model.stem}.plans.json"
    np.save(pool_path, pool.array)
    plans_path.write_text(json.dumps([plan_dict(p) for p in plans]))
    return pool_path, plans_path


def run_child(role: str, args, workdir: Path, model: Path | None = None, *options: str) -> dict:
    result = workdir / f"{role}-{time.monotonic_ns()}.json"
    command = [sys.executable, str(Path(__file__).resolve()), "--role", role, "--result", str(result),
               "--out", str(args.out), "--size", str(args.size), "--width", str(args.width),
               "--chains", ",".join(map(str, args.chains)) or "none", "--batch", str(args.batch),
               "--trials", str(args.trials), *(["--no-pairs"] if args.no_pairs else []),
               *(["--model", str(model)] if model else []), *options]
    return run_role(role, command, {**child_env(args), "BATCHCHECK_UNSUPERVISED": "1"}, result)


def measure(model: Path, args, workdir: Path, rounds: int) -> dict:
    """`rounds` rounds of the plain child then the batchcheck child on `model`: {role: [runs]}."""
    pool, plans = write_plans(model, args, workdir)
    runs: dict = {"plain": [], "batchcheck": []}
    for i in range(rounds):
        for role in runs:
            print(f"  {model.stem} {role} ({i + 1}/{rounds}) … load {os.getloadavg()[0]:.2f}", end="", flush=True)
            options = ("--pool", str(pool), "--plans", str(plans)) if role == "plain" else ()
            runs[role].append(run_child(role, args, workdir, model, *options))
            print(f"  {runs[role][-1]['wall_s']:.2f}s, peak {_peak_mb(runs[role][-1]):.0f} MB", flush=True)
    return runs


def _peak_mb(run: dict) -> float:
    return check_rss(run) if run["role"] == "batchcheck" else run["maxrss_bytes"] / MB


# -- figures ----------------------------------------------------------------------------------------

def figures(runs: dict) -> dict:
    """The fastest run of each approach, its summaries and the ratios batchcheck / plain."""
    plain_runs, bc_runs = runs["plain"], runs["batchcheck"]
    plain, bc = min(plain_runs, key=lambda r: r["wall_s"]), min(bc_runs, key=lambda r: r["wall_s"])
    p, b = summarise_plain(plain), summarise_batchcheck(bc)
    peaks = {role: [_peak_mb(r) for r in role_runs] for role, role_runs in runs.items()}
    rounds = [b_run["wall_s"] / p_run["wall_s"] for p_run, b_run in zip(plain_runs, bc_runs)]
    pairs = [pair for run in bc_runs for pair in run["paired"]]
    plans = [e for e in bc["events"] if e["name"] == RUN_PLAN]
    trials = [e for e in plans if e["depth"] == min(x["depth"] for x in plans)]  # not the localising re-runs
    events = {e["name"]: e["seconds"] for e in reversed(bc["events"])}  # each label's first call
    return {"plain": {**p, "wall_s": plain["wall_s"], "cpu_s": plain["cpu_s"], "peak_mb": max(peaks["plain"]),
                      "import_s": plain["import_s"], "load_s": plain["load_s"],
                      "trials_s": sum(t["total_s"] for t in plain["trials"])},
            "batchcheck": {**b, "wall_s": bc["wall_s"], "cpu_s": bc["cpu_s"], "peak_mb": max(peaks["batchcheck"]),
                           "trials_s": sum(e["seconds"] for e in trials), "load_onnx_s": events.get("load_onnx"),
                           "analyse_s": events.get("Runner.analyse"), "calibrate_s": events.get("calibrate"),
                           "verdict": bc["verdict"], "exit_code": bc["exit_code"], "imported": bc["imported"],
                           "compared": bc["compared_tensors"], "screened": bc["screened_tensors"]},
            "ratios": {"whole": bc["wall_s"] / plain["wall_s"], "rss": max(peaks["batchcheck"]) / max(peaks["plain"]),
                       "cpu": bc["cpu_s"] / plain["cpu_s"],
                       "trials_paired": (sum(x["trial_s"] for x in pairs) / sum(x["plain_s"] for x in pairs)
                                         if pairs else None),
                       "trials_as_run": sum(e["seconds"] for e in trials) / sum(t["total_s"] for t in plain["trials"])},
            "rounds": rounds, "peaks_mb": peaks, "same_plans": b["plans"] == plain["plans"],
            "fastest": {"plain": plain, "batchcheck": bc}}


def _range(label: str, values: list[float], unit: str = "x") -> str:
    """'; LABEL 1.20..1.40x, median 1.30x' over several runs, '' over one."""
    if len(values) < 2:
        return ""
    return f"; {label} {min(values):.2f}..{max(values):.2f}{unit}, median {statistics.median(values):.2f}{unit}"


def report_mobilenet(args, meta: dict, f: dict) -> None:
    p, b, r = f["plain"], f["batchcheck"], f["ratios"]
    print(f"\nbatchcheck ONNX benchmark: MobileNetV2 {args.width} at {args.size}x{args.size} (torchvision's, random "
          f"weights, {meta['nodes']} nodes), --batch-sizes {args.batch} --trials {args.trials}")
    print(f"plans: batchcheck ran {len(b['plans'])} trials, plain ran the same plans: "
          f"{'yes' if f['same_plans'] else 'NO'}; verdict {b['verdict']} (exit {b['exit_code']}), {b['compared']} "
          f"tensors compared, {b['screened']} on every trial")
    print(f"\n{'approach':<12}{'wall s':>9}{'cpu s':>9}{'per-trial s':>13}{'peak RSS MB':>13}  notes")
    print(f"{'plain':<12}{p['wall_s']:9.2f}{p['cpu_s']:9.2f}{p['trial_s']:13.3f}{p['peak_mb']:13.0f}  "
          f"import {p['import_s']:.2f}s, session {p['load_s']:.2f}s, {len(b['plans'])} plans {p['trials_s']:.2f}s "
          f"(solo {p['solo_s']:.3f}s + batch {p['batch_s']:.3f}s)")
    print(f"{'batchcheck':<12}{b['wall_s']:9.2f}{b['cpu_s']:9.2f}{b['trial_s']:13.3f}{b['peak_mb']:13.0f}  "
          f"open {b['open_s']:.2f}s (load {b['load_onnx_s']:.2f}s, analysis {b['analyse_s']:.2f}s with sessions "
          f"{b['compile_s']:.2f}s, calibration {b['calibrate_s']:.2f}s), {len(b['plans'])} trials {b['trials_s']:.2f}s "
          f"(detailed first {b['detail_trial_s']:.2f}s; screened: compare {b['compare_s']:.3f}s); "
          f"imported {', '.join(b['imported']) or 'neither onnx nor ml_dtypes'}")
    print()
    whole, rss = (f"{r[k]:.2f}x  {against_target(r[k], TARGETS[k])}" for k in ("whole", "rss"))
    print(f"whole      batchcheck / plain = {whole}   [cpu time {r['cpu']:.2f}x{_range('each round', f['rounds'])}]")
    print(f"peak RSS   batchcheck / plain = {rss}   "
          f"[{p['peak_mb']:.0f} vs {b['peak_mb']:.0f} MB{_range('plain', f['peaks_mb']['plain'], ' MB')}"
          f"{_range('batchcheck', f['peaks_mb']['batchcheck'], ' MB')}]")
    paired = "-" if r["trials_paired"] is None else f"{r['trials_paired']:.2f}x"
    print(f"trials     batchcheck / plain = {paired}  (no target)   [each screened trial paired in one process "
          f"with its plain passes; all {len(b['plans'])} trials as run, across processes {r['trials_as_run']:.2f}x]")
    if args.profile or any(r[k] > target for k, target in TARGETS.items()):
        bc, plain = f["fastest"]["batchcheck"], f["fastest"]["plain"]
        print_profile(bc, plain, f"  import batchcheck {bc['import_batchcheck_s']:.2f}s (plain: import numpy and "
                                 f"onnxruntime {plain['import_s']:.2f}s, InferenceSession {plain['load_s']:.2f}s)")


def scaling(rows: list[dict]) -> dict | None:
    """How the check's cost beyond the plain passes grows from the smallest chain to the largest, against
    the growth of the compared tensors (1.0: linear). None with fewer than two chains."""
    if len(rows) < 2:
        return None
    small, large = rows[0], rows[-1]
    tensors = large["compared"] / small["compared"]
    grown = {"tensor_ratio": tensors}
    for kind, extra in (("time", "extra_s"), ("memory", "extra_mb")):  # None where the smallest costs nothing extra
        ratio = large[extra] / small[extra] if small[extra] > 0 else None
        grown.update({f"{kind}_ratio": ratio, f"{kind}_growth": None if ratio is None else ratio / tensors})
    return grown


def report_chains(args, chains: list[tuple[dict, dict]], rounds: int) -> dict:
    """Print the chains' table and growth line; return them."""
    rows = []
    for meta, f in chains:
        p, b = f["plain"], f["batchcheck"]
        rows.append({"nodes": meta["nodes"], "compared": b["compared"], "check_s": b["wall_s"], "plain_s": p["wall_s"],
                     "check_mb": b["peak_mb"], "plain_mb": p["peak_mb"], "analyse_s": b["analyse_s"],
                     "compile_s": b["compile_s"], "calibrate_s": b["calibrate_s"], "detail_s": b["detail_trial_s"],
                     "screened_s": b["trial_s"], "plain_trial_s": p["trial_s"], "verdict": b["verdict"],
                     "extra_s": b["wall_s"] - p["wall_s"], "extra_mb": b["peak_mb"] - p["peak_mb"]})
    print(f"\nchains of relu(x*a+b) on 3x16x16, --batch-sizes {args.batch} --trials {args.trials}; each the fastest "
          f"of {rounds} (peaks: the highest); per tensor: the check's time and memory beyond the plain passes "
          f"per compared tensor (node output)")
    header = (f"{'nodes':>7}{'compared':>10}  {'verdict':<11}{'check s':>9}{'plain s':>9}{'ratio':>7}{'check MB':>10}"
              f"{'plain MB':>10}{'ratio':>7}{'analysis':>10}{'sessions':>10}{'calib.':>8}{'detail':>8}{'screened':>10}"
              f"{'plain':>8}{'ms/tensor':>11}{'KB/tensor':>11}")
    print(header)
    print("-" * len(header))
    for row in rows:
        print(f"{row['nodes']:>7,}{row['compared']:>10,}  {row['verdict']:<11}{row['check_s']:9.2f}"
              f"{row['plain_s']:9.2f}"
              f"{row['check_s'] / row['plain_s']:6.2f}x{row['check_mb']:10.0f}{row['plain_mb']:10.0f}"
              f"{row['check_mb'] / row['plain_mb']:6.2f}x{row['analyse_s']:9.2f}s{row['compile_s']:9.2f}s"
              f"{row['calibrate_s']:7.2f}s{row['detail_s']:7.2f}s{row['screened_s']:9.3f}s{row['plain_trial_s']:7.3f}s"
              f"{row['extra_s'] * 1000 / row['compared']:11.2f}{row['extra_mb'] * 1024 / row['compared']:11.1f}")
    print("(analysis includes making the sessions; detail: the first trial, every tensor on a batch of 4; screened "
          "and plain: a steady trial's probe alone + batch)")
    grown = scaling(rows)
    if grown:
        print(f"growth {rows[0]['compared']:,} -> {rows[-1]['compared']:,} compared tensors "
              f"({grown['tensor_ratio']:.2f}x): time beyond the plain passes {growth_words(grown, 'time', '-')}, "
              f"peak RSS beyond them {growth_words(grown, 'memory', '-')}")
    return {"rows": rows, "growth": grown}


# -- main -------------------------------------------------------------------------------------------

def _nodes(text: str) -> tuple[int, ...]:
    return () if text == "none" else tuple(int(part) for part in text.split(",") if part)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=224, help="MobileNetV2's input height and width (default 224)")
    parser.add_argument("--width", type=float, default=1.0, help="MobileNetV2's width multiplier (default 1.0)")
    parser.add_argument("--chains", type=_nodes, default=CHAIN_NODES, metavar="N,N,…|none",
                        help=f"chain sizes in nodes (default {','.join(map(str, CHAIN_NODES))}; 3 nodes a layer)")
    parser.add_argument("--batch", type=int, default=32, help="the check's --batch-sizes (default 32)")
    parser.add_argument("--trials", type=int, default=12, help="the check's --trials (default 12)")
    parser.add_argument("--repeat", type=int, default=7,
                        help="rounds of plain then batchcheck on MobileNetV2 (default 7; the chains: half of them, "
                             "rounded up)")
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke run: width {QUICK['width']} at {QUICK['size']} px, chains of "
                             f"{','.join(map(str, QUICK['chains']))} nodes, one round")
    parser.add_argument("--profile", action="store_true", help="print batchcheck's profile even when the targets pass")
    parser.add_argument("--no-pairs", action="store_true",
                        help="skip the paired per-trial measurements after the check in the batchcheck child")
    add_child_options(parser, "the models")
    for hidden in ("--role", "--result", "--model", "--pool", "--plans"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.width, args.size, args.chains, args.repeat = QUICK["width"], QUICK["size"], QUICK["chains"], 1
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.role:
        started = time.perf_counter()
        args.out = Path(args.out)
        finish(ROLES[args.role](args, started), Path(args.result), started)
        return 0
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench_onnx-")))
        args.out = (args.out or workdir).resolve()
        args.out.mkdir(parents=True, exist_ok=True)
        load_start = os.getloadavg()
        print(f"building MobileNetV2 {args.width} at {args.size} px and chains of "
              f"{', '.join(f'{n:,}' for n in args.chains) or 'no'} nodes in {args.out} …", flush=True)
        models = [Path(m) for m in run_child("build", args, workdir)["models"]]
        meta = load_meta(models[0])
        print(f"MobileNetV2 ({args.repeat} rounds):", flush=True)
        result = {"mobilenet": figures(measure(models[0], args, workdir, args.repeat))}
        chain_rounds = max(1, (args.repeat + 1) // 2)
        chains = []
        for model in models[1:]:
            print(f"chain of {load_meta(model)['nodes']:,} nodes ({chain_rounds} rounds):", flush=True)
            chains.append((load_meta(model), figures(measure(model, args, workdir, chain_rounds))))

        print(f"\npython {platform.python_version()}, onnx {meta['onnx']}, onnxruntime {meta['onnxruntime']}, "
              f"{os.cpu_count()} cpus; load average (1/5/15 min) at start {'/'.join(f'{v:.2f}' for v in load_start)}"
              f", at the end {'/'.join(f'{v:.2f}' for v in os.getloadavg())}")
        bc = result["mobilenet"]["fastest"]["batchcheck"]
        print(f"batchcheck measured: {bc['batchcheck_package']} (sources sha1 {bc['batchcheck_digest']}); each "
              f"approach in its own process, {args.repeat} alternated rounds (wall: each approach's fastest run; "
              f"peak RSS: its highest)")
        report_mobilenet(args, meta, result["mobilenet"])
        if chains:
            result["chains"] = report_chains(args, chains, chain_rounds)
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            settings = {key: str(value) for key, value in vars(args).items()}
            args.json.write_text(json.dumps({"load_start": load_start, "args": settings, **result}, indent=1,
                                            default=str))
            print(f"\nfigures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
