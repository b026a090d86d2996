"""Every exception batchcheck raises, and the exit codes.

Roots: `UsageError` for what the user can fix (exit 2, one line), `BatchcheckBug` for ours (exit 3).
A model that fails its check is not an error but a verdict (exit 1); in tests it surfaces as
`NotInvariant` (`assert_invariant`), `PlanDiverged` (fuzzing) or `ModelFailure` (a `--graph` item).
"""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Iterable

EXIT_INVARIANT = 0
EXIT_DIVERGENT = 1
EXIT_UNTESTABLE = 2
EXIT_INTERNAL = 3


class UsageError(Exception):
    """The model, an image, a node name or an option cannot be used: one line saying what and what to do."""


class BatchFailed(UsageError):
    """The model failed on a batch at `node` (None: the runtime did not say where), with the runtime's message."""

    def __init__(self, line: str, node: str | None, message: str) -> None:
        super().__init__(line)
        self.node, self.message = node, message


class OutOfMemory(UsageError):
    """The model ran out of memory (TensorFlow refused an allocation under --max-memory): the check stops."""


class UnreadableImage(UsageError):
    """An image file that cannot be used: its path and why (a FIFO, truncated, over the pixel cap…)."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"image `{path}`: not an image Pillow can read ({reason})")
        self.path, self.reason = path, reason


class ChildStopped(UsageError):
    """The model's child process crashed, hung or ran out of memory during `stage`; it is gone."""

    def __init__(self, message: str, stage: str) -> None:
        super().__init__(message)
        self.stage = stage


class BatchcheckBug(Exception):
    """Something went wrong inside batchcheck itself; please report it."""


class BatchcheckWarning(UserWarning):
    """Something the user should know that does not stop the check (a skipped image, a flagged op)."""


class NodeFailed(Exception):
    """A backend's session failed on a batch at `node` (None: the runtime did not say where), with the runtime's
    message; the runner turns it into a batch limit or a `UsageError`, so it never reaches the user as is."""

    def __init__(self, node: str | None, message: str) -> None:
        super().__init__(message)
        self.node, self.message = node, message


class NotInvariant(AssertionError):
    """A model is batch-dependent or nondeterministic (raised by `assert_invariant`); the message is the report."""


class PlanDiverged(AssertionError):
    """The probe's row diverged in a plan; `outcome` (a `plans.PlanOutcome`) holds the plan and the divergent
    tensors."""

    def __init__(self, describe: str, outcome: Any) -> None:
        super().__init__(f"{describe}: {len(outcome.divergent)} tensors diverge")
        self.outcome = outcome


class ModelFailure(Exception):
    """A `--graph` item failed; the message is the whole report."""


class BaselineNotice(UserWarning):
    """A model improved on its baseline; refresh it with --graph-update-baseline to lock the gain in."""


class InvalidOption(UsageError):
    """A configuration field holds a value it cannot take; the front end names the flag that set it."""

    def __init__(self, field: str, value: Any, reason: str) -> None:
        super().__init__(f"{field}={value!r}: {reason}")
        self.field, self.value, self.reason = field, value, reason


def check_field(condition: Any, field: str, value: Any, reason: str) -> None:
    """Raise `InvalidOption(field, value, reason)` unless `condition` holds."""
    if not condition:
        raise InvalidOption(field, value, reason)


def check_argument(condition: Any, message: str, *args: Any) -> None:
    """Raise `UsageError(message.format(*args))` unless `condition` holds."""
    if not condition:
        raise UsageError(message.format(*args))


def first_line(exc: BaseException) -> str:
    """The first line of an exception's text, short enough for a one-line message."""
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


def one_line(text: str) -> str:
    """`text` with newlines and other control characters escaped, so a name holding them keeps a message on one line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """`'; did you mean `x`?'` for the closest known names (spelling, then names containing `name` or
    ending in the same part), or an empty string."""
    known = list(known)
    lowered, last = name.lower(), name.lower().rsplit("/", 1)[-1]
    close = (difflib.get_close_matches(name, known, n=3, cutoff=0.6)
             or [k for k in known if lowered in k.lower()][:3]
             or [k for k in known if k.lower().rsplit("/", 1)[-1] == last][:3])
    return f"; did you mean {' or '.join(f'`{c}`' for c in close)}?" if close else ""


def names_list(names: Iterable[str], most: int = 6) -> str:
    """'`a`, `b` and 3 more' for a one-line message."""
    names = list(names)
    shown = ", ".join(f"`{n}`" for n in names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "") if names else "none"
