"""Long-stage notices: while a supervised child stays in one stage for long, the parent says so on stderr,
naming the stage and what the child is doing there, so a user can tell a slow model from a hung one long
before `--timeout` stops it.

The child reports `stage\\tdetail` lines over its stage pipe (`stage_line`); the parent keeps a `StageClock`.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from ..errors import UsageError

SLOW_STAGE_ENV = "BATCHCHECK_SLOW_STAGE_SECONDS"  # first notice after this long in one stage (0: never)
DEFAULT_SLOW_STAGE = 60.0
REPEAT_FACTOR = 5  # later notices every REPEAT_FACTOR × the first's delay (60 s, then every 5 min)
HANG_KINDS = ("while loop", "queue")  # flagged constructs that can wait forever
NAMED_SUSPECTS = 2


def slow_stage_seconds() -> float:
    """The first notice's delay: `BATCHCHECK_SLOW_STAGE_SECONDS`, else 60 s."""
    text = os.environ.get(SLOW_STAGE_ENV, "")
    try:
        seconds = float(text) if text.strip() else DEFAULT_SLOW_STAGE
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:
        raise UsageError(f"{SLOW_STAGE_ENV}={text!r}: give seconds of at least 0 (0 = no notices)")
    return seconds


def stage_line(name: str, detail: str = "") -> str:
    """The line a child writes on its stage pipe (a detail's tabs and newlines become spaces)."""
    return f"{name}\t{' '.join(detail.split())}" if detail else name


def parse_stage_line(line: str) -> tuple[str, str]:
    """(stage, detail) from a `stage_line`."""
    name, _, detail = line.partition("\t")
    return name, detail


def doing(what: str, flagged) -> str:
    """'running the graph on one image; it holds while loop `loop/LoopCond`': `what` a stage does, and the
    flagged constructs (`safety.scan.Finding`) that can wait forever."""
    suspects = [f"{finding.kind} `{finding.node}`" for finding in flagged if finding.kind in HANG_KINDS]
    if not suspects:
        return what
    more = f" and {len(suspects) - NAMED_SUSPECTS} more" if len(suspects) > NAMED_SUSPECTS else ""
    return f"{what}; it holds {', '.join(suspects[:NAMED_SUSPECTS])}{more}"


@dataclass
class StageClock:
    """How long the child has been in its current stage, and when to say so."""
    first_notice: float  # seconds in one stage before the first notice (0: never)
    name: str = "starting"
    detail: str = ""
    since: float = field(default_factory=time.monotonic)
    notices: int = 0

    def enter(self, line: str, now: float) -> None:
        """The child reported `line`: a new stage restarts the clock; the same stage may refine its detail."""
        name, detail = parse_stage_line(line)
        if name != self.name:
            self.name, self.since, self.notices = name, now, 0
        self.detail = detail

    def notice(self, now: float, timeout: float, started: float) -> str | None:
        """The notice due at `now` (one line without the `batchcheck: ` prefix), or None."""
        if not self.first_notice:
            return None
        waited = now - self.since
        due = self.first_notice * (1 + REPEAT_FACTOR * self.notices)
        if waited < due:
            return None
        self.notices += 1
        detail = f" ({self.detail})" if self.detail else ""
        stops = (f"--timeout {timeout:g} stops it in {timeout - (now - started):.0f} s" if timeout else
                 "no --timeout: only Ctrl-C stops it")
        return f"still in {self.name} after {waited:.0f} s{detail}: a slow model or a hang; {stops}"
