"""A `Checker` held in a supervised child process, for the pytest plugin: one bad model fails its own items.

`RemoteChecker.open(path, config, limits)` starts `python -m batchcheck.safety.remote`, which opens the
Checker (loading, analysis, calibration) and then serves the plugin's calls over pipes: a request is the
method's name, its arguments and the parent's stage, pickled; a reply is the value, or an error's one line.
The parent imports no TensorFlow. It bounds every call by what is left of `--timeout` (counted from the
child's start) and by `--max-memory`, as `run_child` does for the CLI: a crash, a hang or running out of
memory kills the child and raises `ChildStopped`: one line naming the model and the stage; every later call
raises it again. A call that stays long in one stage is said while it waits (`slow_stage`), through `say`.
Hypothesis, the items and the reports stay in the parent. The replies are pickles from batchcheck's own code in
the child (the graph's acting ops were refused before it ran), trusted as its exit code is.
"""
from __future__ import annotations

import os
import pickle
import select
import struct
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..errors import (
    BatchcheckBug,
    BatchcheckWarning,
    ChildStopped,
    OutOfMemory,
    UsageError,
    first_line,
    one_line,
)
from ..result import describe_batch
from .slow_stage import StageClock, slow_stage_seconds
from .supervise import (
    MEMORY_ENV,
    POLL_SECONDS,
    STAGE_FD_ENV,
    Limits,
    crashed,
    current_stage,
    enter_child,
    out_of_memory,
    resident_memory,
    stage,
    supervising,
    timed_out,
)

if TYPE_CHECKING:
    import numpy as np

    from ..checker import Checker
    from ..options import CheckConfig
    from ..plans import BatchPlan, PlanOutcome
    from ..result import CheckResult, Mode, TrialReport

REPLY_FD_ENV = "BATCHCHECK_REPLY_FD"
STDERR_KEPT = 65536  # the child's last stderr bytes, for a crash's "TensorFlow said"
HEADER = struct.Struct("!Q")  # a message: its length, then its pickle
CLOSE_SECONDS = 5.0


def print_error(line: str) -> None:
    """One line on stderr."""
    print(line, file=sys.stderr, flush=True)


class RemoteChecker:
    """The public surface of a `Checker` the plugin uses, served by a supervised child process. The images
    stay in the child: `pool` is their names."""

    def __init__(self, path: Path, limits: Limits, child: subprocess.Popen, replies: int, stages: int,
                 say: Callable[[str], None], first_notice: float) -> None:
        self.path, self.limits, self._child = path, limits, child
        self._replies, self._stages = replies, stages
        self._say, self._first_notice = say, first_notice
        self._started = time.monotonic()
        self._stderr = bytearray()
        self._reader = threading.Thread(target=self._keep_stderr, daemon=True)
        self._reader.start()
        self.stage = "starting"
        self.stopped: ChildStopped | None = None  # why the child is gone, once it is
        self.config: CheckConfig
        self.main_images = 0
        self.pool: tuple[str, ...] = ()
        self.random_reaches_data = False

    @classmethod
    def open(cls, path: Path | str, config: CheckConfig, limits: Limits,
             say: Callable[[str], None] = print_error) -> RemoteChecker:
        """Start the child and open `path` there; `UsageError` (one line) when it cannot be checked. `say`
        writes a long stage's notices (one line each)."""
        first_notice = slow_stage_seconds()
        reply_read, reply_write = os.pipe()
        stage_read, stage_write = os.pipe()
        env = dict(os.environ, **{STAGE_FD_ENV: str(stage_write), REPLY_FD_ENV: str(reply_write),
                                  MEMORY_ENV: str(limits.max_memory)})
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        child = subprocess.Popen([sys.executable, "-m", __name__], stdin=subprocess.PIPE,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                 pass_fds=(stage_write, reply_write), env=env)
        os.close(reply_write)
        os.close(stage_write)
        remote = cls(Path(path), limits, child, reply_read, stage_read, say, first_notice)
        try:
            summary = remote._call("open", Path(path), config)
        except BaseException:
            remote.close()
            raise
        remote.config, remote.main_images = summary["config"], summary["main_images"]
        remote.pool, remote.random_reaches_data = summary["names"], summary["random_reaches_data"]
        return remote

    # -- the Checker's surface ---------------------------------------------------------------------

    def image_name(self, index: int) -> str:
        return self.pool[index]

    def describe(self, plan: BatchPlan) -> str:
        """'batch of 2, probe `noise-0` at 1, mates: flat black'."""
        return describe_batch(plan.batch_size, self.image_name(plan.probe), plan.position,
                              [self.image_name(m) for m in plan.mates])

    def check(self) -> CheckResult:
        return self._call("check")

    def run_plan(self, plan: BatchPlan, mode: Mode | None = None) -> PlanOutcome:
        return self._call("run_plan", plan, *([mode] if mode else []))

    def rerun(self) -> PlanOutcome:
        return self._call("rerun")

    def result(self, outcomes: list[PlanOutcome], trials: list[TrialReport]) -> CheckResult:
        return self._call("result", list(outcomes), trials)

    def forward(self, rows: list[int]) -> list[np.ndarray]:
        return self._call("forward", rows)

    def compared_outputs(self) -> dict[str, int | None]:
        return self._call("compared_outputs")

    def default_plans(self) -> list[tuple[BatchPlan, list[int]]]:
        return self._call("default_plans")

    def close(self) -> None:
        """Ask the child to release the model and exit; kill it if it does not."""
        if self._child.poll() is None:
            try:
                self._child.stdin.close()  # end of requests: the child closes the Checker and exits
                self._child.wait(CLOSE_SECONDS)
            except (OSError, subprocess.TimeoutExpired):
                self._child.kill()
                self._child.wait()
        for fd in (self._replies, self._stages):
            try:
                os.close(fd)
            except OSError:
                pass
        self._replies = self._stages = -1

    # -- the pipe ---------------------------------------------------------------------------------

    def _call(self, method: str, *args: Any) -> Any:
        """`method(*args)` in the child, under what is left of the limits."""
        if self.stopped:
            raise self.stopped
        if method != "open":
            self.stage = current_stage()  # the item's stage (fuzz example N…); the child may refine it (trial N)
        request = pickle.dumps((method, args, self.stage))
        try:
            self._child.stdin.write(HEADER.pack(len(request)) + request)
            self._child.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # the child is gone: reading its reply says how
        kind, value, caught = pickle.loads(self._receive())
        for category, message in caught:  # the child's warnings, as the in-process checker would give them
            warnings.warn(message, category, stacklevel=3)
        if kind == "ok":
            return value
        if kind == "fatal":  # out of memory: the child's state cannot be trusted, and a retry would cost as much
            self._stop(value, prefixed=True)
        raise (UsageError if kind == "usage" else BatchcheckBug)(value)

    def _receive(self) -> bytes:
        """One reply; `ChildStopped` when the child dies, overruns the time left or the memory."""
        data = bytearray()
        clock = StageClock(self._first_notice, self.stage)  # the call's own time: none while the parent works
        try:
            while len(data) < HEADER.size or len(data) < HEADER.size + HEADER.unpack_from(data)[0]:
                ready, _, _ = select.select([self._replies, self._stages], [], [], POLL_SECONDS)
                if self._stages in ready:
                    lines = os.read(self._stages, 4096).decode("utf-8", "replace").splitlines()
                    if lines:
                        clock.enter(lines[-1], time.monotonic())
                        self.stage = clock.name
                notice = clock.notice(time.monotonic(), self.limits.timeout, self._started)
                if notice:
                    self._say(f"batchcheck: model `{self.path}`: {one_line(notice)}")
                if self._replies in ready:
                    chunk = os.read(self._replies, 1 << 20)
                    if not chunk:
                        self._stop(None)  # the child exited: its end of the pipe closed
                    data += chunk
                elif self.limits.timeout and time.monotonic() - self._started > self.limits.timeout:
                    self._stop(timed_out(self.stage, self.limits))
                elif self.limits.max_memory and resident_memory(self._child.pid) > self.limits.max_memory:
                    self._stop(out_of_memory(self.stage, self.limits))
        except KeyboardInterrupt:  # Ctrl-C stops the child and the session
            self._kill()
            self.stopped = ChildStopped(f"model `{self.path}`: interrupted during {self.stage}", self.stage)
            raise
        return bytes(data[HEADER.size:])

    def _kill(self) -> int:
        """Kill the child; its exit code (negative: the signal that ended it)."""
        self._child.kill()
        code = self._child.wait()
        self._reader.join(timeout=5)
        return code

    def _stop(self, why: str | None, prefixed: bool = False) -> None:
        """End the child (`why`: the reason, `prefixed` when it names the model; None when the child ended
        itself) and raise `ChildStopped`."""
        code = self._kill()
        if why is None:
            text = self._stderr.decode("utf-8", "replace")
            why = crashed(code, self.stage, text, self.limits) if code < 0 else (
                f"stopped with exit code {code} during {self.stage}")
        self.stopped = ChildStopped(why if prefixed else f"model `{self.path}`: {why}", self.stage)
        raise self.stopped

    def _keep_stderr(self) -> None:
        for chunk in iter(lambda: self._child.stderr.read1(65536), b""):
            self._stderr += chunk
            del self._stderr[:-STDERR_KEPT]


def open_checker(path: Path | str, config: CheckConfig, limits: Limits,
                 say: Callable[[str], None] = print_error) -> Checker | RemoteChecker:
    """`path` opened in a supervised child (`say` writes its long stages' notices), or in this process when
    supervision is off."""
    if supervising():
        return RemoteChecker.open(path, config, limits, say)
    from ..checker import Checker

    return Checker.open(path, config)


# -- the child ------------------------------------------------------------------------------------

def _serve() -> int:
    """Open the Checker the first request names, then answer requests until the parent closes the pipe."""
    requests = sys.stdin.buffer
    replies = os.fdopen(int(os.environ.pop(REPLY_FD_ENV)), "wb")
    checker, subject = None, "the model"
    while True:
        header = requests.read(HEADER.size)
        if len(header) < HEADER.size:
            break
        method, args, parent_stage = pickle.loads(requests.read(HEADER.unpack(header)[0]))
        stage(parent_stage)
        if method == "open":
            subject = f"model `{args[0]}`"
        reply = _answer(lambda: _open(*args) if method == "open" else getattr(checker, method)(*args), subject)
        if method == "open" and reply[0] == "ok":
            checker, reply = reply[1], ("ok", _summary(reply[1]), reply[2])
        data = pickle.dumps(reply)
        replies.write(HEADER.pack(len(data)) + data)
        replies.flush()
        if checker is None:
            break
    if checker is not None:
        checker.close()
    return 0


def _open(path: Path, config) -> Checker:
    from ..checker import Checker

    return Checker.open(path, config)


def _summary(checker: Checker) -> dict:
    """What the parent keeps of an open checker."""
    return {"config": checker.config, "main_images": checker.main_images, "names": tuple(checker.pool.names),
            "random_reaches_data": checker.random_reaches_data}


def _answer(call: Callable[[], Any], subject: str) -> tuple[str, Any, list]:
    """(kind, value, warnings): 'ok' and the value; 'usage', 'fatal' (out of memory) or 'bug' and the one
    line about `subject`."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", BatchcheckWarning)
        try:
            kind, value = "ok", call()
        except OutOfMemory as exc:
            kind, value = "fatal", str(exc)
        except UsageError as exc:
            kind, value = "usage", str(exc)
        except MemoryError:
            kind, value = "fatal", (f"{subject}: ran out of memory during {current_stage()} (--max-memory); "
                                    f"raise --max-memory or check a smaller model")
        except Exception as exc:  # noqa: BLE001 - a bug of ours: one line for the parent
            kind, value = "bug", (f"{subject}: internal error during {current_stage()}: {type(exc).__name__}: "
                                  f"{first_line(exc)} (please report it)")
    shown = [(w.category, str(w.message)) for w in caught if issubclass(w.category, BatchcheckWarning)]
    return kind, value, shown


if __name__ == "__main__":
    enter_child()
    sys.exit(_serve())
