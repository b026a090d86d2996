"""`batchcheck fix MODEL -o OUT`: rewrite a batch-dependent graph for inference (BatchNorm in training
mode → inference statistics, dropout → identity, training flags → constants), optionally fold BatchNorm
into the weights, and prove the result; written as a frozen GraphDef, or as ONNX for an ONNX model. Exit 0
written and proven, 1 written but a proof step failed, 2 cannot be fixed (one line on stderr says why and
what to do), 3 internal error."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..options import add_check_options, argparse_groups
from .command import run_command
from .output import add_json_option, add_model_argument
from .reports import add_report_options

HELP = "rewrite a model for inference (BN, dropout, flags), fold BN, and prove it"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_argument(parser)
    groups = argparse_groups(parser)
    repair = groups("repair")
    repair("-o", "--out", type=Path, required=True, metavar="OUT",
           help="where to write the fixed model: a frozen GraphDef (.pb), or an .onnx file for an ONNX model")
    repair("--calibrate", type=Path, metavar="DIR",
           help="recompute missing BatchNorm statistics over the images in DIR, layer by layer")
    repair("--fold-bn", action="store_true",
           help="fold inference BatchNorm into the Conv2D/DepthwiseConv2dNative/MatMul (ONNX: Conv/Gemm) before it")
    repair("--repeats", type=int, default=10, metavar="N",
           help="timed forward passes per latency figure, after 2 warm-up passes (default 10)")
    add_check_options(parser.add_argument, command="fix", group=groups)
    add_json_option(groups("output"))
    add_report_options(groups("output"), plot=False)


def run(args: argparse.Namespace) -> int:
    from ..repair import fix
    from ..report.fix import print_fix_report

    return run_command(args, "rewriting, re-checking and timing…",
                       lambda config: fix(args.model, args.out, config, calibrate=args.calibrate,
                                          fold_bn=args.fold_bn, repeats=args.repeats),
                       print_fix_report, kind="fix")
