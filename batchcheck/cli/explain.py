"""`batchcheck explain MODEL [--node NODE]`: what one node does with the batch, measured on real images.

Without --node, explains the first divergent node a short check finds. Exit 0 when the node's output
for an image does not depend on the batch, 1 when it does, 2 when the model or node cannot be used
(one line on stderr says why and what to do), 3 internal error."""
from __future__ import annotations

import argparse
import json

from ..options import add_check_options, argparse_groups
from .command import run_command
from .output import add_json_option, add_model_argument
from .reports import add_report_options

HELP = "explain one node (default: the first divergent one): BatchNorm statistics by hand, rows mixed"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_argument(parser)
    parser.add_argument("--node", metavar="NAME", help="node to explain (default: the first divergent node)")
    groups = argparse_groups(parser)
    add_check_options(parser.add_argument, command="explain", group=groups)
    add_json_option(groups("output"))
    add_report_options(groups("output"), plot=False)


def run(args: argparse.Namespace) -> int:
    from ..explain import explain

    return run_command(args, "loading the model and running it…",
                       lambda config: explain(args.model, config, args.node), print_explanation, kind="explain")


def print_explanation(result, console) -> None:
    """The node, its parameters or attributes, the figures and the one-line conclusion."""
    from rich.markup import escape

    out = lambda text="": console.print(text, highlight=False, soft_wrap=True)  # noqa: E731
    if result.node:
        out(f"[bold]{escape(result.node)}[/] ({result.op}, {result.kind}) in layer `{escape(result.layer)}`")
    for title, values in (("parameters", result.parameters), ("attributes", result.attributes),
                          ("figures", result.figures)):
        if values:
            out(f"  {title}")
            for key, value in values.items():
                out(f"    {key:<30} {escape(_text(value))}")
    out(f"[bold]{escape(result.conclusion)}[/]")


def _text(value) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} {_text(v)}" for k, v in value.items())
    if isinstance(value, float):
        return f"{value:.4g}"
    return json.dumps(value) if isinstance(value, (list, tuple)) else str(value)
