"""`batchcheck check MODEL`: exit 0 invariant, 1 batch-dependent or nondeterministic,
2 cannot be tested (one line on stderr says why and what to do), 3 internal error."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .errors import EXIT_INTERNAL, EXIT_UNTESTABLE, BatchcheckBug, UsageError, first_line
from .options import add_check_options, config_from_options


class _OneLineParser(argparse.ArgumentParser):
    """argparse that reports a usage error on one line and exits 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_UNTESTABLE, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(prog="batchcheck", description="Check that an image model gives each image "
                            "the same activations whatever batch it runs in.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_OneLineParser)
    check = commands.add_parser("check", help="check one model", description=__doc__)
    check.add_argument("model", type=Path, help="frozen .pb/.pbtxt, SavedModel folder, .keras/.h5, or .meta")
    add_check_options(check.add_argument)
    check.add_argument("--json", type=Path, metavar="PATH", help="write the full result as JSON to PATH")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `batchcheck` command; returns the exit code."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    args = build_parser().parse_args(argv)
    try:
        return run_check(args)
    except UsageError as exc:
        print(f"batchcheck: {exc}", file=sys.stderr)
        return EXIT_UNTESTABLE
    except KeyboardInterrupt:
        print("batchcheck: interrupted", file=sys.stderr)
        return EXIT_INTERNAL
    except (BatchcheckBug, Exception) as exc:  # noqa: BLE001 - the last line of defence: no traceback
        if os.environ.get("BATCHCHECK_DEBUG"):
            raise
        print(f"batchcheck: internal error: {type(exc).__name__}: {first_line(exc)} "
              f"(rerun with BATCHCHECK_DEBUG=1 for the traceback, and please report it)", file=sys.stderr)
        return EXIT_INTERNAL


def run_check(args: argparse.Namespace) -> int:
    from rich.console import Console

    from .check import Checker
    from .report import print_report

    config = config_from_options(lambda dest: getattr(args, dest))
    if args.json is not None and not args.json.parent.is_dir():
        raise UsageError(f"--json {args.json}: folder `{args.json.parent}` does not exist; create it or "
                         f"choose another path")
    console = Console(file=sys.stdout, highlight=False)
    with console.status("loading and analysing the model…") if console.is_terminal else _nothing():
        checker = Checker.open(args.model, config)
    result = checker.check(progress=_progress(console))
    print_report(result, console)
    if args.json is not None:
        result.write_json(args.json)
    return result.exit_code


def _progress(console):
    """A progress callback drawing on a terminal, None otherwise (logs stay clean)."""
    if not console.is_terminal:
        return None
    from rich.progress import Progress

    bar = Progress(console=console, transient=True)
    task = bar.add_task("trials", total=None)
    bar.start()

    def update(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)
        if done == total:
            bar.stop()
    return update


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


if __name__ == "__main__":
    sys.exit(main())
