#!/usr/bin/env python3
"""Before/after figures of `batchcheck fix` on Keras MobileNetV2 1.0 at 224x224 (random, seeded weights with
non-trivial BatchNorm statistics; nothing is downloaded).

Two frozen graphs are made from the same model: the inference export (`model(x, training=False)`: BN as
frozen Mul/Add arithmetic) and a training-mode export (`model(x, training=True)`: every BN normalises with
its batch's moments, the moving statistics are gone). Then, in this one process:

* inference export, `--fold-bn`: BN folded into the convolutions;
* training export, `--calibrate DIR`: BN back to inference mode, statistics recalibrated layer by layer;
* training export, `--calibrate DIR --fold-bn`: both.

Each row is the `FixResult`'s own figures: node and BatchNorm-node counts, median forward latency at
batch 1 and 32 (`--repeats` timed passes after 2 warm-up passes, before and after, same process), the
re-check verdict and the output agreement with the reference.

    python benchmarks/bench_fix.py                        # 224 px, about 3 minutes on 2 cores
    python benchmarks/bench_fix.py --size 96 --alpha 0.35 --repeats 3   # smoke run
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def freeze(size: int, alpha: float, out_dir: Path) -> dict[str, Path]:
    """The inference and training-mode exports of one seeded MobileNetV2, as frozen GraphDefs."""
    from batchcheck.backends.tf.env import import_tf

    tf = import_tf()
    import keras
    import numpy as np
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(alpha=alpha, input_shape=(size, size, 3), weights=None)
    rng = np.random.RandomState(0)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, variance = (w.shape for w in layer.get_weights())
            layer.set_weights([rng.uniform(0.5, 1.5, gamma), rng.normal(0, 0.2, beta),
                               rng.normal(0, 0.3, mean), rng.uniform(0.5, 2.0, variance)])
    spec = tf.TensorSpec((None, size, size, 3), tf.float32, name="input")
    paths = {}
    for mode, training in (("inference", False), ("training", True)):
        # stateless_call traces no moving-statistics updates (AssignVariableOp), so the graph freezes
        function = tf.function(lambda x, training=training: model.stateless_call(
            model.trainable_variables, model.non_trainable_variables, x, training=training)[0])
        frozen = convert_variables_to_constants_v2(function.get_concrete_function(spec))
        paths[mode] = out_dir / f"mobilenet_v2_{mode}.pb"
        paths[mode].write_bytes(frozen.graph.as_graph_def().SerializeToString())
    return paths


def row(label: str, result, seconds: float) -> dict:
    proof = result.proof
    output = proof.outputs[0]
    return {"run": label, "verdict": proof.verdict, "passed": bool(result), "seconds": round(seconds, 1),
            "nodes": (proof.before.nodes, proof.after.nodes),
            "bn_nodes": (proof.before.batchnorm_nodes, proof.after.batchnorm_nodes),
            "batch1_ms": (proof.before.latency_ms[1], proof.after.latency_ms[1]),
            "batch32_ms": (proof.before.latency_ms[32], proof.after.latency_ms[32]),
            "max_abs_diff": output.max_abs_diff, "max_rel_diff": output.max_rel_diff, "top1": output.agreement,
            "rewrites": result.rewrite_counts(), "calibration_images": result.calibration_images}


def markdown(rows: list[dict]) -> str:
    lines = ["| run | nodes | BN nodes | batch 1 ms | batch 32 ms | re-check "
             "| vs reference: max abs (rel) diff, top-1 |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        pair = lambda key, fmt="{:,}": " → ".join(fmt.format(v) for v in r[key])  # noqa: E731
        lines.append(f"| {r['run']} | {pair('nodes')} | {pair('bn_nodes')} | {pair('batch1_ms', '{:.1f}')} | "
                     f"{pair('batch32_ms', '{:.1f}')} | {r['verdict']} | {r['max_abs_diff']:.2g} "
                     f"({r['max_rel_diff']:.2g}), {r['top1']:.0%} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--alpha", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=10, help="timed passes per latency figure")
    parser.add_argument("--calibrate", type=Path, default=ROOT / "fixtures" / "images")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON")
    args = parser.parse_args(argv)

    from batchcheck.options import CheckConfig
    from batchcheck.repair import fix

    config = CheckConfig(trials=4, batch_sizes=(2, 8))
    runs = [("inference export, --fold-bn", "inference", dict(fold_bn=True)),
            ("training export, --calibrate", "training", dict(calibrate=args.calibrate)),
            ("training export, --calibrate --fold-bn", "training", dict(calibrate=args.calibrate, fold_bn=True))]
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        paths = freeze(args.size, args.alpha, Path(folder))
        for label, mode, options in runs:
            started = time.perf_counter()
            result = fix(paths[mode], Path(folder) / "fixed.pb", config, repeats=args.repeats, **options)
            rows.append(row(label, result, time.perf_counter() - started))
            print(f"{label}: {rows[-1]}", flush=True)
    print(f"\nKeras MobileNetV2 alpha={args.alpha:g} at {args.size}x{args.size}, {args.repeats} timed passes per "
          f"figure (median), {os.cpu_count()} CPUs\n")
    print(markdown(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
