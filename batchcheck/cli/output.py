"""What every command's output shares: the `--json` option, a status spinner and a progress bar that
draw only on a terminal (logs stay clean)."""
from __future__ import annotations

import contextlib
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
