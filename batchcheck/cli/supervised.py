"""Every command that runs the model runs it supervised (`safety/supervise.py`): the parent starts the same
command line again in a child process, under `--timeout` and `--max-memory`, and relays its output and exit
code. A child that is stopped or crashes gives one line naming the stage, exit 2, and reports that say why."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..options import CheckConfig
from ..safety.supervise import limits_of, relay, run_child
from .reports import write_error_reports


def run_supervised(args: argparse.Namespace, config: CheckConfig, json_path: Path | None, *, kind: str = "check",
                   command: str | None = None) -> int:
    """Run `batchcheck` with this call's arguments (`args.argv`) in a supervised child; its exit code. A child
    stopped or crashed wrote no report, so the reports (`--json`, `--html`, `--markdown`) say why here."""
    from ..report.summary import error_report

    child = run_child(["batchcheck", *args.argv], limits_of(config), f"model `{args.model}`")
    if child.failure:
        write_error_reports(args, json_path, error_report(str(args.model), child.failure, child.stage), kind=kind,
                            command=command)
    return relay(child)
