"""`batchcheck inspect MODEL`: list the model's image input, placeholders (dtype, shape, default), outputs,
BatchNorm nodes and layers, so that --input, --output and --feed names are never guesswork.
Exit 0 when listed, 2 when the model cannot be read (one line on stderr), 3 internal error."""
from __future__ import annotations

import argparse
import sys

from ..options import add_check_options, argparse_groups, config_from_options
from .output import (
    STDOUT,
    add_json_option,
    add_model_argument,
    checked_json_path,
    status,
    write_json,
)

HELP = "list a model's input, placeholders, outputs, BatchNorm nodes and layers"
MAX_ROWS = 40
WIDE = 160  # columns when writing to a file or a pipe: node names are long


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_argument(parser)
    groups = argparse_groups(parser)
    add_check_options(parser.add_argument, command="inspect", group=groups)
    add_json_option(groups("output"))
    groups("output")("--all-layers", action="store_true", help=f"list every layer (default: the first {MAX_ROWS})")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from ..inspect import inspect_model

    config = config_from_options(lambda dest: getattr(args, dest, None))
    json_path = checked_json_path(args.json)
    console = Console(file=sys.stdout, highlight=False, width=None if sys.stdout.isatty() else WIDE,
                      quiet=json_path == STDOUT)
    with status(console, "loading the model…"):
        inventory = inspect_model(args.model, config)
    out = lambda text="": console.print(text, highlight=False, soft_wrap=True)  # noqa: E731
    out(f"[bold]batchcheck inspect[/] {escape(inventory.path)} ({inventory.format}, {inventory.nodes} nodes)")
    if inventory.input:
        shape = "×".join(map(str, inventory.per_image_shape or []))
        out(f"  input    {escape(inventory.input)}, per image {shape} ({inventory.input_note})")
    else:
        out(f"  input    none chosen: {escape(inventory.input_note)}")
    out(f"  outputs  {escape(', '.join(inventory.outputs)) or 'none declared'}")
    out()
    if inventory.placeholders:
        table = Table(title="placeholders", title_justify="left", show_edge=False, pad_edge=False)
        for column in ("name", "op", "dtype", "shape", "default", "role"):
            table.add_column(column)
        for p in inventory.placeholders:
            table.add_row(escape(p.name), p.op, p.dtype, p.shape, escape(p.default or "– (must be fed)"), p.role)
        console.print(table)
    else:
        out("placeholders: none (the input must be named with --input)")
    if inventory.batchnorms:
        table = Table(title=f"BatchNorm nodes ({len(inventory.batchnorms)})", title_justify="left",
                      show_edge=False, pad_edge=False)
        for column in ("node", "op", "kind", "mode", "mode from"):
            table.add_column(column)
        for bn in inventory.batchnorms:
            mode = "per-sample" if bn.per_sample else "training" if bn.training else "inference"
            table.add_row(escape(bn.node), bn.op, bn.kind, mode, escape(bn.mode_from), style="red" if bn.training
                          and not bn.per_sample else None)
        console.print(table)
    layers = inventory.layers if args.all_layers else inventory.layers[:MAX_ROWS]
    more = f"; {len(inventory.layers) - len(layers)} more with --all-layers" if len(layers) < len(inventory.layers) else ""
    out(f"layers ({len(inventory.layers)}{more}): " + ", ".join(f"{escape(r['layer'])} ({r['nodes']})" for r in layers))
    if json_path is not None:
        write_json(json_path, inventory.to_json())
    return 0
