"""The batchcheck child's profile: an RSS sampler, a profiler that wraps functions, and the one table
`PROFILED` of the public batchcheck names it times.

A name in `PROFILED` that no longer exists stops the benchmark with one line (and fails
`tests/test_bench_profile.py`): a rename must update the table, never quietly lose a figure.
"""
from __future__ import annotations

import functools
import importlib
import inspect
import os
import resource
import threading
import time
from typing import Callable, NamedTuple

MB = 1024 * 1024


class Profiled(NamedTuple):
    """One timed function: `module`, its `attribute` (dotted inside the module), the event `label`, and
    `describe(arguments)` adding fields from the call's arguments (bound by name, defaults applied)."""
    module: str
    attribute: str
    label: str
    describe: Callable[[dict], dict] | None = None


def plan_dict(plan) -> dict:
    return {"probe": plan.probe, "position": plan.position, "mates": list(plan.mates)}


def _rows(arguments: dict) -> dict:
    return {"rows": int(len(arguments["batch"]))}


def _solo(arguments: dict) -> dict:
    runner = arguments["self"]
    return {"key": arguments["key"], "mode": str(arguments["mode"]),
            "hit": runner.solo_cached(arguments["key"], arguments["mode"])}


def _compare(arguments: dict) -> dict:
    return {"mode": str(arguments["mode"]), **_rows(arguments)}


def _plan(arguments: dict) -> dict:
    plan, mode = arguments["plan"], arguments["mode"]
    return {"mode": str(mode), "plan": plan_dict(plan),
            "solo_cached": arguments["self"].runner.solo_cached(plan.probe, mode)}


# Labels the summaries look for.
OPEN, CHECK, RUN_PLAN = "Checker.open", "Checker.check", "Checker.run_plan"
CACHE_SOLO, COMPARE, COMPILE = "Runner.cache_solo", "Runner.compare", "Session.compile"

PROFILED = (
    Profiled("batchcheck.cli.check", "run", "cli check.run"),
    Profiled("batchcheck.checker", "Checker.open", OPEN),
    Profiled("batchcheck.checker", "open_model", "open_model"),
    Profiled("batchcheck.checker", "input_pool", "input_pool"),
    Profiled("batchcheck.checker", "special_input_pool", "special_input_pool"),
    Profiled("batchcheck.backends.tf.session", "TFSession.__init__", "TFSession() import+Session"),
    Profiled("batchcheck.run.runner", "Runner.analyse", "Runner.analyse"),
    Profiled("batchcheck.backends.tf.session", "TFSession.compile", COMPILE),
    Profiled("batchcheck.checker", "calibrate", "calibrate"),
    Profiled("batchcheck.checker", "Checker.check", CHECK),
    Profiled("batchcheck.checker", "Checker.run_plan", RUN_PLAN, _plan),
    Profiled("batchcheck.run.runner", "Runner.cache_solo", CACHE_SOLO, _solo),
    Profiled("batchcheck.run.runner", "Runner.compare", COMPARE, _compare),
    Profiled("batchcheck.run.runner", "Runner.forward", "Runner.forward", _rows),
    Profiled("batchcheck.checker", "Checker.result", "Checker.result"),
    Profiled("batchcheck.report.terminal", "print_report", "print_report"),
)
# The ONNX check's: the same without the TensorFlow session's, with the ONNX backend's load, shapes and compile.
ONNX_PROFILED = (
    *(entry for entry in PROFILED if ".backends.tf." not in entry.module),
    Profiled("batchcheck.backends.onnx.load", "load_onnx", "load_onnx"),
    Profiled("batchcheck.backends.onnx.prepare", "prepare", "prepare"),
    Profiled("batchcheck.backends.onnx.session", "OnnxSession.shapes", "OnnxSession.shapes"),
    Profiled("batchcheck.backends.onnx.session", "OnnxSession.compile", COMPILE),
)


def resolve(entry: Profiled) -> tuple[object, str, Callable]:
    """(owner, name, function) of `entry`; SystemExit with one line when it no longer exists."""
    owner = importlib.import_module(entry.module)
    *path, name = entry.attribute.split(".")
    try:
        for part in path:
            owner = getattr(owner, part)
        return owner, name, getattr(owner, name)
    except AttributeError:
        raise SystemExit(f"bench_check: `{entry.module}.{entry.attribute}` no longer exists; update PROFILED "
                         f"in benchmarks/profiling.py to the new public name") from None


def maxrss_bytes() -> int:
    """This process's peak resident memory: its VmHWM where /proc has it (`ru_maxrss` also counts what the parent
    held when it started this child, which is more than the child's own peak under a large parent, e.g. pytest)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class RssSampler:
    """Samples this process's RSS every `interval` seconds on a daemon thread (reading /proc is cheap
    and TF releases the GIL while it runs), so each call's own peak can be told apart; the process
    peak (`ru_maxrss`) only ever grows."""

    def __init__(self, interval: float = 0.005) -> None:
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
        return max(inside) if inside else rss_bytes()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


class Profiler:
    """Wraps functions to log events: label, depth, start, seconds, cpu seconds, `info` from the entry's
    `describe`, rss after, own peak rss, process peak rss after."""

    def __init__(self, started: float, sampler: RssSampler | None = None) -> None:
        self.started = started
        self.sampler = sampler
        self.depth = 0
        self.enabled = True
        self.events: list[dict] = []

    def install(self, table=PROFILED) -> None:
        """Wrap every entry of `table`, or none: SystemExit naming the first one that no longer exists."""
        for entry, (owner, name, original) in [(entry, resolve(entry)) for entry in table]:
            setattr(owner, name, self._timed(original, entry))

    def _timed(self, original: Callable, entry: Profiled) -> Callable:
        profiler = self
        signature = inspect.signature(original) if entry.describe else None

        @functools.wraps(original)
        def timed(*args, **kwargs):
            if not profiler.enabled:
                return original(*args, **kwargs)
            event = {"name": entry.label, "depth": profiler.depth, "start_s": time.perf_counter() - profiler.started}
            if signature is not None:
                bound = signature.bind(*args, **kwargs)
                bound.apply_defaults()
                event["info"] = entry.describe(bound.arguments)
            profiler.events.append(event)
            profiler.depth += 1
            c0, t0 = time.process_time(), time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                t1 = time.perf_counter()
                event["seconds"] = t1 - t0
                event["cpu_s"] = time.process_time() - c0
                if profiler.sampler is not None:
                    event["peak_mb"] = profiler.sampler.peak(t0, t1) / MB
                profiler.depth -= 1
                event["rss_after_mb"] = rss_bytes() / MB
                event["maxrss_after_mb"] = maxrss_bytes() / MB

        return timed
