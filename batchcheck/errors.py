"""Exception roots: `UsageError` for what the user can fix (exit 2), `BatchcheckBug` for ours (exit 3)."""
from __future__ import annotations

import difflib
from typing import Any, Iterable

EXIT_INVARIANT = 0
EXIT_DIVERGENT = 1
EXIT_UNTESTABLE = 2
EXIT_INTERNAL = 3


class UsageError(Exception):
    """The model, an image, a node name or an option cannot be used: one line saying what and what to do."""


class BatchcheckBug(Exception):
    """Something went wrong inside batchcheck itself; please report it."""


class BatchcheckWarning(UserWarning):
    """Something the user should know that does not stop the check (a skipped image, a flagged op)."""


class NotInvariant(AssertionError):
    """A model is batch-dependent or nondeterministic (raised by `assert_invariant`); the message is the report."""


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
    """`'; did you mean `x`?'` for the closest known names, or an empty string."""
    close = difflib.get_close_matches(name, list(known), n=2, cutoff=0.6)
    return f"; did you mean {' or '.join(f'`{c}`' for c in close)}?" if close else ""


def op_error_text(exc: BaseException) -> str:
    """The line of a TensorFlow OpError that says what went wrong, without the graph-execution preamble."""
    lines = [line.strip() for line in getattr(exc, "message", str(exc)).splitlines()]
    useful = [line for line in lines if line and not line.startswith(
        ("Graph execution error", "Detected at node", "File ", "[[", "Node:", "Traceback", "Original stack"))
        and not line.endswith(":")]
    return (useful[0] if useful else first_line(exc))[:200]
