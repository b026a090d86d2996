"""`batchcheck check a.pb b.pb 'zoo/*.pb'`: several models one after the other, each with its own report,
then one summary table; the exit code is the worst of theirs. `--json` then holds `{"models": [...]}`
(each a report as for one model, or an error report) and `--markdown` one row per model."""
from __future__ import annotations

import argparse
import copy
import glob
import json
import sys
import tempfile
from pathlib import Path

from ..errors import EXIT_INTERNAL, EXIT_UNTESTABLE, UsageError, one_line
from ..options import CheckConfig, option_args
from ..safety.supervise import limits_of, relay, run_child, supervising
from ..serial import SCHEMA
from .output import STDOUT, write_json

GLOB_CHARS = frozenset("*?[")
WORST_FIRST = (EXIT_INTERNAL, EXIT_UNTESTABLE, 1, 0)
WIDE, REASON = 160, 70  # columns when not on a terminal; characters of an error shown in the table


def expand_models(patterns: list[str]) -> list[Path]:
    """The models named, globs expanded (quoted ones too), each once, in order; `UsageError` for a glob that
    matches nothing."""
    found: dict[Path, None] = {}
    for pattern in patterns:
        if GLOB_CHARS & set(pattern):
            matches = sorted(glob.glob(pattern, recursive=True))
            if not matches:
                raise UsageError(f"model `{pattern}`: the pattern matches no file or folder")
            found.update(dict.fromkeys(map(Path, matches)))
        else:
            found[Path(pattern)] = None
    return list(found)


def check_many(args: argparse.Namespace, models: list[Path], config: CheckConfig, json_path: Path | None,
               check_one) -> int:
    """Check `models` one by one (`check_one(args)` for one, in this process or a supervised child), print
    the summary, write the combined reports; the worst exit code."""
    from ..report.markdown import write_markdown
    from ..report.summary import error_report

    for flag in ("html", "plot"):
        if getattr(args, flag) is not None:
            raise UsageError(f"--{flag}: one page per model needs one model per call; for several, use "
                             f"pytest --graph MODEL… --graph-html DIR (a page per model and an index)")
    reports, codes = [], []
    with tempfile.TemporaryDirectory(prefix="batchcheck-") as scratch:
        for number, model in enumerate(models):
            if json_path != STDOUT and number:
                print()
            report_file = Path(scratch) / f"{number}.json"
            code = _check_model(args, model, config, report_file, check_one)
            codes.append(code)
            reports.append(json.loads(report_file.read_text()) if report_file.exists() and report_file.stat().st_size
                           else error_report(str(model), f"ended with exit {code}", "check"))
    if json_path != STDOUT:
        _print_summary(models, reports, codes)
    if json_path is not None:
        write_json(json_path, json.dumps({"schema": SCHEMA, "models": reports}, indent=2) + "\n")
    if args.markdown is not None:
        write_markdown(args.markdown, [(str(model), None, report) for model, report in zip(models, reports)])
    return min(codes, key=WORST_FIRST.index)


def _check_model(args: argparse.Namespace, model: Path, config: CheckConfig, report_file: Path, check_one) -> int:
    """One model's check, its JSON report written to `report_file`; its exit code (a user error is its line)."""
    flags = [flag for flag, on in (("--all-layers", args.all_layers), ("--quiet", args.quiet or args.json == STDOUT))
             if on]
    if supervising():
        argv = ["batchcheck", "check", str(model), *option_args(config), *flags, "--json", str(report_file)]
        return relay(run_child(argv, limits_of(config), f"model `{model}`", relay_stdout=args.json != STDOUT))
    one = copy.copy(args)
    one.model, one.json, one.markdown = model, report_file, None
    one.quiet = bool("--quiet" in flags)
    try:
        return check_one(one)
    except UsageError as exc:
        print(f"batchcheck: {one_line(str(exc))}", file=sys.stderr)
        return EXIT_UNTESTABLE


def _print_summary(models: list[Path], reports: list[dict], codes: list[int]) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from ..report.summary import summarize

    table = Table(title=f"{len(models)} models", title_justify="left", show_edge=False, pad_edge=False)
    for column in ("model", "verdict", "first divergent layer", "cause", "exit"):
        table.add_column(column)
    for model, report, code in zip(models, reports, codes):
        summary = summarize(report)
        reason = summary.reason
        if reason is not None and len(reason) > REASON:
            reason = reason[:REASON] + "…"
        table.add_row(escape(str(model)), summary.verdict, escape(summary.culprit or reason or "–"),
                      summary.cause or "–", str(code), style=None if code == 0 else "red")
    console = Console(file=sys.stdout, highlight=False, width=None if sys.stdout.isatty() else WIDE)
    console.print()
    console.print(table)
