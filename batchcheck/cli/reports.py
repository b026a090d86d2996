"""The report files a command can write besides `--json`: `--html PATH`, `--plot PATH.svg`, `--markdown PATH`.

A command adds them with `add_report_options(add_argument)`, checks them before any work with
`checked_report_paths(args)`, and writes them from the report dict with `write_reports(...)`, also for
an error report, so that a CI job always has a page that says what happened.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Callable

from ..errors import UsageError, first_line
from ..safety.supervise import memory_error
from .output import write_json


def add_report_options(add_argument: Callable[..., Any], *, plot: bool = True) -> None:
    """Add `--html`, `--plot` (unless `plot` is False: a command with no divergence profile) and `--markdown`."""
    add_argument("--html", type=Path, metavar="PATH",
                 help="write a self-contained HTML page (profile, roots, trials, tensors) to PATH")
    if plot:
        add_argument("--plot", type=Path, metavar="PATH.svg", help="write the divergence profile alone to PATH.svg")
    add_argument("--markdown", type=Path, metavar="PATH",
                 help="write a one-row Markdown summary (for a CI job summary) to PATH")


def checked_report_paths(args: argparse.Namespace) -> None:
    """`UsageError` unless every report path's folder exists and `--plot` ends in .svg."""
    for flag in ("html", "plot", "markdown"):
        path = getattr(args, flag, None)
        if path is not None and not path.parent.is_dir():
            raise UsageError(f"--{flag} {path}: folder `{path.parent}` does not exist; create it or choose "
                             f"another path")
    plot = getattr(args, "plot", None)
    if plot is not None and plot.suffix.lower() != ".svg":
        raise UsageError(f"--plot {plot}: the profile is written as SVG only; give a path ending in .svg "
                         f"(a browser or `rsvg-convert` turns it into PNG)")


def write_reports(args: argparse.Namespace, report: dict, *, label: str, kind: str = "check",
                  command: str | None = None, explained: dict[str, str] | None = None) -> None:
    """Write whichever of `--html`, `--plot` and `--markdown` were given, from `report` (`explained`:
    what `explain` concluded about root nodes, for the page)."""
    from ..report.html import write_html
    from ..report.markdown import write_markdown
    from ..report.profile import write_plot

    if args.html is not None:
        write_html(args.html, report, kind=kind, command=command, explained=explained)
    if getattr(args, "plot", None) is not None and report.get("tensors"):
        write_plot(args.plot, report)
    if args.markdown is not None:
        link = args.html.name if args.html is not None and args.html.parent == args.markdown.parent else None
        write_markdown(args.markdown, [(label, link, report)])


def error_reason(exc: BaseException) -> str:
    """What the reports say about the error `exc` that ended a command."""
    if isinstance(exc, UsageError):
        return str(exc)
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    if isinstance(exc, MemoryError):
        return memory_error()
    return f"internal error: {type(exc).__name__}: {first_line(exc)}"


def write_error_reports(args: argparse.Namespace, json_path: Path | None, report: dict, *, kind: str = "check",
                        command: str | None = None) -> None:
    """A command that ended in an error still leaves its reports: `{"verdict": "error", "error", "stage"}` as
    JSON, and the page and summary that say why."""
    if json_path is not None:
        write_json(json_path, json.dumps(report, indent=2) + "\n")
    write_reports(args, report, label=str(args.model), kind=kind, command=command)


def explain_first_root(model: Path, config, report: dict) -> dict[str, str]:
    """`explain`'s conclusion about the first divergent node (node -> conclusion), for the page; empty when
    there is none or explain cannot measure it (the page then shows the check's hint alone)."""
    from ..explain import explain

    first = report.get("first_divergence")
    if not first:
        return {}
    try:
        return {first["node"]: explain(model, config, first["node"]).conclusion}
    except UsageError:
        return {}
