"""The fixture models load, run, and really have the verdict and root the registry claims.

Checked with plain TensorFlow only (independent of batchcheck's core): the probe image is
run alone and as row 1 of a 3-image batch, and the results compared.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from fixtures import CASES, Case, build_all, build_case  # noqa: E402
from fixtures._tf import tf  # noqa: E402

PROBE = 1  # probe's row in the batch; not 0, so row-index arithmetic shows up
BATCH = 3
SHAPE_OPS = {"Shape", "ShapeN", "Size", "Rank"}
# stateless random ops draw from a constant seed, but their values depend on the shape they are drawn for
SEEDED_RANDOM_OPS = {"StatelessRandomUniform", "StatelessRandomUniformV2", "StatelessRandomNormalV2"}
# keep_prob=1.0: RandomUniform differs per run, but Floor(keep_prob + u) is all ones,
# so the difference never reaches the outputs.
HARMLESS_ROOTS = {"keep_prob_1": ["dropout/random_uniform/RandomUniform"]}
# Without inlining, a TF2 cond's root is the If op holding the branch functions.
IF_ROOTS = {"cond_v2": "MobilenetV1/Conv2d_0/BatchNorm/cond"}


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    start = time.perf_counter()
    paths = build_all(tmp_path_factory.mktemp("fixtures"))
    elapsed = time.perf_counter() - start
    assert elapsed < 60, f"building all fixtures took {elapsed:.1f}s"
    return paths


# --------------------------------------------------------------------------- comparison


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    if a.shape != b.shape:
        return False
    if a.dtype.kind != "f":
        return bool(np.array_equal(a, b))
    scale = max(1.0, float(np.abs(a).max())) if a.size else 1.0
    return bool(np.allclose(a, b, rtol=1e-4, atol=1e-6 * scale))


def _probe_part(solo: np.ndarray, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Align a solo-run tensor with the probe's part of the batch-run tensor.

    Batch axis 0 (or wherever the solo size is 1 and the batch size is BATCH, e.g. after a
    Transpose), or SpaceToBatchND's [blocks * BATCH, ...] layout; else compare whole.
    """
    if solo.ndim == batch.ndim and solo.ndim > 0:
        diff = [k for k in range(solo.ndim) if solo.shape[k] != batch.shape[k]]
        if diff == [0] and solo.shape[0] == 1 and batch.shape[0] == BATCH:
            return solo[0], batch[PROBE]
        if len(diff) == 1 and solo.shape[diff[0]] == 1 and batch.shape[diff[0]] == BATCH:
            return np.take(solo, 0, axis=diff[0]), np.take(batch, PROBE, axis=diff[0])
        if diff == [0] and batch.shape[0] == BATCH * solo.shape[0]:
            return solo, batch.reshape(solo.shape[0], BATCH, *solo.shape[1:])[:, PROBE]
    return solo, batch


def _same(solo: np.ndarray, batch: np.ndarray) -> bool:
    return _close(*_probe_part(solo, batch))


# --------------------------------------------------------------------------- loading


def _parse_args(case: Case, model_dir: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(feeds, other options) from the case's CLI args."""
    args = [a.replace("{dir}", str(model_dir)) for a in case.args]
    feeds, opts = {}, {}
    for flag, value in zip(args[::2], args[1::2]):
        if flag == "--feed":
            name, _, v = value.partition("=")
            feeds[name] = v
        else:
            opts[flag.lstrip("-")] = value
    return feeds, opts


def _feed_value(tensor: tf.Tensor, text: str) -> np.ndarray:
    if tensor.dtype == tf.bool:
        return np.asarray(text.lower() == "true")
    return np.asarray(float(text), dtype=tensor.dtype.as_numpy_dtype)


@dataclass
class Model:
    """A loaded fixture: `run(images)` returns its outputs; graph models also allow any fetch."""

    run: Callable[[np.ndarray], list[np.ndarray]]
    input_dtype: np.dtype
    size: int
    channels: int
    graph: tf.Graph | None = None
    session: tf.compat.v1.Session | None = None
    feeds: dict = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)

    def fetch(self, images: np.ndarray, tensors: list[tf.Tensor]) -> list[np.ndarray]:
        feed = {**self.feeds, self.graph.get_tensor_by_name("input:0"): images}
        return self.session.run(tensors, feed)


def _graph_model(graph: tf.Graph, session, feeds: dict[str, str], outputs: list[str]) -> Model:
    x = graph.get_tensor_by_name("input:0")
    feed = {graph.get_tensor_by_name(f"{k}:0"): _feed_value(graph.get_tensor_by_name(f"{k}:0"), v)
            for k, v in feeds.items()}
    fetches = [graph.get_tensor_by_name(f"{o}:0") for o in outputs]
    return Model(
        run=lambda images: session.run(fetches, {**feed, x: images}),
        input_dtype=x.dtype.as_numpy_dtype, size=int(x.shape[1]), channels=int(x.shape[3]),
        graph=graph, session=session, feeds=feed, outputs=outputs,
    )


def _sinks(graph_def) -> list[str]:
    used = {i.lstrip("^").split(":")[0] for n in graph_def.node for i in n.input}
    return [n.name for n in graph_def.node if n.name not in used]


def load(case: Case, path: Path) -> Model:
    feeds, opts = _parse_args(case, path.parent)
    if path.suffix in (".pb", ".pbtxt"):
        graph_def = tf.compat.v1.GraphDef()
        if path.suffix == ".pbtxt":
            from google.protobuf import text_format

            text_format.Parse(path.read_text(), graph_def)
        else:
            graph_def.ParseFromString(path.read_bytes())
        graph = tf.Graph()
        with graph.as_default():
            tf.compat.v1.import_graph_def(graph_def, name="")
        return _graph_model(graph, tf.compat.v1.Session(graph=graph), feeds, _sinks(graph_def))
    if path.suffix == ".meta":
        graph = tf.Graph()
        with graph.as_default():
            saver = tf.compat.v1.train.import_meta_graph(str(path))
            session = tf.compat.v1.Session(graph=graph)
            saver.restore(session, opts["checkpoint"])
        return _graph_model(graph, session, feeds, [opts["output"]])
    if path.suffix in (".keras", ".h5"):
        import keras

        km = keras.models.load_model(str(path), safe_mode=True)
        _, size, _, channels = km.input_shape
        return Model(run=lambda images: [np.asarray(km(images))], input_dtype=np.float32,
                     size=size, channels=channels)
    loaded = tf.saved_model.load(str(path))
    fn = loaded.signatures["serving_default"]
    spec = fn.structured_input_signature[1]["input"]
    return Model(
        run=lambda images: [v.numpy() for v in fn(input=tf.constant(images)).values()],
        input_dtype=spec.dtype.as_numpy_dtype, size=int(spec.shape[1]), channels=int(spec.shape[3]),
    )


def _images(model: Model, seed: int = 0) -> np.ndarray:
    rng = np.random.RandomState(seed)
    shape = (BATCH, model.size, model.size, model.channels)
    if model.input_dtype == np.uint8:
        return rng.randint(0, 256, shape).astype(np.uint8)
    return rng.uniform(-1.0, 1.0, shape).astype(np.float32)


# --------------------------------------------------------------------------- registry


def test_registry_is_well_formed() -> None:
    verdicts = {"invariant", "batch_dependent", "nondeterministic", "error"}
    causes = {None, "batchnorm_training", "random_op", "batch_reduction", "batch_size", "position"}
    for name, case in CASES.items():
        assert case.name == name
        assert case.verdict in verdicts, name
        assert case.cause in causes, name
        assert (case.cause is not None) == (case.verdict in ("batch_dependent", "nondeterministic")), name
        assert (case.error_mentions is not None) == (case.verdict == "error"), name
        assert case.first_node is None or case.first_op is not None, name
        assert case.description, name


# --------------------------------------------------------------------------- verdicts


@pytest.mark.parametrize("name", list(CASES))
def test_verdict_is_real(name: str, built: dict[str, Path]) -> None:
    case = CASES[name]
    model = load(case, built[name])
    images = _images(model)
    probe = images[PROBE:PROBE + 1]

    if name in ("mobilenet_v1_batch1", "batch_locked"):
        _check_fixed_batch(model, probe)
        return
    if case.verdict == "error":
        with pytest.raises(tf.errors.InvalidArgumentError, match=case.error_mentions):
            model.run(probe)
        return

    solo, again = model.run(probe), model.run(probe)
    batch = model.run(images)
    if case.verdict == "nondeterministic":
        assert not all(_close(a, b) for a, b in zip(solo, again)), "two identical runs agree"
        return
    assert all(_close(a, b) for a, b in zip(solo, again)), "two identical runs differ"
    same = [_close(s[0], b[PROBE]) for s, b in zip(solo, batch)]
    if case.verdict == "invariant":
        assert all(same), "probe's row in the batch differs from the solo run"
    else:
        assert not all(same), "probe's row in the batch equals the solo run"


def _check_fixed_batch(model: Model, probe: np.ndarray) -> None:
    """Fixed [1,...] input: runs solo; with the batch axis relaxed, a hard-coded [1, N] Reshape is the limit.

    Grappler is off here: with the default session config its arithmetic optimizer drops the
    hard-coded Reshape and a batch of 3 runs through (TF 2.21).
    """
    out = model.run(probe)[0]
    assert out.shape[0] == 1
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, *probe.shape[1:]], name="relaxed")
        (y,) = tf.compat.v1.import_graph_def(
            model.graph.as_graph_def(), {"input:0": x}, [f"{model.outputs[0]}:0"], name=""
        )
        config = tf.compat.v1.ConfigProto()
        config.graph_options.rewrite_options.disable_meta_optimizer = True
        with tf.compat.v1.Session(graph=graph, config=config) as session:
            assert _close(session.run(y, {x: probe}), out)
            with pytest.raises(tf.errors.InvalidArgumentError, match="Reshape"):
                session.run(y, {x: np.repeat(probe, BATCH, axis=0)})


# --------------------------------------------------------------------------- roots


def _static_ops(graph: tf.Graph) -> set[str]:
    """Ops whose value cannot depend on the images' content nor on the batch: Const, shape ops and math on
    them (not a random draw of the batch's shape)."""
    static: set[str] = set()
    for op in graph.get_operations():
        if op.type == "Const" or op.type in SHAPE_OPS:
            static.add(op.name)
        elif (op.inputs and not op.op_def.is_stateful and "Placeholder" not in op.type
              and op.type not in SEEDED_RANDOM_OPS
              and all(t.op.name in static for t in op.inputs)):
            static.add(op.name)
    return static


def _topological(ops: list[tf.Operation]) -> list[tf.Operation]:
    """`ops` ordered so every op follows its data and control inputs (imported graph order is not)."""
    names = {op.name for op in ops}
    order, seen = [], set()

    def visit(op: tf.Operation) -> None:
        stack = [(op, False)]
        while stack:
            node, done = stack.pop()
            if done:
                order.append(node)
            elif node.name not in seen:
                seen.add(node.name)
                stack.append((node, True))
                deps = [t.op for t in node.inputs] + list(node.control_inputs)
                stack.extend((d, False) for d in reversed(deps) if d.name in names and d.name not in seen)

    for op in ops:
        visit(op)
    return order


def _dead_tensors(model: Model, probe: np.ndarray, ops: list[tf.Operation]) -> set[str]:
    """Tensors of TF1 tf.cond branches not taken for the fed predicates (fetching them fails)."""
    switches = [op for op in ops if op.type == "Switch"]
    if not switches:
        return set()
    preds = dict(zip([op.name for op in switches], model.fetch(probe, [op.inputs[1] for op in switches])))
    dead: set[str] = set()
    dead_ops: set[str] = set()
    for op in ops:
        if op.type == "Merge":
            if all(t.name in dead for t in op.inputs):
                dead.update(t.name for t in op.outputs)
        elif any(t.name in dead for t in op.inputs) or any(c.name in dead_ops for c in op.control_inputs):
            dead_ops.add(op.name)
            dead.update(t.name for t in op.outputs)
        elif op.type == "Switch":  # output 0 carries the value when pred is false, output 1 when true
            dead.add(op.outputs[1 if not preds[op.name] else 0].name)
    return dead


def find_roots(model: Model, images: np.ndarray) -> list[str]:
    """Ops (topologically ordered) whose output differs solo vs. in-batch while no input differs."""
    graph = model.graph
    ops = _topological(graph.get_operations())
    ancestors: set[str] = set()
    stack = [graph.get_operation_by_name(o) for o in model.outputs]
    while stack:
        op = stack.pop()
        if op.name not in ancestors:
            ancestors.add(op.name)
            stack.extend(t.op for t in op.inputs)
            stack.extend(op.control_inputs)
    probe = images[PROBE:PROBE + 1]
    dead = _dead_tensors(model, probe, [op for op in ops if op.name in ancestors])
    static = _static_ops(graph)
    ops = [op for op in ops if op.name in ancestors and op.name not in static]
    consumed = {t.name for op in ops for t in op.inputs} | {f"{o}:0" for o in model.outputs}
    tensors = [t for op in ops for t in op.outputs
               if t.name in consumed and t.name not in dead and t.dtype not in (tf.resource, tf.variant)]
    names = [t.name for t in tensors]
    solo = dict(zip(names, model.fetch(probe, tensors)))
    batch = dict(zip(names, model.fetch(images, tensors)))

    def differs(t: tf.Tensor) -> bool:
        return t.name in solo and not _same(solo[t.name], batch[t.name])

    return [op.name for op in ops
            if any(differs(t) for t in op.outputs) and not any(differs(t) for t in op.inputs)]


def _is_graph_case(name: str, built: dict[str, Path]) -> bool:
    return built[name].suffix in (".pb", ".pbtxt", ".meta")


@pytest.mark.parametrize(
    "name", [n for n, c in CASES.items() if c.verdict != "error" and n != "mobilenet_v1_batch1"]
)
def test_first_root_is_registered(name: str, built: dict[str, Path]) -> None:
    """Scanning every node agrees with the registry's first_node / first_op."""
    if not _is_graph_case(name, built):
        pytest.skip("not a GraphDef / meta graph")
    case = CASES[name]
    model = load(case, built[name])
    op_type = {op.name: op.type for op in model.graph.get_operations()}
    roots = find_roots(model, _images(model))
    if case.verdict == "invariant":
        assert roots == HARMLESS_ROOTS.get(name, [])
    elif case.first_node is not None:
        assert roots and roots[0] == case.first_node, roots
        assert op_type[roots[0]] == case.first_op
    else:
        assert roots and roots[0] == IF_ROOTS[name], roots
        assert op_type[roots[0]] in ("If", "StatelessIf")


# --------------------------------------------------------------------------- building


def test_builds_are_reproducible(tmp_path: Path) -> None:
    """Same bytes on rebuild, including cond_v2's branch-function names (uid suffix dropped)."""
    for name in ("mobilenet_v1", "cond_v2"):
        a = build_case(name, tmp_path / "a").read_bytes()
        b = build_case(name, tmp_path / "b").read_bytes()
        assert a == b, name


def test_cli_prints_name_and_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from fixtures.build import main

    assert main([str(tmp_path), "batch_mean", "keep_prob_1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in lines] == ["batch_mean", "keep_prob_1"]
    for line in lines:
        assert Path(line.split("\t")[1]).is_file()
    with pytest.raises(SystemExit):
        main([str(tmp_path), "no_such_case"])
