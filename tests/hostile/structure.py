"""Corpus part two: broken structure, absurd shapes and dtypes, flagged constructs, hangs and memory bombs,
SavedModel and meta graph files holding acting ops."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from fixtures._tf import tf

from .models import (
    ANY_VERDICT,
    QUICK,
    REFUSED,
    SIZE,
    Case,
    _body,
    _graph_def,
    _placed,
    _write,
)

OK_OR_FAIL = frozenset({0, 1})


def _node(graph_def, name: str):
    return next(n for n in graph_def.node if n.name == name)


def _base():
    return _graph_def(_body)


def structure_cases(root: Path) -> list[Case]:
    """Missing inputs, duplicate names, cycles, a 10,000-deep chain, recursion, unknown and empty ops."""
    models = root / "models"
    made: list[tuple[str, object, frozenset[int], tuple[str, ...]]] = []

    g = _base()
    _node(g, "relu").input[0] = "Conv2D_missing"
    made.append(("missing-input", g, REFUSED, ("`relu`", "`Conv2D_missing`", "does not exist")))
    g = _base()
    _node(g, "output").input.append("^ghost")
    made.append(("missing-control-input", g, REFUSED, ("`output`", "`^ghost`", "does not exist")))
    g = _base()
    _node(g, "pool").input[0] = "relu:7"
    made.append(("missing-output-port", g, REFUSED, ()))
    g = _base()
    g.node.append(type(g.node[0])(name="relu", op="Identity", input=["input"], attr={"T": g.node[0].attr["dtype"]}))
    made.append(("duplicate-name", g, REFUSED, ("two nodes are named `relu`",)))
    g = _base()
    _node(g, "Conv2D").input[0] = "relu"
    made.append(("cycle", g, REFUSED, ("cycle",)))
    g = _base()
    _node(g, "relu").op = "TotallyUnknownOp"
    made.append(("unknown-op", g, REFUSED, ("TotallyUnknownOp",)))
    g = _base()
    _node(g, "relu").op = ""
    made.append(("empty-op", g, REFUSED, ()))
    g = _base()
    _node(g, "relu").name = "relu\nsecond line"
    _node(g, "pool").input[0] = "relu\nsecond line"
    made.append(("newline-node-name", g, REFUSED, ("relu\\nsecond line", "not a valid")))
    made.append(("deep-chain-10000", _deep_chain(10_000), ANY_VERDICT, ()))  # slow to analyse: --timeout stops it
    made.append(("recursive-function", _recursive(mutual=False), REFUSED, ("calls itself",)))
    made.append(("mutually-recursive-functions", _recursive(mutual=True), REFUSED, ("calls itself",)))
    made += _shape_cases()
    cases = [Case(name, [str(_write(models / f"{name}.pb", g)), *QUICK], codes, mentions,
                  supervised=name.startswith("deep"))
             for name, g, codes, mentions in made]
    newline_path = models / "name\nwith newline.pb"
    _write(newline_path, _missing_input())
    cases.append(Case("newline-in-path", [str(newline_path), *QUICK], REFUSED, ("name\\nwith newline",)))
    return cases


NESTING_DEPTH = 2000  # AttrValue → func → attr map → AttrValue …, thousands of message levels


def nesting_cases(root: Path) -> list[Case]:
    """Graphs whose attribute values nest thousands of levels deep: as text (the Python text parser recurses
    once per level), in a library function's node, and as binary (protobuf's decoder stops at 100 levels)."""
    models = root / "models"
    nested = "type: DT_FLOAT"
    for _ in range(NESTING_DEPTH):
        nested = f'func {{ name: "f" attr {{ key: "k" value {{ {nested} }} }} }}'
    deep_attr = f'attr {{ key: "deep" value {{ {nested} }} }}'
    texts = {
        "nested-attr.pbtxt": f'node {{ name: "input" op: "Placeholder" attr {{ key: "dtype" value {{ type: DT_FLOAT }} '
                             f'}} {deep_attr} }}',
        "nested-function-attr.pbtxt": f'node {{ name: "input" op: "Placeholder" attr {{ key: "dtype" value {{ type: '
                                      f'DT_FLOAT }} }} }} library {{ function {{ signature {{ name: "f" }} node_def {{ '
                                      f'name: "n" op: "NoOp" {deep_attr} }} }} }}',
    }
    for name, text in texts.items():
        (models / name).write_text(text + "\n")
    graph_def = _base()
    value = _node(graph_def, "relu").attr["deep"]
    for _ in range(NESTING_DEPTH):
        value.func.name = "f"
        value = value.func.attr["k"]
    _write(models / "nested-attr.pb", graph_def)
    return [Case(name, [str(models / name), *QUICK], REFUSED, ("nested too deeply",))
            for name in [*texts, "nested-attr.pb"]]


def _missing_input():
    g = _base()
    _node(g, "relu").input[0] = "nowhere"
    return g


def _deep_chain(depth: int):
    def make(x):
        net = _body(x)
        for _ in range(depth):
            net = tf.identity(net)
        return net
    return _graph_def(make)


def _recursive(*, mutual: bool):
    """A function library where `f` calls itself (or `f` calls `g` calls `f`), called from the graph."""
    g = _graph_def(_placed("function", lambda v: v * 2.0))
    function = g.library.function[0]
    name = function.signature.name
    call = next(n for n in function.node_def if n.op == "Mul")
    call.op = name if not mutual else name + "_twin"
    del call.input[1:]
    for key in list(call.attr):
        del call.attr[key]
    if mutual:
        twin = type(function)()
        twin.CopyFrom(function)
        twin.signature.name = name + "_twin"
        next(n for n in twin.node_def if n.op == name + "_twin").op = name
        g.library.function.append(twin)
    return g


def _shape_cases() -> list[tuple[str, object, frozenset[int], tuple[str, ...]]]:
    """Absurd declared sizes and inputs that are not images."""
    made = []
    g = _base()
    kernel = _node(g, "kernel")
    for dim, size in zip(kernel.attr["value"].tensor.tensor_shape.dim, (100000, 100000, 100000, 100000)):
        dim.size = size
    made.append(("huge-declared-const", g, REFUSED, ()))
    g = _base()
    _node(g, "kernel").attr["value"].tensor.tensor_shape.dim[0].size = -5
    made.append(("negative-const-dim", g, REFUSED, ()))
    g = _base()
    _node(g, "kernel").attr["value"].tensor.dtype = 999
    made.append(("invalid-dtype-enum", g, REFUSED, ()))
    for rank in (0, 1, 5):
        shape = [None, 4, 4, 4, 3][:rank] if rank else []
        made.append((f"input-rank-{rank}", _graph_def_with_input(tf.float32, shape), ANY_VERDICT, ()))
    for dtype in (tf.string, tf.int64, tf.bool, tf.complex64):
        made.append((f"input-{dtype.name}", _graph_def_with_input(dtype, [None, SIZE, SIZE, 3]), ANY_VERDICT, ()))
    made.append(("input-zero-size", _graph_def_with_input(tf.float32, [None, 0, SIZE, 3]), REFUSED, ()))
    made.append(("input-huge-size", _graph_def_with_input(tf.float32, [None, 2**31 - 1, 2**31 - 1, 3]),
                 REFUSED, ()))
    return made


def _graph_def_with_input(dtype, shape):
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(dtype, shape, name="input")
        value = tf.strings.length(x) if dtype == tf.string else tf.math.real(x) if dtype.is_complex else x
        out = tf.identity(tf.cast(value, tf.float32) * 2.0, name="output")
    return tf.compat.v1.graph_util.extract_sub_graph(graph.as_graph_def(), [out.op.name])


def flagged_cases(root: Path) -> list[Case]:
    """Legal constructs that can hang or hold state: flagged (one warning line), still run."""
    models = root / "models"

    def loop(x):
        _, out = tf.while_loop(lambda i, v: i < 3, lambda i, v: (i + 1, v * 1.0), [tf.constant(0), _body(x)])
        return out

    def table(x):
        keys = tf.constant(["a", "b"])
        table = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(keys, tf.constant([1.0, 2.0])), 0.0)
        return _body(x) * table.lookup(tf.constant("a"))

    def queue(x):
        q = tf.queue.FIFOQueue(4, [tf.float32])
        with tf.control_dependencies([q.enqueue([tf.constant(1.0)])]):
            return _body(x) * q.dequeue()

    def assert_holds(x):
        net = _body(x)
        with tf.control_dependencies([tf.debugging.assert_non_negative(net)]):
            return tf.identity(net)

    def assert_fires(x):
        net = _body(x)
        with tf.control_dependencies([tf.debugging.assert_negative(net, message="hostile assert")]):
            return tf.identity(net)

    made = {"flag-while": (loop, OK_OR_FAIL), "flag-hash-table": (table, ANY_VERDICT),
            "flag-queue": (queue, ANY_VERDICT), "flag-assert-holds": (assert_holds, OK_OR_FAIL),
            "flag-assert-fires": (assert_fires, REFUSED)}
    return [Case(name, [str(_write(models / f"{name}.pb", _graph_def(make))), *QUICK, "--timeout", "60"],
                 codes, supervised=name == "flag-queue") for name, (make, codes) in made.items()]


def limit_cases(root: Path) -> list[Case]:
    """A loop that never ends (--timeout), a tensor too big for --max-memory, a dequeue that waits forever."""
    models = root / "models"

    def endless(x):
        _, out = tf.while_loop(lambda i, v: i >= 0, lambda i, v: (i + 1, v), [tf.constant(0), _body(x)])
        return out

    def memory_bomb(x):
        big = tf.fill(tf.stack([tf.shape(x)[0] * 0 + 4096, 1024, 1024]), 1.0)  # 16 GB of float32
        return _body(x) + tf.reduce_sum(big)

    def starved_queue(x):
        q = tf.queue.FIFOQueue(4, [tf.float32])
        return _body(x) * q.dequeue()

    made = {"hang-endless-while": (endless, ["--timeout", "8"], ("timed out", "--timeout")),
            "hang-empty-queue": (starved_queue, ["--timeout", "8"], ("timed out",)),
            "oom-fill-16g": (memory_bomb, ["--max-memory", "1500M"], ("ran out of memory", "at node `Fill`"))}
    # The allocation that --max-memory (RLIMIT_DATA in the child) refuses surfaces as TensorFlow's OOM at `Fill`:
    # out of memory, never a batch limit. It comes after TensorFlow's import and 10 s of its retries: the bound
    # (and the --timeout of 0.6 × it) leaves a loaded machine time for both.
    return [Case(name, [str(_write(models / f"{name}.pb", _graph_def(make))), *QUICK, *limit],
                 REFUSED, mentions, supervised=True, seconds=90)
            for name, (make, limit, mentions) in made.items()]


def container_cases(root: Path) -> list[Case]:
    """A SavedModel and a meta graph whose graphs write a file: refused before TensorFlow loads them. The
    SavedModel's own saver (SaveV2/RestoreV2) is not refused: a clean SavedModel checks."""
    models = root / "models"
    cases = []
    for hostile in (False, True):
        name = f"savedmodel-{'writes' if hostile else 'clean'}"
        sentinel = root / "sentinels" / name
        module = _servable(sentinel if hostile else None)
        folder = models / name
        tf.saved_model.save(module, str(folder), signatures=module.serve)
        cases.append(Case(name, [str(folder), *QUICK], REFUSED if hostile else OK_OR_FAIL,
                          ("WriteFile",) if hostile else (), sentinel=sentinel if hostile else None))
    sentinel = root / "sentinels" / "meta-writes"
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, SIZE, SIZE, 3], name="input")
        weight = tf.compat.v1.get_variable("w", initializer=tf.constant(2.0))
        write = tf.io.write_file(str(sentinel), "acted")
        with tf.control_dependencies([write]):
            out = tf.identity(_body(x) * weight, name="output")
        meta = tf.compat.v1.train.export_meta_graph(graph=graph)
    path = models / "meta-writes.meta"
    path.write_bytes(meta.SerializeToString())
    cases.append(Case("meta-writes", [str(path), "--output", out.op.name, *QUICK], REFUSED, ("WriteFile",),
                      sentinel=sentinel))
    return cases


def _servable(sentinel: Path | None) -> tf.Module:
    """A tf.Module with a variable kernel whose `serve` writes `sentinel` when given."""
    module = tf.Module()
    module.kernel = tf.Variable(np.random.default_rng(3).normal(0, 0.3, (3, 3, 3, 4)).astype(np.float32))

    def serve(x):
        net = tf.reduce_mean(tf.nn.relu(tf.nn.conv2d(x, module.kernel, 1, "SAME")), axis=[1, 2])
        if sentinel is not None:
            tf.io.write_file(str(sentinel), "acted")
        return net
    module.serve = tf.function(serve, input_signature=[tf.TensorSpec([None, SIZE, SIZE, 3], tf.float32)])
    return module


def allow_op_case(root: Path) -> Case:
    """--allow-op lets a graph that reads a file run (ReadFile only: the sentinel write stays refused)."""
    graph_def = _graph_def(lambda x: _body(x) + 0.0 * tf.cast(tf.strings.length(tf.io.read_file("/etc/hostname")),
                                                              tf.float32))
    path = _write(root / "models" / "allow-op-readfile.pb", graph_def)
    return Case("allow-op-readfile", [str(path), *QUICK, "--allow-op", "ReadFile"], frozenset({0}))
