"""What every command's output shares: the `--json` option, a status spinner and a progress bar that
draw only on a terminal (logs stay clean)."""
from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import Any, Callable, ContextManager

from ..errors import UsageError


def add_json_option(add_argument: Callable[..., Any]) -> None:
    add_argument("--json", type=Path, metavar="PATH", help="write the full result as JSON to PATH")


def checked_json_path(path: Path | None) -> Path | None:
    """`path` if its folder exists (checked before any work is done), else `UsageError`."""
    if path is not None and not path.parent.is_dir():
        raise UsageError(f"--json {path}: folder `{path.parent}` does not exist; create it or choose another path")
    return path


def status(console, message: str) -> ContextManager:
    """A spinner with `message` on a terminal; nothing otherwise."""
    return console.status(message) if console.is_terminal else contextlib.nullcontext()


def progress_callback(console) -> Callable[[int, int], None] | None:
    """A `progress(done, total)` callback drawing a bar on a terminal, None otherwise."""
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


def add_model_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=Path, help="frozen .pb/.pbtxt, SavedModel folder, .keras/.h5, or .meta")


def run_command(args: argparse.Namespace, message: str, compute: Callable, show: Callable) -> int:
    """The shape of a one-result command: options to a config (options the command lacks keep their
    defaults), the --json folder checked first, `compute(config)` under a spinner, `show(result, console)`,
    the JSON written; returns the result's exit code."""
    from rich.console import Console

    from ..options import config_from_options

    config = config_from_options(lambda dest: getattr(args, dest, None))
    json_path = checked_json_path(args.json)
    console = Console(file=sys.stdout, highlight=False)
    with status(console, message):
        result = compute(config)
    show(result, console)
    if json_path is not None:
        result.write_json(json_path)
    return result.exit_code
