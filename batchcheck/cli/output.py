"""What every command's output shares: the `--json` option, a status spinner and a progress bar that
draw only on a terminal (logs stay clean)."""
from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import Any, Callable, ContextManager

from ..errors import UsageError

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
    parser.add_argument("model", type=Path, help="frozen .pb/.pbtxt, SavedModel folder, .keras/.h5, or .meta")


def run_command(args: argparse.Namespace, message: str, compute: Callable, show: Callable, kind: str, *,
                runs_model: bool = True) -> int:
    """The shape of a one-result command (`kind`: lint, explain, fix): options to a config (options the command
    lacks keep their defaults), the output paths checked first, then (when `runs_model`, in a supervised child)
    `compute(config)` under a spinner, `show(result, console)`, the JSON and any `--html`/`--markdown` written
    (an error report when `compute` fails); returns the exit code."""
    from rich.console import Console

    from ..options import config_from_options
    from ..report.summary import error_report
    from ..safety.supervise import current_stage, supervising
    from .reports import checked_report_paths, error_reason, write_error_reports, write_reports
    from .supervised import run_supervised

    config = config_from_options(lambda dest: getattr(args, dest, None))
    json_path = checked_json_path(args.json)
    checked_report_paths(args)
    if runs_model and supervising():
        return run_supervised(args, config, json_path, kind=kind)
    console = Console(file=sys.stdout, highlight=False, quiet=json_path == STDOUT)
    try:
        with status(console, message):
            result = compute(config)
    except BaseException as exc:  # the reports still say why; then the one-line error (exit 2, 3 or 130) as usual
        write_error_reports(args, json_path, error_report(str(args.model), error_reason(exc), current_stage()),
                            kind=kind)
        raise
    show(result, console)
    if json_path is not None:
        write_json(json_path, result.to_json())
    write_reports(args, result.to_dict(), label=str(args.model), kind=kind)
    return result.exit_code
