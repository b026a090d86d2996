"""Feed a corpus through the CLI and judge each outcome: exit code, one line on stderr, no traceback, in time,
no sentinel, nothing written.

Cheap cases run many per process (`run_batch`, in-process CLI); a case that may crash or hang, and any case
on which that batch process died or stalled, runs as a real supervised `python -m batchcheck check` process.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .models import Case

TESTS = Path(__file__).resolve().parent.parent
STALL_SECONDS = 120  # a batch process making no progress this long is stopped; its case reruns supervised
ALLOWED_ONE_LINE_PREFIX = "batchcheck"


@dataclass
class Outcome:
    code: int
    err: str
    seconds: float
    how: str  # "batch" or "supervised"


def _env(supervised: bool) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS.parent), str(TESTS)]))
    env.pop("BATCHCHECK_UNSUPERVISED", None) if supervised else env.update(BATCHCHECK_UNSUPERVISED="1")
    return env


def run_corpus(cases: list[Case], root: Path) -> tuple[dict[str, Outcome], list[Path]]:
    """Every case's outcome, and the working folders used (each must stay empty)."""
    outcomes: dict[str, Outcome] = {}
    workdirs: list[Path] = []
    supervised = [c for c in cases if c.supervised]
    pending = [c for c in cases if not c.supervised]
    while pending:
        workdir = root / f"batch-{len(workdirs)}" / "cwd"
        workdir.mkdir(parents=True)
        workdirs.append(workdir)
        done = _run_batch(pending, workdir)
        outcomes.update(done)
        rest = pending[len(done):]
        if rest:  # the batch process died or stalled on rest[0]: that case runs supervised, the batch goes on
            supervised.append(rest[0])
        pending = rest[1:]
    with ThreadPoolExecutor(2) as pool:
        for case, outcome, workdir in pool.map(lambda c: _run_supervised(c, root), supervised):
            outcomes[case.name] = outcome
            workdirs.append(workdir)
    return outcomes, workdirs


def _run_batch(cases: list[Case], workdir: Path) -> dict[str, Outcome]:
    spec, results = workdir.parent / "cases.json", workdir.parent / "results.jsonl"
    spec.write_text(json.dumps([{"name": c.name, "args": c.args} for c in cases]))
    results.touch()
    child = subprocess.Popen([sys.executable, "-m", "hostile.run_batch", str(spec), str(results), str(workdir)],
                             env=_env(False), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    seen, last_progress = 0, time.monotonic()
    while child.poll() is None:
        time.sleep(0.5)
        count = results.read_text().count("\n")
        if count != seen:
            seen, last_progress = count, time.monotonic()
        elif time.monotonic() - last_progress > STALL_SECONDS:
            child.kill()
            child.wait()
    lines = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    return {r["name"]: Outcome(r["code"], r["err"], r["seconds"], "batch") for r in lines}


def _run_supervised(case: Case, root: Path) -> tuple[Case, Outcome, Path]:
    workdir = root / f"supervised-{case.name}" / "cwd"
    workdir.mkdir(parents=True)
    started = time.monotonic()
    try:
        args = [*case.args] if "--timeout" in case.args else [*case.args, "--timeout", f"{case.seconds * 0.6:g}"]
        done = subprocess.run([sys.executable, "-m", "batchcheck", "check", *args], cwd=workdir,
                              env=_env(True), stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=case.seconds + 60)
        code, err = done.returncode, done.stderr.decode("utf-8", "replace")
    except subprocess.TimeoutExpired:
        code, err = -1, "(the supervised CLI itself hung)"
    return case, Outcome(code, err, time.monotonic() - started, "supervised"), workdir


def problems(case: Case, outcome: Outcome) -> list[str]:
    """What is wrong with one outcome (an empty list when it is right)."""
    found = []
    lines = outcome.err.splitlines()
    if outcome.code not in case.codes:
        found.append(f"exit {outcome.code}, expected one of {sorted(case.codes)}")
    if outcome.code >= 2 and len(lines) != 1:
        found.append(f"{len(lines)} lines on stderr, expected 1")
    if outcome.code < 2 and len(lines) > 1:
        found.append(f"{len(lines)} lines on stderr, expected at most 1")
    if any(not line.startswith(ALLOWED_ONE_LINE_PREFIX) for line in lines):
        found.append("a stderr line not from batchcheck")
    if "Traceback" in outcome.err or "internal error" in outcome.err:
        found.append("a traceback or internal error")
    if outcome.seconds > case.seconds:
        found.append(f"took {outcome.seconds:.0f} s, bound {case.seconds:.0f} s")
    if case.sentinel is not None and case.sentinel.exists():
        found.append(f"sentinel {case.sentinel.name} was created: the model acted")
    found += [f"stderr lacks {word!r}" for word in case.mentions if word not in outcome.err]
    return [f"{case.name} ({outcome.how}): {p}; stderr: {outcome.err.strip()[:300]!r}" for p in found]
