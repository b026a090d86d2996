#!/usr/bin/env python3
"""Benchmark `batchcheck check` against plain forward passes and against the naive approach.

The targets (issue 7 raised them), on Keras MobileNetV2 1.0 at 224x224 with `--batch-sizes 32 --trials 12`:

* per trial:   a screened trial costs <= 1.1x the plain forward passes it needs (probe alone + batch);
* whole check: `batchcheck check` costs <= 1.2x a script that only runs those forward passes;
* memory:      peak RSS <= 1.3x that script's.

With `--net deeplab` (`make bench-deeplab`), issue 7 §5's segmentation setting: the DeepLabV3 MobileNetV2
core at 513x513 (`fixtures/deeplab_core.py`: output stride 8, atrous depthwise convs, `sub_7` -> `ArgMax`)
checked with `--trials 8` at the check's default batch sizes; target: the whole check <= 3x the plain
forward passes (the per-trial and memory ratios are printed without a target; no naive run).

The model is built with random weights (`weights=None` / seeded, nothing is downloaded) and frozen once to a
GraphDef. Each approach then runs in its own child process (`--role NAME`), all with the same TF
settings (`--threads`, default TF's own), so that wall time, CPU time and peak RSS are its own:

* plain:      imports the .pb into a tf.compat.v1 Session and, for each of the check's trial plans
              (`Checker.default_plans`, so the same images, probes, positions and mates), runs the probe
              alone and the batch, fetching only the model output;
* batchcheck: runs the real `batchcheck check MODEL [--batch-sizes B] --trials N` (`cli.main`), timed
              from outside by wrapping the public functions listed in `profiling.PROFILED` (phases,
              each solo run and comparison, each trial, and the RSS peak inside each call, sampled
              every 5 ms); then, in the same process, pairs each screened trial (fresh probe) with
              the plain forward passes it needs (`Checker.forward`);
* naive:      fetches every tensor with `sess.run` alone and in the batch and diffs the probe's row in
              numpy, for `--naive-trials` trials (the whole is extrapolated, and labelled so).

Figures: whole = the child's wall time from spawn to the end of the check (the batchcheck child's
paired measurements are excluded); per trial = the paired in-process ratio (one process, seconds
apart, so both see the same machine load), with the cross-process ratios beside it; peak RSS =
`ru_maxrss` (the batchcheck child's as at the end of the check). With `--repeat N` each approach
keeps its fastest run and its highest peak.

    python benchmarks/bench_check.py                     # the issue's setting (about 3 minutes)
    python benchmarks/bench_check.py --quick             # smoke run: alpha 0.35 at 96 px
    python benchmarks/bench_check.py --net deeplab       # DeepLab core at 513 px, default batch sizes, 8 trials
    python benchmarks/bench_check.py --repeat 3 --json out/bench.json
    python benchmarks/bench_check.py --skip-naive --batchcheck-root ../other-checkout   # compare code

Files: this entry point (arguments, children, main), `bench_roles.py` (the child roles),
`bench_report.py` (summaries and the printed report), `profiling.py` (RSS sampler, profiler, the
`PROFILED` table; a name missing from batchcheck stops the run with one line).

This is a script, not a test: it prints figures (and PASS/FAIL against the targets) and exits 0
unless something crashed.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# The batchcheck to measure: this checkout, or another one (`--batchcheck-root`, passed to the children).
ROOT = Path(os.environ.get("BENCH_BATCHCHECK_ROOT") or Path(__file__).resolve().parent.parent)
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench_report import report  # noqa: E402 - after choosing the batchcheck to measure
from bench_roles import NETS, ROLES, finish  # noqa: E402
from profiling import MB, PROFILED, resolve  # noqa: E402


def add_child_options(parser: argparse.ArgumentParser, models: str) -> None:
    """The options every benchmark shares: threads, the batchcheck measured, where `models` go, JSON out."""
    parser.add_argument("--threads", type=int, default=0,
                        help="TF intra/inter-op threads in every child (default: TF's own default)")
    parser.add_argument("--batchcheck-root", type=Path, metavar="DIR",
                        help="measure the batchcheck package under DIR (e.g. another checkout) instead of this one")
    parser.add_argument("--out", type=Path, help=f"folder for {models} (kept and reused); default: a temp dir")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures as JSON")


def child_env(args) -> dict:
    """The children's environment: quiet TF, the batchcheck to measure first on the path, `--threads`."""
    env = dict(os.environ)
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    root = str(args.batchcheck_root.resolve()) if args.batchcheck_root else str(ROOT)
    env["BENCH_BATCHCHECK_ROOT"] = root
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
    if args.threads:
        env["TF_NUM_INTRAOP_THREADS"] = str(args.threads)
        env["TF_NUM_INTEROP_THREADS"] = str(args.threads)
    return env


def run_child(role: str, args, workdir: Path) -> dict:
    result = workdir / f"{role}-{time.monotonic_ns()}.json"
    command = [sys.executable, str(Path(__file__).resolve()), "--role", role, "--model", str(args.model),
               "--result", str(result), "--net", args.net, "--alpha", str(args.alpha), "--size", str(args.size),
               *(["--batch", str(args.batch)] if args.batch else []), "--trials", str(args.trials),
               "--naive-trials", str(args.naive_trials), *(["--no-pairs"] if args.no_pairs else [])]
    return run_role(role, command, child_env(args), result)


def run_role(role: str, command: list[str], env: dict, result: Path) -> dict:
    """Run the child `command` (a role writing its figures to `result` as JSON) and return them with its wall
    time from spawn to exit and the load average around it; the batchcheck child's whole is up to the end of
    its check. SystemExit with its stderr's tail when it fails."""
    load_before = os.getloadavg()
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = process.communicate()  # peak RSS and CPU time come from the child's own getrusage
    wall = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"{Path(command[1]).stem}: role `{role}` failed (exit {process.returncode}):\n{err[-4000:]}")
    data = json.loads(result.read_text())
    data.update(role=role, wall_s=wall, load_before=load_before, load_after=os.getloadavg())
    if "check_end_s" in data:  # the batchcheck child: its whole is up to the end of the check, not the pairs
        data["process_wall_s"], data["process_cpu_s"] = wall, data["cpu_s"]
        data["wall_s"] = wall - (data["child_wall_s"] - data["check_end_s"])
        data["cpu_s"] = data["check_cpu_s"]
    if out.strip():
        data["stdout"] = out[-2000:]
    return data


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--net", choices=NETS, default="mobilenet_v2",
                        help="the model: Keras MobileNetV2 (default) or the DeepLabV3 MobileNetV2 core; the defaults "
                             "below are given as MobileNetV2 / DeepLab")
    parser.add_argument("--alpha", type=float,
                        help="width: MobileNetV2's alpha / DeepLab's depth multiplier (1.0 / 1.0)")
    parser.add_argument("--size", type=int, help="input height and width (224 / 513)")
    parser.add_argument("--batch", type=int, help="the check's --batch-sizes (32 / none: the check's default sizes)")
    parser.add_argument("--trials", type=int, help="the check's --trials (12 / 8)")
    parser.add_argument("--quick", action="store_true", help="smoke run: width 0.35 at 96 px / 65 px")
    parser.add_argument("--skip-naive", action="store_true",
                        help="do not run the naive approach (never run on DeepLab: it would fetch every activation "
                             "of 513 px batches of up to 32 images)")
    parser.add_argument("--naive-trials", type=int, default=2, help="trials the naive approach runs (default 2)")
    parser.add_argument("--no-pairs", action="store_true",
                        help="skip the paired per-trial measurement run after the check in the batchcheck child")
    parser.add_argument("--repeat", type=int, default=1, help="run plain and batchcheck N times, keep the best")
    add_child_options(parser, "the frozen model")
    parser.add_argument("--profile", action="store_true", help="print batchcheck's profile even when all targets pass")
    parser.add_argument("--role", choices=ROLES, help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    net = NETS[args.net]
    if args.quick:
        args.alpha, args.size = net.quick
    args.alpha, args.size = args.alpha or net.width, args.size or net.size
    args.batch, args.trials = args.batch or net.batch, args.trials or net.trials
    args.skip_naive = args.skip_naive or not net.naive
    args.batch_sizes = (args.batch,) if args.batch else None  # what the plain and naive roles draw their plans with
    return args


def model_path(args, folder: Path) -> Path:
    """Where the `--net` model at its width and size is frozen in `folder` (and reused from)."""
    return folder / f"{args.net}_{args.alpha:g}_{args.size}.pb"


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.role:
        started = time.perf_counter()
        finish(ROLES[args.role](args, started), Path(args.result), started)
        return 0
    if args.batchcheck_root:  # check the profile against the batchcheck to measure, before any child runs
        sys.path.insert(0, str(args.batchcheck_root.resolve()))
    for entry in PROFILED:
        resolve(entry)

    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench_check-")))
        folder = args.out or workdir
        folder.mkdir(parents=True, exist_ok=True)
        args.model = str(model_path(args, folder))
        runs: dict = {}
        load_start = list(os.getloadavg())
        if not (Path(args.model).exists() and Path(args.model).with_suffix(".json").exists()):
            net = NETS[args.net]
            print(f"freezing {net.label} {net.width_name} {args.alpha:g} at {args.size}px to {args.model} …",
                  flush=True)
            run_child("freeze", args, workdir)
        for i in range(args.repeat):
            for role in ("plain", "batchcheck"):
                print(f"running {role} ({i + 1}/{args.repeat}) … load {os.getloadavg()[0]:.2f}", flush=True)
                data = run_child(role, args, workdir)
                print(f"  {data['wall_s']:.1f}s, peak {data['maxrss_bytes'] / MB:.0f} MB", flush=True)
                runs.setdefault(role, []).append(data)
        if not args.skip_naive:
            print(f"running naive ({args.naive_trials} trials) … load {os.getloadavg()[0]:.2f}", flush=True)
            data = run_child("naive", args, workdir)
            print(f"  {data['wall_s']:.1f}s, peak {data['maxrss_bytes'] / MB:.0f} MB", flush=True)
            runs["naive"] = [data]
        figures = report(args, runs, load_start)
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(figures, indent=1, default=str))
            print(f"\nfigures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
