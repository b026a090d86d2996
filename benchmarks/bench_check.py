#!/usr/bin/env python3
"""Benchmark `batchcheck check` against plain forward passes and against the naive approach.

The issue's targets, on Keras MobileNetV2 1.0 at 224x224 with `--batch-sizes 32 --trials 12`:

* per trial:   a screened trial costs <= 1.25x the plain forward passes it needs (probe alone + batch);
* whole check: `batchcheck check` costs <= 1.5x a script that only runs those forward passes;
* memory:      peak RSS <= 1.5x that script's.

The model is built with random weights (`weights=None`, nothing is downloaded) and frozen once to a
GraphDef. Each approach then runs in its own child process (`--role NAME`), all with the same TF
settings (`--threads`, default TF's own), so that wall time, CPU time and peak RSS are its own:

* plain:      imports the .pb into a tf.compat.v1 Session and, for each of the check's trial plans
              (`Checker.default_plans`, so the same images, probes, positions and mates), runs the probe
              alone and the batch, fetching only the model output;
* batchcheck: runs the real `batchcheck check MODEL --batch-sizes B --trials N` (`cli.main`), timed
              from outside by wrapping its functions (phases, each session call, each trial, and the
              RSS peak inside each call, sampled every 5 ms); then, in the same process, pairs each
              screened trial (fresh probe) with the plain forward passes it needs (`runner.forward`);
* naive:      fetches every tensor with `sess.run` alone and in the batch and diffs the probe's row in
              numpy, for `--naive-trials` trials (the whole is extrapolated, and labelled so).

Figures: whole = the child's wall time from spawn to the end of the check (the batchcheck child's
paired measurements are excluded); per trial = the paired in-process ratio (one process, seconds
apart, so both see the same machine load), with the cross-process ratios beside it; peak RSS =
`ru_maxrss` (the batchcheck child's as at the end of the check). With `--repeat N` each approach
keeps its fastest run and its highest peak.

    python benchmarks/bench_check.py                     # the issue's setting (about 3 minutes)
    python benchmarks/bench_check.py --quick             # smoke run: alpha 0.35 at 96 px
    python benchmarks/bench_check.py --repeat 3 --json out/bench.json
    python benchmarks/bench_check.py --skip-naive --batchcheck-root ../other-checkout   # compare code

This is a script, not a test: it prints figures (and PASS/FAIL against the targets) and exits 0
unless something crashed.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import inspect
import io
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

# The batchcheck to measure: this checkout, or another one (`--batchcheck-root`, passed to the children).
ROOT = Path(os.environ.get("BENCH_BATCHCHECK_ROOT") or Path(__file__).resolve().parent.parent)
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TARGETS = {"per_trial": 1.25, "whole": 1.5, "rss": 1.5}
ROLES = ("freeze", "plain", "batchcheck", "naive")
MB = 1024 * 1024


# ---------------------------------------------------------------------------------------------------
# helpers shared by the children
# ---------------------------------------------------------------------------------------------------

def _maxrss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def _rss_bytes() -> int:
    try:
        import psutil

        return psutil.Process().memory_info().rss
    except ImportError:  # pragma: no cover - psutil is optional
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _import_tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    return tf


def _load_meta(pb: Path) -> dict:
    return json.loads(pb.with_suffix(".json").read_text())


def _pool_and_plans(meta: dict, batch: int, trials: int):
    """The check's image pool and its seeded trial plans, exactly as `Checker.open`/`default_plans`
    build them for a synthetic pool (`Checker.default_plans` is called on a stand-in: it only reads
    `config`, `main_images` and `pool`), without loading the model through batchcheck."""
    import numpy as np

    from batchcheck.check import Checker
    from batchcheck.load.images import special_pool, synthetic_pool
    from batchcheck.options import CheckConfig

    config = CheckConfig(batch_sizes=(batch,), trials=trials)
    shape = tuple(meta["per_image_shape"])
    main = synthetic_pool(shape, np.dtype(np.float32), config.preprocess, config.seed)
    pool = main + special_pool(shape, np.dtype(np.float32), config.preprocess)
    stand_in = SimpleNamespace(config=config, main_images=len(main), pool=pool)
    plans = [plan for plan, _seed in Checker.default_plans(stand_in)]
    return pool, plans


def _plan_dict(plan) -> dict:
    return {"probe": plan.probe, "position": plan.position, "mates": list(plan.mates)}


def _load_session(tf, pb: Path, meta: dict):
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(pb.read_bytes())
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(graph_def, name="")
    session = tf.compat.v1.Session(graph=graph)
    return graph, session, graph.get_tensor_by_name(meta["input"]), graph.get_tensor_by_name(meta["output"])


def _digest(package: Path) -> str:
    """A short hash of the package's sources, to tie figures to the code measured (it is often uncommitted)."""
    import hashlib

    digest = hashlib.sha1()
    for path in sorted(package.glob("*.py")):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:10]


def _finish(result: dict, path: Path, started: float) -> None:
    result["child_wall_s"] = time.perf_counter() - started
    result["maxrss_bytes"] = _maxrss_bytes()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result["cpu_s"] = usage.ru_utime + usage.ru_stime
    path.write_text(json.dumps(result, indent=1))


# ---------------------------------------------------------------------------------------------------
# role: freeze
# ---------------------------------------------------------------------------------------------------

def role_freeze(args, started: float) -> dict:
    tf = _import_tf()
    import keras
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(alpha=args.alpha, input_shape=(args.size, args.size, 3),
                                           weights=None)
    spec = tf.TensorSpec((None, args.size, args.size, 3), tf.float32, name="input")
    function = tf.function(lambda x: model(x, training=False))
    frozen = convert_variables_to_constants_v2(function.get_concrete_function(spec))
    graph_def = frozen.graph.as_graph_def()
    pb = Path(args.model)
    pb.write_bytes(graph_def.SerializeToString())
    inputs = [t.name for t in frozen.inputs if t.dtype != tf.resource]
    meta = {"input": inputs[0], "output": frozen.outputs[0].name, "per_image_shape": [args.size, args.size, 3],
            "alpha": args.alpha, "size": args.size, "nodes": len(graph_def.node),
            "params": int(model.count_params()), "tensorflow": tf.__version__, "keras": keras.__version__}
    pb.with_suffix(".json").write_text(json.dumps(meta, indent=1))
    return {"meta": meta, "pb_bytes": pb.stat().st_size}


# ---------------------------------------------------------------------------------------------------
# role: plain — only the forward passes the check's trials need, fetching only the model output
# ---------------------------------------------------------------------------------------------------

def role_plain(args, started: float) -> dict:
    pb = Path(args.model)
    meta = _load_meta(pb)
    t = time.perf_counter()
    tf = _import_tf()
    import_s = time.perf_counter() - t
    t = time.perf_counter()
    _graph, session, x, y = _load_session(tf, pb, meta)
    load_s = time.perf_counter() - t
    pool, plans = _pool_and_plans(meta, args.batch, args.trials)
    trials = []
    for plan in plans:
        c0, t0 = time.process_time(), time.perf_counter()
        session.run(y, {x: pool.array[[plan.probe]]})
        t1 = time.perf_counter()
        session.run(y, {x: pool.array[plan.rows()]})
        t2, c2 = time.perf_counter(), time.process_time()
        trials.append({"solo_s": t1 - t0, "batch_s": t2 - t1, "total_s": t2 - t0, "cpu_s": c2 - c0})
    return {"import_tf_s": import_s, "load_s": load_s, "trials": trials,
            "plans": [_plan_dict(p) for p in plans], "rss_end_bytes": _rss_bytes()}


# ---------------------------------------------------------------------------------------------------
# role: batchcheck — the real `batchcheck check` command, instrumented from outside
# ---------------------------------------------------------------------------------------------------

class _RssSampler:
    """Samples this process's RSS every `interval` seconds on a daemon thread (reading /proc is cheap
    and TF releases the GIL while it runs), so each call's own peak can be told apart; the process
    peak (`ru_maxrss`) only ever grows."""

    def __init__(self, interval: float = 0.005) -> None:
        import threading

        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._page = os.sysconf("SC_PAGE_SIZE")
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        with open("/proc/self/statm", "rb") as handle:
            while not self._stop.is_set():
                handle.seek(0)
                self.samples.append((time.perf_counter(), int(handle.read().split()[1]) * self._page))
                self._stop.wait(self.interval)

    def peak(self, start: float, end: float) -> int:
        inside = [rss for t, rss in self.samples if start <= t <= end]
        return max(inside) if inside else _rss_bytes()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


class _Profiler:
    """Wraps functions to log (name, depth, start, seconds, cpu seconds, rss after, own peak rss,
    process peak rss after)."""

    def __init__(self, started: float, sampler: _RssSampler | None = None) -> None:
        self.started = started
        self.sampler = sampler
        self.depth = 0
        self.enabled = True
        self.events: list[dict] = []

    def wrap(self, owner, attribute: str, label: str | None = None, describe=None) -> None:
        """Time `owner.attribute`; `describe(arguments)` (bound by name, defaults applied) adds fields.
        A function that no longer exists is skipped, so the profile survives batchcheck refactors."""
        original = getattr(owner, attribute, None)
        if original is None:
            return
        profiler, name = self, label or attribute
        try:
            signature = inspect.signature(original)
        except (TypeError, ValueError):
            signature = None

        @functools.wraps(original)
        def timed(*a, **k):
            if not profiler.enabled:
                return original(*a, **k)
            event = {"name": name, "depth": profiler.depth, "start_s": time.perf_counter() - profiler.started}
            if describe and signature is not None:
                try:
                    bound = signature.bind(*a, **k)
                    bound.apply_defaults()
                    event.update(describe(bound.arguments))
                except (TypeError, KeyError, AttributeError):
                    pass
            profiler.events.append(event)
            profiler.depth += 1
            c0, t0 = time.process_time(), time.perf_counter()
            try:
                return original(*a, **k)
            finally:
                t1 = time.perf_counter()
                event["seconds"] = t1 - t0
                event["cpu_s"] = time.process_time() - c0
                if profiler.sampler is not None:
                    event["peak_mb"] = profiler.sampler.peak(t0, t1) / MB
                profiler.depth -= 1
                event["rss_after_mb"] = _rss_bytes() / MB
                event["maxrss_after_mb"] = _maxrss_bytes() / MB

        setattr(owner, attribute, timed)


def role_batchcheck(args, started: float) -> dict:
    pb = Path(args.model)
    t = time.perf_counter()
    _import_tf()
    import_s = time.perf_counter() - t
    t = time.perf_counter()
    import batchcheck.check as check_module
    import batchcheck.report.terminal as report_module
    from batchcheck import cli
    from batchcheck.cli import check as cli_check
    from batchcheck.run.runner import GraphRunner
    import_bc_s = time.perf_counter() - t

    sampler = _RssSampler()
    profiler = _Profiler(started, sampler)
    Checker = check_module.Checker

    def run_key(a):
        return {"key": a["key"], "rows": int(len(a["batch"])), "first_call": a["key"] not in a["self"]._callables,
                "grappler": not a.get("literal", False)}

    def plan_info(a):
        checker, plan, mode = a["self"], a["plan"], a["mode"]
        cached = checker._cached is not None and checker._cached[0] == plan.probe
        return {"mode": mode, "plan": _plan_dict(plan), "solo_cached": cached}

    profiler.wrap(cli_check, "run")
    profiler.wrap(Checker, "open", "Checker.open")
    profiler.wrap(check_module, "load_model")
    profiler.wrap(check_module, "prepare")
    profiler.wrap(check_module, "synthetic_pool")
    profiler.wrap(check_module, "special_pool")
    profiler.wrap(GraphRunner, "__init__", "GraphRunner.__init__ (import_graph_def + Session)")
    profiler.wrap(GraphRunner, "analyse")
    profiler.wrap(GraphRunner, "_dead_branches")
    profiler.wrap(GraphRunner, "_candidates")
    profiler.wrap(GraphRunner, "_shapes", describe=lambda a: {"rows": int(len(a["batch"])),
                                                              "tensors": len(a["candidates"])})
    profiler.wrap(GraphRunner, "_build_comparisons")
    profiler.wrap(Checker, "_calibrate")
    profiler.wrap(Checker, "check")
    profiler.wrap(Checker, "run_plan", describe=plan_info)
    profiler.wrap(Checker, "_judge")
    profiler.wrap(GraphRunner, "cache_solo")
    profiler.wrap(GraphRunner, "compare", describe=lambda a: {"mode": a["mode"], "rows": int(len(a["batch"]))})
    profiler.wrap(GraphRunner, "_run", "session", describe=run_key)
    profiler.wrap(Checker, "result")
    profiler.wrap(report_module, "print_report")

    runners: list = []
    original_init = GraphRunner.__init__

    def keep(self, *a, **k):
        runners.append(self)
        return original_init(self, *a, **k)

    GraphRunner.__init__ = keep
    checkers: list = []
    timed_open = Checker.open

    def open_and_keep(*a, **k):
        checkers.append(timed_open(*a, **k))
        return checkers[-1]

    Checker.open = open_and_keep
    result_json = Path(args.result).with_suffix(".check.json")
    argv = ["check", str(pb), "--batch-sizes", str(args.batch), "--trials", str(args.trials),
            "--json", str(result_json)]
    os.environ["BATCHCHECK_DEBUG"] = "1"  # a crash shows its traceback instead of one line
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        exit_code = cli.main(argv)
    sampler.stop()
    check_maxrss = _maxrss_bytes()  # the check's own peak, before the extra measurements below
    check_end_s = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    check_cpu_s = usage.ru_utime + usage.ru_stime
    report = json.loads(result_json.read_text())
    runner = runners[0]
    profiler.enabled = False
    paired = [] if args.no_pairs else _paired_trials(checkers[0])
    return {"import_tf_s": import_s, "import_batchcheck_s": import_bc_s,
            "batchcheck_package": str(Path(check_module.__file__).parent),
            "batchcheck_digest": _digest(Path(check_module.__file__).parent),
            "argv": argv, "exit_code": exit_code, "verdict": report["verdict"],
            "tolerance": report.get("tolerance"), "compared_tensors": report["model"]["compared_tensors"],
            "screened_tensors": report["model"]["screened_tensors"],
            "graph_nodes": len(runner.graph.get_operations()),
            "report_tail": stdout.getvalue().strip().splitlines()[-6:],
            "events": profiler.events, "rss_end_bytes": _rss_bytes(), "check_maxrss_bytes": check_maxrss,
            "check_end_s": check_end_s, "check_cpu_s": check_cpu_s, "paired": paired}


def _paired_trials(checker) -> list[dict]:
    """After the check, in the same process and session: for each screened plan, the plain forward
    passes it needs (`runner.forward`, output only, grappler-optimised like any session) right next to
    the screened trial with a fresh probe (solo cache dropped). Pairs taken seconds apart see the same
    machine load, unlike two processes run one after the other."""
    plans = [plan for plan, _seed in checker.default_plans()][1:]
    runner, pool = checker.runner, checker.pool.array
    runner.forward(pool[[0]])  # compile the forward callable outside the timings
    runner.forward(checker.batch(plans[0]))
    pairs = []
    for plan in plans:
        c0, t0 = time.process_time(), time.perf_counter()
        runner.forward(pool[[plan.probe]])
        runner.forward(checker.batch(plan))
        c1, t1 = time.process_time(), time.perf_counter()
        checker._cached = None  # a fresh probe: the trial pays for its solo run too
        checker.run_plan(plan, "screen")
        c2, t2 = time.process_time(), time.perf_counter()
        pairs.append({"plain_s": t1 - t0, "trial_s": t2 - t1, "plain_cpu_s": c1 - c0, "trial_cpu_s": c2 - c1})
    return pairs


# ---------------------------------------------------------------------------------------------------
# role: naive — fetch every tensor with sess.run, diff the probe's row in numpy
# ---------------------------------------------------------------------------------------------------

def role_naive(args, started: float) -> dict:
    import numpy as np

    pb = Path(args.model)
    meta = _load_meta(pb)
    t = time.perf_counter()
    tf = _import_tf()
    import_s = time.perf_counter() - t
    t = time.perf_counter()
    graph, session, x, _y = _load_session(tf, pb, meta)
    # every numeric tensor downstream of the input
    downstream, frontier = set(), [x.op]
    while frontier:
        op = frontier.pop()
        for out in op.outputs:
            for consumer in out.consumers():
                if consumer.name not in downstream:
                    downstream.add(consumer.name)
                    frontier.append(consumer)
    tensors = [out for op in graph.get_operations() if op.name in downstream for out in op.outputs
               if out.dtype.is_numpy_compatible and out.dtype != tf.string]
    load_s = time.perf_counter() - t
    pool, plans = _pool_and_plans(meta, args.batch, args.trials)
    trials = []
    for plan in plans[:args.naive_trials]:
        t0 = time.perf_counter()
        solo = session.run(tensors, {x: pool.array[[plan.probe]]})
        t1 = time.perf_counter()
        batch = session.run(tensors, {x: pool.array[plan.rows()]})
        t2 = time.perf_counter()
        fetched = sum(a.nbytes for a in solo) + sum(a.nbytes for a in batch)
        worst = 0.0
        for a, b in zip(solo, batch):
            if a.ndim and b.ndim and a.shape[0] == 1 and b.shape[0] == plan.batch_size and a.shape[1:] == b.shape[1:]:
                b = b[plan.position:plan.position + 1]
            if a.shape == b.shape and a.size and a.dtype.kind in "fiu":
                worst = max(worst, float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))))
        t3 = time.perf_counter()
        del solo, batch
        trials.append({"solo_s": t1 - t0, "batch_s": t2 - t1, "diff_s": t3 - t2, "total_s": t3 - t0,
                       "fetched_mb": fetched / MB, "max_abs_diff": worst, "maxrss_mb": _maxrss_bytes() / MB})
    return {"import_tf_s": import_s, "load_s": load_s, "tensors": len(tensors), "trials": trials,
            "rss_end_bytes": _rss_bytes()}


# ---------------------------------------------------------------------------------------------------
# parent: spawn children, gather, print
# ---------------------------------------------------------------------------------------------------

def _child_env(args) -> dict:
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
               "--result", str(result), "--alpha", str(args.alpha), "--size", str(args.size),
               "--batch", str(args.batch), "--trials", str(args.trials), "--naive-trials", str(args.naive_trials),
               *(["--no-pairs"] if args.no_pairs else [])]
    load_before = os.getloadavg()
    started = time.perf_counter()
    process = subprocess.Popen(command, env=_child_env(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    out, err = process.communicate()  # peak RSS and CPU time come from the child's own getrusage
    wall = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"bench_check: role `{role}` failed (exit {process.returncode}):\n{err[-4000:]}")
    data = json.loads(result.read_text())
    data.update(role=role, wall_s=wall, load_before=load_before, load_after=os.getloadavg())
    if "check_end_s" in data:  # the batchcheck child: its whole is up to the end of the check, not the pairs
        data["process_wall_s"], data["process_cpu_s"] = wall, data["cpu_s"]
        data["wall_s"] = wall - (data["child_wall_s"] - data["check_end_s"])
        data["cpu_s"] = data["check_cpu_s"]
    if out.strip():
        data["stdout"] = out[-2000:]
    return data


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values) if values else float("nan")


def summarise_plain(plain: dict) -> dict:
    trials = plain["trials"]
    steady = trials[1:] or trials
    return {"first_trial_s": trials[0]["total_s"],
            "trial_s": _mean(t["total_s"] for t in steady),
            "trial_cpu_s": _mean(t.get("cpu_s", float("nan")) for t in steady),
            "solo_s": _mean(t["solo_s"] for t in steady),
            "batch_s": _mean(t["batch_s"] for t in steady)}


def summarise_batchcheck(bc: dict) -> dict:
    events = bc["events"]
    top = [e for e in events if e["name"] == "run_plan" and e["depth"] == min(
        x["depth"] for x in events if x["name"] == "run_plan")]
    screened = [e for e in top if e["mode"] == "screen"]
    detail = [e for e in top if e["mode"] == "detail"]

    def inside(parent, name, **match):
        lo, hi = parent["start_s"], parent["start_s"] + parent["seconds"]
        return [e for e in events if e["name"] == name and lo <= e["start_s"] <= hi
                and all(e.get(k) == v for k, v in match.items())]

    # the first screened trial compiles the `screen-row` callable (grappler); steady state is the rest
    compiled = [e for e in screened if any(s.get("first_call") for s in inside(e, "session"))]
    steady = [e for e in screened if e not in compiled] or screened
    solo_calls = [c for e in steady for c in inside(e, "cache_solo")]
    compare_calls = [c for e in steady for c in inside(e, "compare")]
    judge_calls = [c for e in steady for c in inside(e, "_judge")]
    opened = next(e for e in events if e["name"] == "Checker.open")
    check = next(e for e in events if e["name"] == "check")
    localised = [e for e in screened if inside(e, "run_plan", mode="detail")]
    return {"trial_s": _mean(e["seconds"] for e in steady),
            "trial_cpu_s": _mean(e.get("cpu_s", float("nan")) for e in steady),
            "first_screen_trial_s": compiled[0]["seconds"] if compiled else None,
            "solo_s": _mean(c["seconds"] for c in solo_calls) if solo_calls else None,
            "compare_s": _mean(c["seconds"] for c in compare_calls),
            "judge_s": _mean(c["seconds"] for c in judge_calls),
            "fresh_probe_trials": len(solo_calls), "steady_trials": len(steady),
            "screened_trials": len(screened), "localised_trials": len(localised),
            "detail_trial_s": detail[0]["seconds"] if detail else None,
            "open_s": opened["seconds"], "check_s": check["seconds"],
            "plans": [e["plan"] for e in top]}


def summarise_naive(naive: dict, trials: int) -> dict:
    per_trial = _mean(t["total_s"] for t in naive["trials"])
    setup = naive["import_tf_s"] + naive["load_s"]
    return {"trial_s": per_trial, "trials_run": len(naive["trials"]),
            "extrapolated_whole_s": naive["wall_s"] - sum(t["total_s"] for t in naive["trials"]) + trials * per_trial,
            "setup_s": setup, "fetched_mb": max(t["fetched_mb"] for t in naive["trials"])}


def print_profile(bc: dict, plain: dict) -> None:
    """The batchcheck child's timeline, merged where calls repeat."""
    print("\nbatchcheck profile (inside the child)")
    print(f"  {'call':<34}{'':<42}{'wall':>8} {'cpu':>7}  {'rss MB':>6} {'peak':>6} {'ever':>6}")
    print(f"  {'':<76}{'':>16}  {'after':>6} {'during':>6} {'so far':>6}")
    print(f"  import tensorflow {bc['import_tf_s']:.2f}s, import batchcheck {bc['import_batchcheck_s']:.2f}s "
          f"(plain: import tensorflow {plain['import_tf_s']:.2f}s, load .pb + Session {plain['load_s']:.2f}s)")
    shown = {"run", "Checker.open", "load_model", "prepare", "synthetic_pool", "special_pool",
             "GraphRunner.__init__ (import_graph_def + Session)", "analyse", "_dead_branches", "_candidates",
             "_shapes", "_build_comparisons", "_calibrate", "check", "result", "print_report", "session",
             "cache_solo", "compare"}
    in_check = False
    for event in bc["events"]:
        name = event["name"]
        if name == "check":
            in_check = True
        if name not in shown or (in_check and name in ("session", "cache_solo", "compare")):
            continue
        extra = ""
        if name == "session":
            extra = (f"{event.get('key', '?')} rows={event.get('rows', '?')}"
                     + (" new callable" if event.get("first_call") else "")
                     + ("" if event.get("grappler", True) else " no-grappler"))
        elif name in ("cache_solo", "compare"):
            extra = f"{event.get('mode', '?')}" + (f" rows={event['rows']}" if "rows" in event else "")
        elif name == "_shapes":
            extra = f"rows={event.get('rows', '?')} tensors={event.get('tensors', '?')}"
        label = {"GraphRunner.__init__ (import_graph_def + Session)": "GraphRunner() import+Session"}.get(name, name)
        indent = "  " * event["depth"]
        print(f"  {indent + label:<34}{extra:<42}{event['seconds']:7.2f}s {event.get('cpu_s', 0):6.2f}s"
              f"  {event['rss_after_mb']:6.0f} {event.get('peak_mb', float('nan')):6.0f}"
              f" {event['maxrss_after_mb']:6.0f}")
    print("  trials (wall, cpu, peak rss during the trial):")
    for event in bc["events"]:
        if event["name"] != "run_plan":
            continue
        print(f"    {'  ' * event['depth']}run_plan {event.get('mode', '?'):<6} probe={event['plan']['probe']:<3}"
              f"{' (solo cached)' if event.get('solo_cached') else '':<15} {event['seconds']:7.2f}s "
              f"{event.get('cpu_s', 0):6.2f}s  peak {event.get('peak_mb', float('nan')):6.0f}")


def _secs(value) -> str:
    return "-" if value is None else f"{value:.2f}s"


def _verdict(ratio: float, target: float) -> str:
    return "PASS" if ratio <= target else "FAIL"


def _check_rss(run: dict) -> float:
    """The batchcheck child's peak during the check itself (before the paired measurements)."""
    return run.get("check_maxrss_bytes", run["maxrss_bytes"]) / MB


def report(args, runs: dict, load_start: list[float]) -> dict:
    plain_runs, bc_runs = runs["plain"], runs["batchcheck"]
    plain = min(plain_runs, key=lambda r: r["wall_s"])
    bc = min(bc_runs, key=lambda r: r["wall_s"])
    p, b = summarise_plain(plain), summarise_batchcheck(bc)
    plain_rss_all = [r["maxrss_bytes"] / MB for r in plain_runs]
    bc_rss_all = [_check_rss(r) for r in bc_runs]
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

    meta = _load_meta(Path(args.model))
    print(f"\nbatchcheck benchmark: Keras MobileNetV2 alpha={args.alpha:g} {args.size}x{args.size} (random weights, "
          f"{meta['nodes']} frozen nodes), --batch-sizes {args.batch} --trials {args.trials}")
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
    print(f"batchcheck measured: {bc.get('batchcheck_package', '?')} (sources sha1 {bc.get('batchcheck_digest', '?')})")
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
          f"compare {b['compare_s']:.3f}s; first screened {_secs(b['first_screen_trial_s'])} (new callable), "
          f"detail trial {_secs(b['detail_trial_s'])}{rss_note(bc_rss_all)}")
    if n:
        note = (f"ran {n['trials_run']} of {args.trials} trials; whole extrapolated to {args.trials}: "
                f"{n['extrapolated_whole_s']:.1f}s; {naive['tensors']} tensors, {n['fetched_mb']:.0f} MB fetched/trial")
        print(f"{'naive':<12}{naive['wall_s']:9.2f}{naive['cpu_s']:9.2f}{n['trial_s']:13.3f}"
              f"{naive['maxrss_bytes'] / MB:13.0f}  {note}")
    print()
    paired_note = (f"paired in one process over {len(pairs)} screened trials, fresh probe each (cpu time "
                   f"{paired_cpu:.2f}x); " if pairs else "")
    print(f"per-trial  batchcheck / plain = {ratios['per_trial']:.2f}x  (target <= {TARGETS['per_trial']}x) "
          f"{_verdict(ratios['per_trial'], TARGETS['per_trial'])}   "
          f"[{paired_note}across processes: fresh probe {per_trial_fresh:.2f}x, as drawn {per_trial_drawn:.2f}x "
          f"({b['steady_trials'] - b['fresh_probe_trials']}/{b['steady_trials']} steady trials reused the cached "
          f"probe), cpu time as drawn {b['trial_cpu_s'] / p['trial_cpu_s']:.2f}x]")
    print(f"whole      batchcheck / plain = {ratios['whole']:.2f}x  (target <= {TARGETS['whole']}x) "
          f"{_verdict(ratios['whole'], TARGETS['whole'])}   [cpu time: {bc['cpu_s'] / plain['cpu_s']:.2f}x]")
    print(f"peak RSS   batchcheck / plain = {ratios['rss']:.2f}x  (target <= {TARGETS['rss']}x) "
          f"{_verdict(ratios['rss'], TARGETS['rss'])}")
    if n:
        print(f"naive      / plain: per-trial {n['trial_s'] / p['trial_s']:.2f}x, whole (extrapolated) "
              f"{n['extrapolated_whole_s'] / plain['wall_s']:.2f}x, peak RSS {naive['maxrss_bytes'] / MB / plain_rss:.2f}x")
    if args.profile or any(ratios[k] > TARGETS[k] for k in TARGETS):
        print_profile(bc, plain)

    figures = {"model": meta, "batch": args.batch, "trials": args.trials, "threads": args.threads,
               "load_start": load_start, "targets": TARGETS, "ratios": ratios,
               "pass": {k: ratios[k] <= TARGETS[k] for k in TARGETS},
               "per_trial_paired": paired, "per_trial_paired_cpu": paired_cpu,
               "per_trial_fresh_probe": per_trial_fresh, "per_trial_as_drawn": per_trial_drawn,
               "whole_cpu": bc["cpu_s"] / plain["cpu_s"],
               "plain": {**p, "wall_s": plain["wall_s"], "cpu_s": plain["cpu_s"], "peak_rss_mb": plain_rss},
               "batchcheck": {**b, "wall_s": bc["wall_s"], "cpu_s": bc["cpu_s"], "peak_rss_mb": bc_rss,
                              "verdict": bc["verdict"]},
               "naive": ({**n, "wall_s": naive["wall_s"], "peak_rss_mb": naive["maxrss_bytes"] / MB,
                          "tensors": naive["tensors"]} if n else None),
               "runs": runs}
    return figures


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--alpha", type=float, default=1.0, help="MobileNetV2 width (default 1.0)")
    parser.add_argument("--size", type=int, default=224, help="input height and width (default 224)")
    parser.add_argument("--batch", type=int, default=32, help="the check's --batch-sizes (default 32)")
    parser.add_argument("--trials", type=int, default=12, help="the check's --trials (default 12)")
    parser.add_argument("--quick", action="store_true", help="smoke run: --alpha 0.35 --size 96")
    parser.add_argument("--skip-naive", action="store_true", help="do not run the naive approach")
    parser.add_argument("--naive-trials", type=int, default=2, help="trials the naive approach runs (default 2)")
    parser.add_argument("--no-pairs", action="store_true",
                        help="skip the paired per-trial measurement run after the check in the batchcheck child")
    parser.add_argument("--repeat", type=int, default=1, help="run plain and batchcheck N times, keep the best")
    parser.add_argument("--threads", type=int, default=0,
                        help="TF intra/inter-op threads in every child (default: TF's own default)")
    parser.add_argument("--batchcheck-root", type=Path, metavar="DIR",
                        help="measure the batchcheck package under DIR (e.g. another checkout) instead of this one")
    parser.add_argument("--out", type=Path, help="folder for the frozen model (kept and reused); default: a temp dir")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures as JSON")
    parser.add_argument("--profile", action="store_true", help="print batchcheck's profile even when all targets pass")
    parser.add_argument("--role", choices=ROLES, help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.alpha, args.size = 0.35, 96
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.role:
        started = time.perf_counter()
        role = {"freeze": role_freeze, "plain": role_plain, "batchcheck": role_batchcheck, "naive": role_naive}
        _finish(role[args.role](args, started), Path(args.result), started)
        return 0

    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench_check-")))
        folder = args.out or workdir
        folder.mkdir(parents=True, exist_ok=True)
        args.model = str(folder / f"mobilenet_v2_a{args.alpha:g}_{args.size}.pb")
        runs: dict = {}
        load_start = list(os.getloadavg())
        if not (Path(args.model).exists() and Path(args.model).with_suffix(".json").exists()):
            print(f"freezing MobileNetV2 alpha={args.alpha} {args.size}px to {args.model} …", flush=True)
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
