"""`batchcheck lint MODEL`: a static audit of BatchNorm, dropout, training flags and batch-axis arithmetic,
no images needed. Exit 0 when no finding is an error, 1 when one is, 2 when the model cannot be linted
(one line on stderr says why and what to do), 3 internal error."""
from __future__ import annotations

import argparse

from ..options import add_check_options, argparse_groups
from .command import run_command
from .output import add_json_option, add_model_argument
from .reports import add_report_options

HELP = "audit a model's BatchNorm, dropout and flags statically (no images)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_argument(parser)
    groups = argparse_groups(parser)
    add_check_options(parser.add_argument, command="lint", group=groups)
    groups("output")("--confirm", action="store_true",
                     help="run each runtime-confirmable finding once (a batch of two images, supervised as "
                          "check is) and set `confirmed` true/false")
    add_json_option(groups("output"))
    add_report_options(groups("output"), plot=False)


def run(args: argparse.Namespace) -> int:
    from ..lint import lint

    return run_command(args, "loading and reading the model…",
                       lambda config: lint(args.model, config, confirm=args.confirm), print_lint, kind="lint",
                       runs_model=args.confirm)


def print_lint(result, console) -> None:
    """Findings for people: severity, kind, node, what is wrong and the fix."""
    from rich.markup import escape

    out = lambda text="": console.print(text, highlight=False, soft_wrap=True)  # noqa: E731
    model = result.model
    out(f"[bold]batchcheck lint[/] {escape(model.path)} ({model.format})")
    out(f"  input    {escape(model.input)} {model.input_dtype}, per image "
        f"{'×'.join(map(str, model.per_image_shape))}")
    out(f"  outputs  {escape(', '.join(model.outputs))}")
    flags = ", ".join(f"{name}={value}" for name, value in model.flags.items()) or "none"
    out(f"  {model.nodes} nodes, {model.batchnorms} BatchNorm(s), flags: {escape(flags)}")
    out()
    colours = {"error": "red", "warning": "yellow", "info": "cyan"}
    for finding in result.findings:
        confirmed = {None: "", True: " (confirmed)", False: " (not confirmed on a batch of two)"}[finding.confirmed]
        out(f"[{colours[finding.severity]}]{finding.severity:<8}[/] {finding.kind}  `{escape(finding.node)}` "
            f"({finding.op}){confirmed}")
        out(f"         {escape(finding.message)}")
        out(f"         fix: {escape(finding.fix)}")
    counts = {s: sum(f.severity == s for f in result.findings) for s in colours}
    summary = ", ".join(f"{n} {s}{'s' if n != 1 else ''}" for s, n in counts.items())
    out(f"[bold {'red' if counts['error'] else 'green'}]{'FAIL' if counts['error'] else 'OK'}[/] {summary}")
