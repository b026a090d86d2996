"""`batchcheck COMMAND`: exit 0 invariant (or clean), 1 batch-dependent or nondeterministic (or an error
finding), 2 cannot be tested (one line on stderr says why and what to do), 3 internal error.

Each command is a module of this package with `HELP`, `add_arguments(parser)` and `run(args) -> int`.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings
from typing import Callable

from ..errors import (
    EXIT_INTERNAL,
    EXIT_UNTESTABLE,
    BatchcheckBug,
    BatchcheckWarning,
    UsageError,
    first_line,
    one_line,
)
from ..safety.supervise import (
    EXIT_INTERRUPTED,
    current_stage,
    enter_child,
    memory_error,
)
from ..version import __version__

COMMANDS = ("check", "lint", "explain", "inspect", "fix")


class _OneLineParser(argparse.ArgumentParser):
    """argparse that reports a usage error on one line and exits 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_UNTESTABLE, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The `batchcheck` parser with one sub-parser per command in `COMMANDS`."""
    parser = _OneLineParser(prog="batchcheck", description="Check that an image model gives each image "
                            "the same activations whatever batch it runs in.")
    parser.add_argument("--version", action="version", version=f"batchcheck {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_OneLineParser)
    for name in COMMANDS:
        module = importlib.import_module(f"{__name__}.{name}")
        sub = commands.add_parser(name, help=module.HELP, description=module.__doc__)
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `batchcheck` command; returns the exit code."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    enter_child()
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    return main_guarded(lambda: args.run(args))


def main_guarded(run: Callable[[], int]) -> int:
    """`run()`'s exit code; any error becomes one line on stderr (2 for the user's, 3 for ours), Ctrl-C 130."""
    with warnings.catch_warnings():
        warnings.showwarning = _one_line_warning
        try:
            return run()
        except UsageError as exc:
            print(f"batchcheck: {one_line(str(exc))}", file=sys.stderr)
            return EXIT_UNTESTABLE
        except KeyboardInterrupt:
            print(f"batchcheck: interrupted during {current_stage()}; the check was stopped", file=sys.stderr)
            return EXIT_INTERRUPTED
        except MemoryError:
            print(f"batchcheck: {memory_error()}", file=sys.stderr)
            return EXIT_UNTESTABLE
        except (BatchcheckBug, Exception) as exc:  # noqa: BLE001 - the last line of defence: no traceback
            if os.environ.get("BATCHCHECK_DEBUG"):
                raise
            print(f"batchcheck: internal error during {current_stage()}: {type(exc).__name__}: "
                  f"{one_line(first_line(exc))} (rerun with BATCHCHECK_DEBUG=1 for the traceback, and please "
                  f"report it)", file=sys.stderr)
            return EXIT_INTERNAL


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """batchcheck's warnings (skipped images, animations…) as one line each; other libraries' are dropped."""
    if issubclass(category, BatchcheckWarning):
        print(f"batchcheck: warning: {one_line(str(message))}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
