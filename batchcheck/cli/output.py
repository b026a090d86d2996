"""What every command's output shares: the `--json` option, a status spinner and a progress bar that
draw only on a terminal (logs stay clean)."""
from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import Any, Callable, ContextManager

from ..errors import UsageError
from ..formats import MODEL_HELP

STDOUT = Path("-")


def add_json_option(add_argument: Callable[..., Any]) -> None:
    add_argument("--json", type=Path, metavar="PATH",
                 help="write the full result as JSON to PATH (`-`: standard output, instead of the report)")


def checked_json_path(path: Path | None) -> Path | None:
    """`path` once it is known to be writable (checked before any work is done, so that a finished result is
    never lost to a bad path), else `UsageError`; `-` is standard output."""
    if path is None or path == STDOUT:
        return path
    if path.is_dir():
        raise UsageError(f"--json {path}: is a folder; give a file path, e.g. {path / 'report.json'}")
    if not path.parent.is_dir():
        raise UsageError(f"--json {path}: folder `{path.parent}` does not exist; create it or choose another path")
    existed = path.exists()
    try:
        with open(path, "a"):
            pass
    except OSError as exc:
        raise UsageError(f"--json {path}: cannot be written ({exc.strerror}); choose another path") from None
    if not existed:
        path.unlink()  # only a probe: the report is written when there is one
    return path


def write_json(path: Path, text: str) -> None:
    """`text` to the `--json` target: a file, or standard output for `-`."""
    if path == STDOUT:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        path.write_text(text)


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
    update.stop = bar.stop  # type: ignore[attr-defined]  # an interrupted run stops the bar and shows the cursor
    return update


def add_model_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=Path, help=MODEL_HELP)
