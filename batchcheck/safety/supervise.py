"""Supervision: loading, analysis and trials run in a child process the parent watches.

The child is a fresh `python -m batchcheck …` (TensorFlow is not fork-safe) with its data segment capped by
`setrlimit(RLIMIT_DATA)`; it tells the parent which stage it is in through a pipe. The parent imports no
TensorFlow: it relays the child's output, enforces `--timeout` and `--max-memory` (resident memory, polled),
and turns a crash, a hang, running out of memory or Ctrl-C into one line naming the stage. The pytest plugin's
models live in such children too, serving calls (`remote.py`).
"""
from __future__ import annotations

import argparse
import codecs
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Callable

from ..errors import EXIT_UNTESTABLE, one_line
from .slow_stage import StageClock, slow_stage_seconds, stage_line

STAGE_FD_ENV = "BATCHCHECK_STAGE_FD"
MEMORY_ENV = "BATCHCHECK_MAX_MEMORY"
UNSUPERVISED_ENV = "BATCHCHECK_UNSUPERVISED"  # "1": run in-process (the test suite, debugging)
EXIT_INTERRUPTED = 130
DEFAULT_TIMEOUT = 1800.0
MEMORY_FRACTION = 0.8  # default --max-memory: this share of the machine's memory
POLL_SECONDS = 0.2
SIZE_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
OOM_MARKERS = ("bad_alloc", "MemoryError", "Resource exhausted", "OOM", "Cannot allocate memory",
               "Memory allocation still failed")  # the last: OpenBLAS, which exits 1 on its own
_STAGE = ["start-up"]  # the child's current stage, for its own messages


@dataclass(frozen=True)
class Limits:
    """How long the child may run (0 = no limit) and how much memory it may use, in bytes (0 = no limit)."""
    timeout: float = DEFAULT_TIMEOUT
    max_memory: int = 0


def parse_size(text: str) -> int:
    """'4G' → 4294967296, '512M', '0' (no limit), '80%' (of the machine's memory)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT%]?)i?B?\s*", text.upper())
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size like 4G, 512M, 80% or 0")
    number, unit = float(match[1]), match[2]
    return int(machine_memory() * number / 100) if unit == "%" else int(number * SIZE_UNITS[unit])


def parse_seconds(text: str) -> float:
    """'90' → 90.0; '0' means no limit."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give seconds of at least 0 (0 = no limit)")
    return value


def machine_memory() -> int:
    """Physical memory of the machine, in bytes."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def limits_of(config) -> Limits:
    """The `Limits` a `CheckConfig` asks for (`--timeout`, `--max-memory`; no size = a share of the memory)."""
    memory = config.max_memory
    return Limits(config.timeout, int(machine_memory() * MEMORY_FRACTION) if memory is None else memory)


def format_size(size: int) -> str:
    return f"{size / 2**30:.1f} GB" if size >= 2**30 else f"{size / 2**20:.0f} MB"


def supervising() -> bool:
    """True in the parent: not inside a supervised child, and in-process running not asked for."""
    return STAGE_FD_ENV not in os.environ and os.environ.get(UNSUPERVISED_ENV) != "1"


def stage(name: str, detail: str = "") -> None:
    """Record the stage now running (loading, analysis, calibration, trial N) for the supervising parent, with
    what it does there (`detail`, named if the stage runs long)."""
    _STAGE[0] = name
    fd = os.environ.get(STAGE_FD_ENV)
    if fd:
        try:
            os.write(int(fd), f"{stage_line(name, detail)}\n".encode())
        except OSError:  # the parent is gone; it is stopping us anyway
            pass


def current_stage() -> str:
    return _STAGE[0]


def enter_child() -> None:
    """In a supervised child: cap the data segment, leave Ctrl-C to the parent, die with the parent."""
    if STAGE_FD_ENV not in os.environ:
        return
    import resource

    memory = int(os.environ.get(MEMORY_ENV, "0"))
    if memory:
        resource.setrlimit(resource.RLIMIT_DATA, (memory, memory))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: no orphan when the parent is killed
    except (OSError, AttributeError):
        pass


@dataclass
class ChildRun:
    """How a supervised child ended: its exit code, or `failure` (one line) when it was stopped or crashed."""
    code: int
    stage: str
    stderr: str
    failure: str | None = None

    def __bool__(self) -> bool:
        return self.failure is None


def run_child(arguments: list[str], limits: Limits, subject: str, *, relay_stdout: bool = True) -> ChildRun:
    """Run `python -m ARGUMENTS…` supervised; `subject` ('model `m.pb`') starts a failure line."""
    clock = StageClock(slow_stage_seconds())
    stage_read, stage_write = os.pipe()
    env = dict(os.environ, **{STAGE_FD_ENV: str(stage_write), MEMORY_ENV: str(limits.max_memory)})
    inherit = relay_stdout and _stdout_is_terminal()
    child = subprocess.Popen([sys.executable, "-m", *arguments], stdin=subprocess.DEVNULL,
                             stdout=None if inherit else subprocess.PIPE, stderr=subprocess.PIPE,
                             pass_fds=(stage_write,), env=env)
    os.close(stage_write)
    stderr: list[bytes] = []
    readers = [threading.Thread(target=_drain, args=(child.stderr, stderr.append), daemon=True)]
    if not inherit:
        decoder = codecs.getincrementaldecoder("utf-8")("replace")  # a chunk may end inside a character
        sink = (lambda chunk: _write_stdout(decoder.decode(chunk))) if relay_stdout else (lambda chunk: None)
        readers.append(threading.Thread(target=_drain, args=(child.stdout, sink), daemon=True))
    for reader in readers:
        reader.start()
    current, failure = "start-up", None
    started = time.monotonic()
    try:
        while True:
            ready, _, _ = select.select([stage_read], [], [], POLL_SECONDS)
            if ready:
                data = os.read(stage_read, 4096)
                if not data:
                    break  # the child exited: its end of the pipe closed
                if data.strip():
                    clock.enter(data.decode("utf-8", "replace").strip().splitlines()[-1], time.monotonic())
                    current = clock.name
            if limits.timeout and time.monotonic() - started > limits.timeout:
                failure = timed_out(current, limits)
            elif limits.max_memory and resident_memory(child.pid) > limits.max_memory:
                failure = out_of_memory(current, limits)
            if failure:
                child.kill()
                break
            notice = clock.notice(time.monotonic(), limits.timeout, started)
            if notice:
                print(f"batchcheck: {one_line(notice)}", file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        child.kill()
        child.wait()
        os.close(stage_read)
        return ChildRun(EXIT_INTERRUPTED, current, "", f"interrupted during {current}; the check was stopped")
    os.close(stage_read)
    code = child.wait()
    for reader in readers:
        reader.join(timeout=5)
    text = b"".join(stderr).decode("utf-8", "replace")
    if failure is None and code < 0:
        failure = crashed(code, current, text, limits)
    elif failure is None and code != 0 and _foreign_out_of_memory(text):  # a library gave up: no verdict
        failure = out_of_memory(current, limits)
    return ChildRun(EXIT_UNTESTABLE if failure else code, current, text,
                    f"{subject}: {failure}" if failure else None)


def relay(run: ChildRun) -> int:
    """Print the child's own lines (or the failure line) on stderr; return the exit code to use."""
    if run.failure:
        print(f"batchcheck: {one_line(run.failure)}", file=sys.stderr)
        return run.code
    debug = bool(os.environ.get("BATCHCHECK_DEBUG"))
    for line in run.stderr.splitlines():
        if debug or line.startswith("batchcheck"):
            print(line, file=sys.stderr)
    return run.code


def _foreign_out_of_memory(stderr: str) -> bool:
    """True when a line not from batchcheck (a library giving up) says memory ran out."""
    return any(marker in line for line in stderr.splitlines() if not line.startswith("batchcheck")
               for marker in OOM_MARKERS)


def crashed(code: int, stage_name: str, stderr: str, limits: Limits) -> str:
    if any(marker in stderr for marker in OOM_MARKERS):
        return out_of_memory(stage_name, limits)
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = f"signal {-code}"
    detail = [line.strip() for line in stderr.splitlines() if line.strip() and not line.startswith("batchcheck")]
    said = f"; TensorFlow said: {detail[-1][:160]}" if detail else ""
    overflow = " (a stack overflow from a deep or recursive graph?)" if name == "SIGSEGV" else ""
    return (f"crashed with {name}{overflow} during {stage_name}{said}; the model is malformed or triggers "
            f"a TensorFlow bug")


def out_of_memory_at(path: str | os.PathLike[str], node: str | None, batch: int, detail: str) -> str:
    """One line for TensorFlow refusing an allocation (`detail`, its error text) at `node` on a batch of `batch`."""
    where = f" at node `{node}`" if node else ""
    return (f"model `{path}`: ran out of memory during {current_stage()}{where} on a batch of {batch} "
            f"({detail.split(' on /job:')[0]}; {_memory_limit()}); raise --max-memory or lower --batch-sizes")


def memory_error() -> str:
    """One line for a MemoryError in this process: the stage and the --max-memory limit."""
    return (f"ran out of memory during {current_stage()} ({_memory_limit()}); raise --max-memory or check a "
            f"smaller model")


def _memory_limit() -> str:
    """This process's --max-memory limit in words (a supervised child has one)."""
    memory = int(os.environ.get(MEMORY_ENV, "0"))
    return f"limit {format_size(memory)}, --max-memory" if memory else "no --max-memory limit"


def timed_out(stage_name: str, limits: Limits) -> str:
    return (f"timed out after {limits.timeout:g} s during {stage_name} (--timeout {limits.timeout:g}); "
            f"raise --timeout, or check a smaller model")


def out_of_memory(stage_name: str, limits: Limits) -> str:
    return (f"ran out of memory during {stage_name} (limit {format_size(limits.max_memory)}, --max-memory); "
            f"raise --max-memory or check a smaller model")


def resident_memory(pid: int) -> int:
    """Resident memory of process `pid` in bytes (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, IndexError, ValueError):
        return 0


def _stdout_is_terminal() -> bool:
    return sys.stdout is sys.__stdout__ and sys.stdout is not None and sys.stdout.isatty()


def _write_stdout(text: str) -> None:
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except (BrokenPipeError, ValueError):  # the reader went away (`| head`) or stdout was closed
        pass


def _drain(stream, sink: Callable[[bytes], None]) -> None:
    for chunk in iter(lambda: stream.read1(65536), b""):
        sink(chunk)
