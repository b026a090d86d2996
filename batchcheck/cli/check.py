"""`batchcheck check MODEL…`: exit 0 invariant, 1 batch-dependent or nondeterministic,
2 cannot be tested (one line on stderr says why and what to do), 3 internal error; with several models,
the worst of theirs."""
from __future__ import annotations

import argparse
import sys

from ..errors import EXIT_UNTESTABLE, UsageError
from ..formats import MODEL_HELP
from ..options import add_check_options, argparse_groups, config_from_options
from ..safety.supervise import supervising
from .many import check_many, expand_models
from .output import (
    STDOUT,
    add_json_option,
    checked_json_path,
    progress_callback,
    status,
    write_json,
)
from .reports import (
    add_report_options,
    checked_report_paths,
    error_reason,
    explain_first_root,
    write_error_reports,
    write_reports,
)
from .supervised import run_supervised

HELP = "check models for batch invariance"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("models", nargs="+", metavar="MODEL",
                        help=f"{MODEL_HELP}; several models and quoted "
                             "globs ('zoo/*.pb') are checked one after the other, then summarised")
    groups = argparse_groups(parser)
    add_check_options(parser.add_argument, command="check", group=groups)
    add_json_option(groups("output"))
    add_report_options(groups("output"))
    groups("output")("--all-layers", action="store_true", help="list every layer in the table (default: the 16 "
                     "most telling)")
    groups("output")("--quiet", "-q", action="store_true", help="print the verdict line only")


def run(args: argparse.Namespace) -> int:
    config = config_from_options(lambda dest: getattr(args, dest))
    json_path = checked_json_path(args.json)
    checked_report_paths(args)
    models = expand_models(args.models)
    if len(models) > 1:
        return check_many(args, models, config, json_path, check_one)
    args.model = models[0]
    return check_one(args)


def check_one(args: argparse.Namespace) -> int:
    """`batchcheck check` of the one model `args.model`."""
    from rich.console import Console

    from ..checker import Checker
    from ..report.failure import cli_command
    from ..report.summary import error_report
    from ..report.terminal import print_report, verdict_line

    config = config_from_options(lambda dest: getattr(args, dest))
    json_path = checked_json_path(args.json)
    checked_report_paths(args)
    command, stage = cli_command(args.model, config), "load"
    if supervising():
        return run_supervised(args, config, json_path, command=command)
    quiet = args.quiet or json_path == STDOUT  # JSON on standard output stands alone
    console = Console(file=sys.stdout, highlight=False, quiet=json_path == STDOUT)
    progress = None
    try:
        with status(console, "loading and analysing the model…"):
            checker = Checker.open(args.model, config)
        stage = "check"
        progress = None if quiet else progress_callback(console)
        result = checker.check(progress=progress)
    except BaseException as exc:  # the reports still say why; then the one-line error (exit 2, 3 or 130) as usual
        if progress is not None:
            progress.stop()
        write_error_reports(args, json_path, error_report(str(args.model), error_reason(exc), stage), command=command)
        raise
    if quiet:
        console.print(verdict_line(result), highlight=False, soft_wrap=True)
    else:
        print_report(result, console, all_layers=args.all_layers)
    if json_path is not None:
        write_json(json_path, result.to_json())
    report = result.to_dict()
    explained = explain_first_root(args.model, config, report) if args.html is not None else {}
    write_reports(args, report, label=str(args.model), command=command, explained=explained)
    if result.exit_code == EXIT_UNTESTABLE:  # a pass over too little of the network: the reports say so too
        raise UsageError(result.coverage.message(args.model))
    return result.exit_code
