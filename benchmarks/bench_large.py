#!/usr/bin/env python3
"""Benchmark `batchcheck check` on large graphs: cost per node, and whether it grows linearly (issue 13).

Models: plain chains of `relu(x * a + b)` layers on 16x16x3 inputs (`fixtures/chains.py`; the forward pass
costs almost nothing) of about 1k, 5k and 10k nodes, checked with `--trials 3 --batch-sizes 2,4`; and a
real large architecture built offline (Keras NASNetMobile and/or InceptionResNetV2, `weights=None`, frozen
at a small input size; nothing is downloaded), checked with the default trials.

Each measurement is its own child process, timed from outside (wall from spawn to exit; peak RSS from
the child's own rusage), killed after `--timeout` seconds so that the script always finishes; the TF
import and the checks keep the fastest of `--repeat` runs (the smallest chain's cost beyond the import is
about a second, so the linearity figure is sensitive to noise):

* import tensorflow: a child that only imports TF (as batchcheck does), the baseline subtracted from the
                     figures per node;
* check:             the real CLI (`batchcheck.cli.main(["check", MODEL, ..., "--json", ...])`) with
                     BATCHCHECK_UNSUPERVISED=1 (the check itself, in that process, as bench_check.py runs
                     it), in a child that first imports TF as the CLI does and times that import: the
                     check's cost beyond the import subtracts its own import, not the baseline's;
* plain:             bench_check's plain role: the check's own trial plans (`draw_plans`: same images,
                     probes, positions and mates) as plain forward passes fetching the model output only.

Targets (PASS/FAIL): the ~10k-node chain checked in under 20 s and 1.5 GB; time and memory beyond the TF
import grow at most linearly from the smallest chain to the largest; the Keras model's whole check within
2x its plain forward passes.

    python benchmarks/bench_large.py                          # chains of 1,252/5,002/10,002 nodes + NASNetMobile
    python benchmarks/bench_large.py --quick                  # smoke run: two tiny chains, no Keras model
    python benchmarks/bench_large.py --sizes 1252,10002 --keras InceptionResNetV2 --json out/large.json
    python benchmarks/bench_large.py --batchcheck-root ../other-checkout   # measure another checkout's code

This is a script, not a test: it prints figures (a timeout or a crashed check is a cell of the table)
and exits 0 unless a model could not be built.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from bench_check import (  # importing bench_check puts the batchcheck to measure on sys.path
    add_child_options,
    child_env,
)
from bench_report import growth_words
from bench_roles import REPO, finish, freeze_keras_application, role_plain
from profiling import MB

CHAIN_SIZES = (1252, 5002, 10002)  # nodes, as in the issue's table
QUICK_SIZES = (102, 252)
CHAIN_OPTIONS = ("--trials", "3", "--batch-sizes", "2,4")  # as in the issue; the Keras models: the defaults
KERAS_SIZES = {"NASNetMobile": 64, "InceptionResNetV2": 75}  # small inputs each architecture accepts
TARGET_NODES = 10_000  # the time and memory targets apply to the largest chain when it has this many nodes
TARGET_SECONDS = 20.0
TARGET_MB = 1.5 * 1024
TARGET_GROWTH = 1.1  # (cost ratio / node ratio), smallest to largest chain: linear, with 10% for noise
TARGET_KERAS_RATIO = 2.0  # whole check / plain forward passes
POLL_SECONDS = 0.02
# the baseline imports TF as the check does (quietly, then gc.freeze(), which also shortens the exit)
IMPORT_AS_BATCHCHECK = "from batchcheck.backends.tf.env import import_tf; import_tf()"
# the check child: `python -c TIMED_CHECK IMPORT_JSON MODEL OPTIONS…` times its TF import, then runs the CLI
TIMED_CHECK = """import json, sys, time
started = time.perf_counter()
from batchcheck.backends.tf.env import import_tf
import_tf()
with open(sys.argv[1], "w") as out:
    json.dump({"import_tf_s": time.perf_counter() - started}, out)
from batchcheck.cli import main
sys.exit(main(["check", *sys.argv[2:]]))
"""


@dataclass
class Measured:
    """One child process: wall seconds from spawn to exit, peak RSS, and `status`: "ok", "timeout" or
    "exit N" (a crash)."""
    wall_s: float
    maxrss_bytes: int
    status: str
    import_s: float | None = None  # a check's own TF import, timed inside it

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def rss_mb(self) -> float:
        return self.maxrss_bytes / MB


def run_measured(command: list[str], env: dict, timeout: float, log: Path,
                 ok_codes: tuple[int, ...] = (0,)) -> Measured:
    """Run `command` in `log`'s folder (stdout and stderr to `log`.out and .err); kill its process group
    after `timeout` seconds."""
    with open(log.with_suffix(".out"), "w") as out, open(log.with_suffix(".err"), "w") as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, env=env, cwd=log.parent, stdout=out, stderr=err,
                                   start_new_session=True)
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                code = os.waitstatus_to_exitcode(status)
                outcome = "ok" if code in ok_codes else f"exit {code}"
                break
            if time.perf_counter() - started > timeout:
                os.killpg(process.pid, signal.SIGKILL)
                _pid, status, usage = os.wait4(process.pid, 0)
                code, outcome = os.waitstatus_to_exitcode(status), "timeout"
                break
            time.sleep(POLL_SECONDS)
        wall = time.perf_counter() - started
    process.returncode = code  # reaped by wait4 above
    return Measured(wall, usage.ru_maxrss * 1024, outcome)


def _timed_check(pb: Path, options: tuple[str, ...], report: Path, env: dict, timeout: float, log: Path) -> Measured:
    """The CLI's check of `pb` in a child that also times its own TF import (exit 1: batch dependent, 2: a
    thin pass, are checks that finished)."""
    imported = log.with_suffix(".import.json")
    imported.unlink(missing_ok=True)
    measured = run_measured([sys.executable, "-c", TIMED_CHECK, str(imported), str(pb), *options, "--json",
                             str(report)], env, timeout, log, ok_codes=(0, 1, 2))
    if imported.exists():
        measured.import_s = json.loads(imported.read_text())["import_tf_s"]
    return measured


def fastest(repeat: int, measure: Callable[[], Measured]) -> Measured:
    """The fastest of `repeat` measurements (beyond its own TF import, when it timed one); the first that
    does not finish, when one does not."""
    runs = []
    for _ in range(repeat):
        runs.append(measure())
        if not runs[-1].ok:
            return runs[-1]
    return min(runs, key=lambda m: m.wall_s - (m.import_s or 0.0))


def _stderr_tail(log: Path) -> str:
    return log.with_suffix(".err").read_text()[-3000:]


def _role_command(role: str, *options: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--role", role, *options]


@dataclass
class Row:
    """One model: frozen nodes, compared tensors and verdict (None: the check did not finish), and the
    check's and the plain forward passes' children."""
    name: str
    kind: str  # "chain" or "keras"
    nodes: int
    setting: str
    compared: int | None
    verdict: str | None
    check: Measured
    plain: Measured


def measure_model(name: str, kind: str, pb: Path, options: tuple[str, ...], args, workdir: Path) -> Row:
    """Check `pb` with the CLI and `options` (`--trials`, `--batch-sizes`), then run the plain forward passes
    of the same plans, each in its own child."""
    meta = json.loads(pb.with_suffix(".json").read_text())
    env = {**child_env(args), "BATCHCHECK_UNSUPERVISED": "1"}
    report, log = workdir / f"{name}.check.json", workdir / f"{name}.check"
    print(f"  {name} ({meta['nodes']:,} nodes): check …", end="", flush=True)
    check = fastest(args.repeat, lambda: _timed_check(pb, options, report, env, args.timeout, log))
    data = json.loads(report.read_text()) if check.ok and report.exists() else None
    if check.ok and data is None:
        check.status = "no report"
    if check.status.startswith("exit"):
        print(f"\n{_stderr_tail(log)}", end="")
    print(f" {_cell_seconds(check)}; plain …", end="", flush=True)
    log = workdir / f"{name}.plain"
    plain = run_measured(_role_command("plain", "--model", str(pb), "--result", str(workdir / f"{name}.plain.json"),
                                       *options), env, args.timeout, log)
    if plain.status.startswith("exit"):
        print(f"\n{_stderr_tail(log)}", end="")
    print(f" {_cell_seconds(plain)}", flush=True)
    return Row(name, kind, meta["nodes"], " ".join(options) or "default trials",
               data["model"]["compared_tensors"] if data else None, data["verdict"] if data else None, check, plain)


def build_models(args, folder: Path, workdir: Path) -> tuple[list[Path], list[Path]]:
    """The chains' and Keras models' `.pb` paths, building (in children) those not already in `folder`."""
    env = child_env(args)
    print(f"chains of {', '.join(f'{n:,}' for n in args.sizes)} nodes in {folder} …", flush=True)
    log = workdir / "build-chains"
    _built(run_measured(_role_command("build-chains", "--out", str(folder), "--sizes", ",".join(map(str, args.sizes))),
                        env, args.timeout, log), log)
    chains = [Path(line) for line in log.with_suffix(".out").read_text().split()]
    keras = []
    for arch in args.keras:
        size = args.keras_size or KERAS_SIZES[arch]
        pb = folder / f"{arch}_{size}.pb"
        if not pb.with_suffix(".json").exists():
            print(f"freezing Keras {arch} at {size}x{size} (random weights) to {pb} …", flush=True)
            log = workdir / f"freeze-{arch}"
            _built(run_measured(_role_command("freeze-keras", "--arch", arch, "--size", str(size), "--model", str(pb)),
                                env, args.timeout, log), log)
        keras.append(pb)
    return chains, keras


def _built(measured: Measured, log: Path) -> None:
    if not measured.ok:
        raise SystemExit(f"bench_large: building a model failed ({measured.status}):\n{_stderr_tail(log)}")


# -- figures and report -------------------------------------------------------------------------------

def _cell_seconds(m: Measured) -> str:
    return f"{m.wall_s:.2f}s" if m.ok else m.status


def _beyond(row: Row, baseline: Measured) -> tuple[float, float] | None:
    """(seconds, MB) the check costs beyond importing TF (its own import when it timed one, else the
    baseline's), or None when it did not finish."""
    if not row.check.ok:
        return None
    import_s = baseline.wall_s if row.check.import_s is None else row.check.import_s
    return row.check.wall_s - import_s, row.check.rss_mb - baseline.rss_mb


def linearity(chains: list[Row], baseline: Measured) -> dict | None:
    """Cost beyond the TF import of the largest chain over the smallest's, against their node ratio; a
    growth of 1.0 is exactly linear. None with fewer than two chains; figures None where a check timed out."""
    if len(chains) < 2:
        return None
    small, large = min(chains, key=lambda r: r.nodes), max(chains, key=lambda r: r.nodes)
    node_ratio = large.nodes / small.nodes
    result = {"small": small.name, "large": large.name, "small_nodes": small.nodes, "large_nodes": large.nodes,
              "node_ratio": node_ratio, "time_ratio": None, "memory_ratio": None,
              "time_growth": None, "memory_growth": None}
    a, b = _beyond(small, baseline), _beyond(large, baseline)
    if a and b:
        result.update(time_ratio=b[0] / a[0], memory_ratio=b[1] / a[1])
        result.update(time_growth=result["time_ratio"] / node_ratio, memory_growth=result["memory_ratio"] / node_ratio)
    return result


def targets(rows: list[Row], linear: dict | None) -> list[dict]:
    """Each target: what, the figure (None: timed out or crashed), the bound, the unit and pass."""
    found = []
    chains = [r for r in rows if r.kind == "chain"]
    largest = max(chains, key=lambda r: r.nodes, default=None)
    if largest and largest.nodes >= TARGET_NODES:
        label = f"{largest.nodes:,}-node chain"
        seconds = largest.check.wall_s if largest.check.ok else None
        rss = largest.check.rss_mb if largest.check.ok else None
        found += [{"target": f"{label}: check wall", "value": seconds, "bound": TARGET_SECONDS, "unit": "s"},
                  {"target": f"{label}: check peak RSS", "value": rss, "bound": TARGET_MB, "unit": "MB"}]
    if linear:
        for kind in ("time", "memory"):
            found.append({"target": f"chains: {kind} beyond the TF import / nodes, {linear['small_nodes']:,} to "
                                    f"{linear['large_nodes']:,}", "value": linear[f"{kind}_growth"],
                          "bound": TARGET_GROWTH, "unit": "x linear"})
    for row in rows:
        if row.kind == "keras":
            ratio = row.check.wall_s / row.plain.wall_s if row.check.ok and row.plain.ok else None
            found.append({"target": f"{row.name}: whole check / plain forward passes", "value": ratio,
                          "bound": TARGET_KERAS_RATIO, "unit": "x"})
    for target in found:
        target["pass"] = target["value"] is not None and target["value"] <= target["bound"]
    return found


def print_report(args, rows: list[Row], baseline: Measured, load_start: tuple[float, ...]) -> dict:
    """Print the table, the linearity line and the targets; return the figures."""
    import_s, import_mb = baseline.wall_s, baseline.rss_mb
    print(f"\nbatchcheck large-graph benchmark: chains of relu(x*a+b) on 16x16x3, {' '.join(CHAIN_OPTIONS)}; "
          f"Keras models with random weights, default trials")
    print(f"python {platform.python_version()}, {os.cpu_count()} cpus, load average at start "
          f"{'/'.join(f'{v:.2f}' for v in load_start)}, "
          f"batchcheck measured: {child_env(args)['BENCH_BATCHCHECK_ROOT']}")
    print(f"each figure is one child process (wall from spawn to exit, peak RSS; killed after {args.timeout:g}s; "
          f"import and checks: the fastest of {args.repeat}); per node: the check's cost beyond its own TF import\n")
    header = (f"{'model':<22}{'nodes':>8}{'compared':>10}  {'verdict':<16}{'check s':>9}{'check MB':>10}"
              f"{'plain s':>9}{'plain MB':>10}{'check/plain':>13}{'ms/node':>9}{'KB/node':>9}")
    print(header)
    print("-" * len(header))
    print(f"{'import tensorflow':<22}{'':>8}{'':>10}  {'':<16}{_fmt(import_s, baseline.ok, '.2f'):>9}"
          f"{_fmt(import_mb, baseline.ok, '.0f'):>10}")
    for row in rows:
        beyond = _beyond(row, baseline)
        ratio = row.check.wall_s / row.plain.wall_s if row.check.ok and row.plain.ok else None
        print(f"{row.name:<22}{row.nodes:>8,}{_fmt(row.compared, row.compared is not None, ','):>10}  "
              f"{row.verdict or '-':<16}{_cell(row.check, 'wall_s', '.2f'):>9}{_cell(row.check, 'rss_mb', '.0f'):>10}"
              f"{_cell(row.plain, 'wall_s', '.2f'):>9}{_cell(row.plain, 'rss_mb', '.0f'):>10}"
              f"{_fmt(ratio, ratio is not None, '.2f', 'x'):>13}"
              f"{_fmt(beyond and beyond[0] * 1000 / row.nodes, bool(beyond), '.2f'):>9}"
              f"{_fmt(beyond and beyond[1] * 1024 / row.nodes, bool(beyond), '.0f'):>9}")

    linear = linearity([r for r in rows if r.kind == "chain"], baseline)
    if linear:
        print(f"\nlinearity {linear['small_nodes']:,} -> {linear['large_nodes']:,} nodes "
              f"({linear['node_ratio']:.2f}x): time beyond the TF import {growth_words(linear, 'time', 'timeout')}, "
              f"peak RSS beyond it {growth_words(linear, 'memory', 'timeout')}")
    found = targets(rows, linear)
    print("\ntargets")
    for target in found:
        value = "timeout" if target["value"] is None else f"{target['value']:.2f} {target['unit']}"
        print(f"  {target['target']:<62}{value:>16}  (target <= {target['bound']:g} {target['unit']})  "
              f"{'PASS' if target['pass'] else 'FAIL'}")
    return {"python": platform.python_version(), "cpus": os.cpu_count(), "load_start": load_start,
            "batchcheck_root": child_env(args)["BENCH_BATCHCHECK_ROOT"], "timeout_s": args.timeout,
            "import_tf": asdict(baseline), "rows": [asdict(r) for r in rows], "linearity": linear, "targets": found}


def _fmt(value, present: bool, spec: str, suffix: str = "") -> str:
    return f"{value:{spec}}{suffix}" if present else "-"


def _cell(m: Measured, attribute: str, spec: str) -> str:
    return f"{getattr(m, attribute):{spec}}" if m.ok else m.status


# -- child roles --------------------------------------------------------------------------------------

def run_role(args) -> None:
    """The child side: build the chains, freeze a Keras model, or run the plain forward passes."""
    started = time.perf_counter()
    if args.role == "build-chains":
        sys.path.insert(0, str(REPO))
        from fixtures.chains import build_chain, chain_path, layers_for_nodes

        for layers in map(layers_for_nodes, args.sizes):  # each path on stdout, for the parent
            pb = chain_path(args.out, layers)
            print(pb if pb.with_suffix(".json").exists() else build_chain(args.out, layers))
    elif args.role == "freeze-keras":
        freeze_keras_application(args.arch, args.size, Path(args.model))

    else:
        from batchcheck.options import DEFAULT_TRIALS

        args.trials = args.trials or DEFAULT_TRIALS
        finish(role_plain(args, started), Path(args.result), started)


def _int_list(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(",") if part)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=_int_list, default=CHAIN_SIZES, metavar="N,N,…",
                        help=f"chain sizes in nodes (default {','.join(map(str, CHAIN_SIZES))}; 5 nodes a layer)")
    parser.add_argument("--keras", default="NASNetMobile", metavar="NAME[,NAME]",
                        help=f"Keras applications to check: {', '.join(KERAS_SIZES)}, or none (default NASNetMobile)")
    parser.add_argument("--keras-size", type=int, default=0,
                        help=f"their input height and width (default: {KERAS_SIZES})")
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke run: chains of {','.join(map(str, QUICK_SIZES))} nodes, no Keras model")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds each child may run (default 600)")
    parser.add_argument("--repeat", type=int, default=2,
                        help="measure the TF import and each check N times and keep the fastest (default 2)")
    add_child_options(parser, "the models")
    parser.add_argument("--role", choices=("build-chains", "freeze-keras", "plain"), help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--arch", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--trials", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--batch-sizes", type=_int_list, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.keras = QUICK_SIZES, "none"
    args.keras = [] if args.keras == "none" else args.keras.split(",")
    unknown = [name for name in args.keras if name not in KERAS_SIZES]
    if unknown:
        parser.error(f"--keras: unknown {', '.join(unknown)}; choose from {', '.join(KERAS_SIZES)} or none")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.role:
        run_role(args)
        return 0
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench_large-")))
        folder = (args.out or workdir).resolve()
        folder.mkdir(parents=True, exist_ok=True)
        load_start = os.getloadavg()
        chains, keras = build_models(args, folder, workdir)
        print("import tensorflow only …", end="", flush=True)
        baseline = fastest(args.repeat, lambda: run_measured(
            [sys.executable, "-c", IMPORT_AS_BATCHCHECK], child_env(args), args.timeout, workdir / "import-tf"))
        print(f" {_cell_seconds(baseline)}", flush=True)
        rows = [measure_model(pb.stem, "chain", pb, CHAIN_OPTIONS, args, workdir) for pb in chains]
        rows += [measure_model(pb.stem, "keras", pb, (), args, workdir) for pb in keras]
        figures = print_report(args, rows, baseline, load_start)
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(figures, indent=1))
            print(f"\nfigures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
