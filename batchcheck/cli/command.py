"""The shape every one-result command (lint, explain, fix) shares: its options to a config, the output paths
checked first, the work (supervised when it runs the model), the result shown and its reports written."""
from __future__ import annotations

import argparse
import sys
from typing import Callable

from ..options import config_from_options
from ..safety.supervise import current_stage, supervising
from .output import STDOUT, checked_json_path, status, write_json
from .reports import (
    checked_report_paths,
    error_reason,
    write_error_reports,
    write_reports,
)
from .supervised import run_supervised


def run_command(args: argparse.Namespace, message: str, compute: Callable, show: Callable, kind: str, *,
                runs_model: bool = True) -> int:
    """The shape of a one-result command (`kind`: lint, explain, fix): options to a config (options the command
    lacks keep their defaults), the output paths checked first, then (when `runs_model`, in a supervised child)
    `compute(config)` under a spinner, `show(result, console)`, the JSON and any `--html`/`--markdown` written
    (an error report when `compute` fails); returns the exit code."""
    from rich.console import Console

    from ..report.summary import error_report

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
