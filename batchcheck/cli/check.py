"""`batchcheck check MODEL`: exit 0 invariant, 1 batch-dependent or nondeterministic,
2 cannot be tested (one line on stderr says why and what to do), 3 internal error."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..options import add_check_options, argparse_groups, config_from_options
from .output import add_json_option, checked_json_path, progress_callback, status

HELP = "check one model for batch invariance"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=Path, help="frozen .pb/.pbtxt, SavedModel folder, .keras/.h5, or .meta")
    groups = argparse_groups(parser)
    add_check_options(parser.add_argument, group=groups)
    add_json_option(groups("output"))
    groups("output")("--all-layers", action="store_true", help="list every layer in the table (default: the 16 "
                     "most telling)")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from ..check import Checker
    from ..report.terminal import print_report

    config = config_from_options(lambda dest: getattr(args, dest))
    json_path = checked_json_path(args.json)
    console = Console(file=sys.stdout, highlight=False)
    with status(console, "loading and analysing the model…"):
        checker = Checker.open(args.model, config)
    result = checker.check(progress=progress_callback(console))
    print_report(result, console, all_layers=args.all_layers)
    if json_path is not None:
        result.write_json(json_path)
    return result.exit_code
