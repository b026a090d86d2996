"""The benchmark's child roles, each run in its own process by `bench_check.py --role NAME`:
freeze (the model), plain (forward passes only), batchcheck (the real command, profiled) and naive."""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from profiling import (
    MB,
    PROFILED,
    Profiled,
    Profiler,
    RssSampler,
    maxrss_bytes,
    plan_dict,
    rss_bytes,
)

REPO = Path(__file__).resolve().parent.parent  # the fixtures always come from this checkout


def _import_tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    return tf


def load_meta(pb: Path) -> dict:
    return json.loads(pb.with_suffix(".json").read_text())


def pool_and_plans(meta: dict, batch_sizes: tuple[int, ...] | None, trials: int):
    """The check's image pool and its seeded trial plans, exactly as `Checker.open` builds them for a
    synthetic pool (`draw_plans`), without loading the model through batchcheck. `batch_sizes` None:
    the check's default sizes, as without `--batch-sizes`."""
    import numpy as np

    from batchcheck.load.images import special_pool, synthetic_pool
    from batchcheck.options import CheckConfig
    from batchcheck.plans import draw_plans

    config = CheckConfig(batch_sizes=batch_sizes, trials=trials)
    shape = tuple(meta["per_image_shape"])
    main = synthetic_pool(shape, np.dtype(np.float32), config.scaling, config.seed)
    pool = main + special_pool(shape, np.dtype(np.float32), config.scaling)
    return pool, [plan for plan, _seed in draw_plans(config, len(main), len(pool))]


def _load_session(pb: Path, meta: dict):
    """(import tensorflow seconds, load seconds, graph, session, input, output) of the frozen model."""
    t0 = time.perf_counter()
    tf = _import_tf()
    t1 = time.perf_counter()
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(pb.read_bytes())
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(graph_def, name="")
    session = tf.compat.v1.Session(graph=graph)
    x, y = graph.get_tensor_by_name(meta["input"]), graph.get_tensor_by_name(meta["output"])
    return t1 - t0, time.perf_counter() - t1, graph, session, x, y


def _digest(package: Path) -> str:
    """A short hash of the package's sources, to tie figures to the code measured (it is often uncommitted)."""
    digest = hashlib.sha1()
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode() + path.read_bytes())
    return digest.hexdigest()[:10]


def finish(result: dict, path: Path, started: float) -> None:
    """Add the child's wall time, peak RSS and CPU time to `result` and write it to `path`."""
    result["child_wall_s"] = time.perf_counter() - started
    result["maxrss_bytes"] = maxrss_bytes()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result["cpu_s"] = usage.ru_utime + usage.ru_stime
    path.write_text(json.dumps(result, indent=1))


def freeze_keras_application(name: str, size: int, pb: Path, **options) -> dict:
    """`keras.applications.NAME(weights=None, input_shape=(size, size, 3), **options)` with seeded random
    weights (nothing is downloaded), frozen for inference to `pb`; its meta is written beside it as .json
    and returned."""
    tf = _import_tf()
    import keras
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    keras.utils.set_random_seed(0)
    model = getattr(keras.applications, name)(input_shape=(size, size, 3), weights=None, **options)
    spec = tf.TensorSpec((None, size, size, 3), tf.float32, name="input")
    function = tf.function(lambda x: model(x, training=False))
    frozen = convert_variables_to_constants_v2(function.get_concrete_function(spec))
    graph_def = frozen.graph.as_graph_def()
    pb.write_bytes(graph_def.SerializeToString())
    inputs = [t.name for t in frozen.inputs if t.dtype != tf.resource]
    meta = {"input": inputs[0], "output": frozen.outputs[0].name, "per_image_shape": [size, size, 3],
            "application": name, **options, "size": size, "nodes": len(graph_def.node),
            "params": int(model.count_params()), "tensorflow": tf.__version__, "keras": keras.__version__}
    pb.with_suffix(".json").write_text(json.dumps(meta, indent=1))
    return meta


def freeze_deeplab_core(size: int, pb: Path, depth_multiplier: float) -> dict:
    """`fixtures.deeplab_core` (DeepLabV3 MobileNetV2, output stride 8, seeded random weights) on a
    `sub_7` of `size` px, frozen to `pb`; its meta is written beside it as .json and returned."""
    tf = _import_tf()
    sys.path.insert(0, str(REPO))
    from fixtures.deeplab_core import write_deeplab_core

    meta = write_deeplab_core(pb, size=size, depth_multiplier=depth_multiplier)
    meta.update(depth_multiplier=depth_multiplier, size=size, tensorflow=tf.__version__)
    pb.with_suffix(".json").write_text(json.dumps(meta, indent=1))
    return meta


@dataclass(frozen=True)
class Net:
    """A benchmarked model: its name in the report, how it is frozen at (size, width), the check's
    default setting, and the most each ratio batchcheck / plain may be (`per_trial`, `whole`, `rss`)."""
    label: str
    width_name: str
    freeze: Callable[[int, Path, float], dict]
    width: float
    size: int
    batch: int | None  # the check's --batch-sizes; None: the check's default sizes
    trials: int
    quick: tuple[float, int]  # (width, size) of a smoke run
    targets: dict[str, float]
    naive: bool  # whether the naive approach (every tensor fetched) fits in memory


NETS = {
    "mobilenet_v2": Net("Keras MobileNetV2", "alpha",
                        lambda size, pb, width: freeze_keras_application("MobileNetV2", size, pb, alpha=width),
                        width=1.0, size=224, batch=32, trials=12, quick=(0.35, 96),
                        # issue 7 §5 raised the bar from 1.25, 1.5, 1.5
                        targets={"per_trial": 1.1, "whole": 1.2, "rss": 1.3}, naive=True),
    "deeplab": Net("DeepLabV3 MobileNetV2 core (sub_7 -> ArgMax, output stride 8)", "depth multiplier",
                   freeze_deeplab_core, width=1.0, size=513, batch=None, trials=8, quick=(0.35, 65),
                   targets={"whole": 3.0}, naive=False),  # issue 7 §5
}


def role_freeze(args, started: float) -> dict:
    """The `--net` model with random weights, frozen to `args.model` (plus its meta as .json)."""
    pb = Path(args.model)
    meta = NETS[args.net].freeze(args.size, pb, args.alpha)
    return {"meta": meta, "pb_bytes": pb.stat().st_size}


def role_plain(args, started: float) -> dict:
    """Only the forward passes the check's trials need, fetching only the model output."""
    pb = Path(args.model)
    meta = load_meta(pb)
    import_s, load_s, _graph, session, x, y = _load_session(pb, meta)
    pool, plans = pool_and_plans(meta, args.batch_sizes, args.trials)
    return {"import_tf_s": import_s, "load_s": load_s,
            "trials": timed_plans([([p.probe], p.rows()) for p in plans],
                                  lambda rows: session.run(y, {x: pool.array[rows]})),
            "plans": [plan_dict(p) for p in plans], "rss_end_bytes": rss_bytes()}


def timed_plans(plans: list[tuple[list[int], list[int]]], forward: Callable[[list[int]], object]) -> list[dict]:
    """Each plan's plain forward passes, timed: `forward(rows)` for its probe alone, then for its batch (a plan
    is given as those two lists of pool rows)."""
    trials = []
    for solo, batch in plans:
        c0, t0 = time.process_time(), time.perf_counter()
        forward(solo)
        t1 = time.perf_counter()
        forward(batch)
        t2, c2 = time.perf_counter(), time.process_time()
        trials.append({"solo_s": t1 - t0, "batch_s": t2 - t1, "total_s": t2 - t0, "cpu_s": c2 - c0})
    return trials


def role_batchcheck(args, started: float) -> dict:
    """The real `batchcheck check` command, profiled from outside, then the paired per-trial measurements."""
    t = time.perf_counter()
    from batchcheck.backends.tf.env import import_tf

    import_tf()  # as the CLI imports it (quietly, then gc.freeze())
    return {"import_tf_s": time.perf_counter() - t, **profiled_check(args, started, PROFILED)}


def profiled_check(args, started: float, table: tuple[Profiled, ...]) -> dict:
    """`batchcheck check` of `args.model` through the CLI, each function of `table` timed, then (unless
    `--no-pairs`) the paired per-trial measurements; the figures as a dict."""
    t = time.perf_counter()
    import batchcheck.checker as check_module
    from batchcheck import cli
    import_bc_s = time.perf_counter() - t

    sampler = RssSampler()
    profiler = Profiler(started, sampler)
    profiler.install(table)
    checkers: list = []
    timed_open = check_module.Checker.open

    def open_and_keep(*a, **k):
        checkers.append(timed_open(*a, **k))
        return checkers[-1]

    check_module.Checker.open = open_and_keep
    result_json = Path(args.result).with_suffix(".check.json")
    sizes = ["--batch-sizes", str(args.batch)] if args.batch else []
    argv = ["check", args.model, *sizes, "--trials", str(args.trials), "--json", str(result_json)]
    os.environ["BATCHCHECK_DEBUG"] = "1"  # a crash shows its traceback instead of one line
    os.environ["BATCHCHECK_UNSUPERVISED"] = "1"  # the check itself, in this process (bench_supervise.py measures supervision)
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        exit_code = cli.main(argv)
    sampler.stop()
    check_maxrss = maxrss_bytes()  # the check's own peak, before the extra measurements below
    check_end_s = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    check_cpu_s = usage.ru_utime + usage.ru_stime
    report = json.loads(result_json.read_text())
    profiler.enabled = False
    paired = [] if args.no_pairs else _paired_trials(checkers[0])
    package = Path(check_module.__file__).parent
    return {"import_batchcheck_s": import_bc_s,
            "batchcheck_package": str(package), "batchcheck_digest": _digest(package),
            "argv": argv, "exit_code": exit_code, "verdict": report["verdict"],
            "tolerance": report.get("tolerance"), "compared_tensors": report["model"]["compared_tensors"],
            "screened_tensors": report["model"]["screened_tensors"],
            "graph_nodes": len(checkers[0].runner.index.nodes),
            "report_tail": stdout.getvalue().strip().splitlines()[-6:],
            "events": profiler.events, "rss_end_bytes": rss_bytes(), "check_maxrss_bytes": check_maxrss,
            "check_end_s": check_end_s, "check_cpu_s": check_cpu_s, "paired": paired}


def _paired_trials(checker) -> list[dict]:
    """After the check, in the same process and session: for each screened plan, the plain forward
    passes it needs (`Checker.forward`, outputs only, grappler-optimised like any session) right next
    to the screened trial with a fresh probe (solo cache dropped). Pairs taken seconds apart see the
    same machine load, unlike two processes run one after the other."""
    from batchcheck.result import Mode

    plans = [plan for plan, _seed in checker.default_plans()][1:]
    checker.forward([0])  # compile the forward callable outside the timings
    checker.forward(plans[0].rows())
    pairs = []
    for plan in plans:
        c0, t0 = time.process_time(), time.perf_counter()
        checker.forward([plan.probe])
        checker.forward(plan.rows())
        c1, t1 = time.process_time(), time.perf_counter()
        checker.runner.cached = None  # a fresh probe: the trial pays for its solo run too
        checker.run_plan(plan, Mode.SCREEN)
        c2, t2 = time.process_time(), time.perf_counter()
        pairs.append({"plain_s": t1 - t0, "trial_s": t2 - t1, "plain_cpu_s": c1 - c0, "trial_cpu_s": c2 - c1})
    return pairs


def role_naive(args, started: float) -> dict:
    """Fetch every tensor with `sess.run` alone and in the batch, diff the probe's row in numpy."""
    import numpy as np

    pb = Path(args.model)
    meta = load_meta(pb)
    import_s, load_s, graph, session, x, _y = _load_session(pb, meta)
    t = time.perf_counter()
    downstream, frontier = set(), [x.op]  # every numeric tensor downstream of the input
    while frontier:
        op = frontier.pop()
        for out in op.outputs:
            for consumer in out.consumers():
                if consumer.name not in downstream:
                    downstream.add(consumer.name)
                    frontier.append(consumer)
    tensors = [out for op in graph.get_operations() if op.name in downstream for out in op.outputs
               if out.dtype.is_numpy_compatible and out.dtype.name != "string"]
    load_s += time.perf_counter() - t
    pool, plans = pool_and_plans(meta, args.batch_sizes, args.trials)
    trials = []
    for plan in plans[:args.naive_trials]:
        t0 = time.perf_counter()
        solo = session.run(tensors, {x: pool.array[[plan.probe]]})
        t1 = time.perf_counter()
        batch = session.run(tensors, {x: pool.array[plan.rows()]})
        t2 = time.perf_counter()
        fetched = sum(a.nbytes for a in solo) + sum(a.nbytes for a in batch)
        worst = 0.0
        for a, b in zip(solo, batch):
            if a.ndim and b.ndim and a.shape[0] == 1 and b.shape[0] == plan.batch_size and a.shape[1:] == b.shape[1:]:
                b = b[plan.position:plan.position + 1]
            if a.shape == b.shape and a.size and a.dtype.kind in "fiu":
                worst = max(worst, float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))))
        t3 = time.perf_counter()
        del solo, batch
        trials.append({"solo_s": t1 - t0, "batch_s": t2 - t1, "diff_s": t3 - t2, "total_s": t3 - t0,
                       "fetched_mb": fetched / MB, "max_abs_diff": worst, "maxrss_mb": maxrss_bytes() / MB})
    return {"import_tf_s": import_s, "load_s": load_s, "tensors": len(tensors), "trials": trials,
            "rss_end_bytes": rss_bytes()}


ROLES = {"freeze": role_freeze, "plain": role_plain, "batchcheck": role_batchcheck, "naive": role_naive}
