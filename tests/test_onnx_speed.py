"""What keeps the ONNX check close to plain onnxruntime passes (benchmarks/bench_onnx.py measures it) without changing
its answers: a check in a fresh process never imports the onnx package (its helper imports ml_dtypes: about half a
second); what the check builds is what onnx.helper builds; shape inference without the weights infers what it infers
with them; an `import onnx` after the light load shares its message classes; the sessions share one copy of the
weights; the arena's first region fits under a low --max-memory."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper, shape_inference

from batchcheck.backends.onnx import lite
from batchcheck.backends.onnx.protos import inferred_types
from batchcheck.options import CheckConfig

REPO = Path(__file__).resolve().parent.parent
IMPORTED = "print(sorted(m for m in ('onnx', 'onnx.helper', 'ml_dtypes') if m in sys.modules))"


def _python(code: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO), BATCHCHECK_UNSUPERVISED="1")
    return subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=300)


def test_a_check_in_a_fresh_process_imports_neither_onnx_nor_ml_dtypes(case_model, tmp_path):
    path, _ = case_model("onnx_bn_training")
    done = _python("import sys\nfrom batchcheck.cli import main\n"
                   "code = main(['check', sys.argv[1], '--trials', '2', '--json', sys.argv[2]])\n"
                   f"{IMPORTED}\nsys.exit(code)", str(path), str(tmp_path / "report.json"))
    assert done.returncode == 1, done.stderr  # batch-dependent, found without the onnx package
    assert done.stdout.splitlines()[-1] == "[]"


def test_onnx_imported_after_the_light_load_shares_its_classes(case_model):
    path, _ = case_model("onnx_mobilenet")
    done = _python("import sys\nfrom batchcheck.backends.onnx.load import load_onnx\nfrom pathlib import Path\n"
                   f"model = load_onnx(Path(sys.argv[1])).graph\n{IMPORTED}\n"
                   "import onnx\nfrom onnx.reference import ReferenceEvaluator\n"
                   "assert type(model) is onnx.ModelProto and onnx.NodeProto is type(model.graph.node[0])\n"
                   "onnx.checker.check_model(model)\n"
                   "relu = onnx.helper.make_graph([onnx.helper.make_node('Relu', ['x'], ['y'])], 'g', "
                   "[onnx.helper.make_tensor_value_info('x', 1, [2])], [onnx.helper.make_tensor_value_info('y', 1, "
                   "[2])])\n"
                   "print(ReferenceEvaluator(onnx.helper.make_model(relu)).run(None, {'x': "
                   "__import__('numpy').array([-1.0, 2.0], 'float32')})[0].tolist())", str(path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["[]", "[0.0, 2.0]"]


@pytest.mark.parametrize("attrs", [{}, {"axis": 1, "keepdims": 0}, {"perm": [0, 2, 3, 1]}, {"alpha": 0.5},
                                   {"mode": "nearest"}, {"scales": [1.0, 2.5]}, {"flag": True}])
def test_nodes_are_written_as_onnx_helper_writes_them(attrs):
    ours = lite.node("Op", ["a", "b"], ["c"], name="n", **attrs)
    assert ours.SerializeToString() == helper.make_node("Op", ["a", "b"], ["c"], name="n", **attrs).SerializeToString()
    assert {a.name: lite.attribute_value(a) for a in ours.attribute} == \
        {a.name: helper.get_attribute_value(a) for a in ours.attribute}


def test_value_infos_and_tensors_are_written_as_onnx_writes_them():
    assert lite.value_info("v").SerializeToString() == helper.make_empty_tensor_value_info("v").SerializeToString()
    for shape in (None, [], ["batch", 3, None, 7]):
        assert lite.value_info("v", 1, shape).SerializeToString() == \
            helper.make_tensor_value_info("v", 1, shape).SerializeToString()
    for array in (np.float32(1.5), np.arange(6, dtype=np.int64).reshape(2, 3), np.array([True, False]),
                  np.linspace(0, 1, 5).astype(np.float16), np.array([np.inf, -2.0]), np.arange(4, dtype=np.uint8)):
        array = np.asarray(array)
        ours = lite.tensor(array, "t")
        assert ours.SerializeToString() == numpy_helper.from_array(array, "t").SerializeToString()
        np.testing.assert_array_equal(lite.to_array(ours), array)
    typed = helper.make_tensor("t", onnx.TensorProto.FLOAT, [2], [1.0, 2.0])  # values in float_data: onnx reads them
    np.testing.assert_array_equal(lite.to_array(typed), numpy_helper.to_array(typed))


def test_attribute_values_of_every_kind_read_as_onnx_reads_them():
    graph = helper.make_graph([], "g", [], [])
    tensor = numpy_helper.from_array(np.ones(2, np.float32), "w")
    node = helper.make_node("Op", [], [], f=1.5, i=3, s="text", t=tensor, g=graph, floats=[1.0], ints=[1, 2],
                            strings=["a"], tensors=[tensor], graphs=[graph])
    for attr in node.attribute:
        assert lite.attribute_value(attr) == helper.get_attribute_value(attr), attr.name


@pytest.mark.parametrize("name", ["onnx_mobilenet", "onnx_head_fold", "onnx_instancenorm_folded", "onnx_batch_size",
                                  "onnx_dynamic_quant", "onnx_bn_training_v9"])
def test_inference_without_the_weights_infers_the_types_inference_with_them_does(case_model, name):
    path, _ = case_model(name)
    model = onnx.load(str(path))
    full = shape_inference.infer_shapes(model, strict_mode=False, data_prop=True).graph
    expected = {v.name: v.type.SerializeToString() for v in [*full.input, *full.value_info, *full.output]}
    assert {name: t.SerializeToString() for name, t in inferred_types(model).items()} == expected


def test_sessions_are_handed_one_copy_of_the_weights_and_answer_as_onnxruntime_does(case_model):
    import onnxruntime

    from batchcheck.checker import Checker
    from batchcheck.result import Mode

    path, _ = case_model("onnx_mobilenet")
    checker = Checker.open(path)
    session = checker.runner.session
    assert session.weights and set(session.weights) <= {t.name for t in session.model.graph.initializer}
    comparisons = session._comparisons(Mode.DETAIL)  # the largest model a check makes: its weights are headers
    shared = [t for t in comparisons.graph.initializer if t.name in session.weights]
    assert shared and all(t.data_location == lite.EXTERNAL and not t.raw_data for t in shared)
    images = checker.pool.array[:3]
    expected = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": images})
    np.testing.assert_allclose(checker.forward([0, 1, 2])[0], expected[0], rtol=1e-5, atol=1e-6)


def test_the_version_is_onnx_s_own():
    assert _python(f"from batchcheck.backends.onnx import lite\nimport sys\nprint(lite.version())\n{IMPORTED}")\
        .stdout.splitlines() == [onnx.__version__, "[]"]


def test_a_low_memory_cap_still_gets_a_verdict(case_model, tmp_path):
    path, _ = case_model("onnx_mobilenet")  # the arena's first region would take 512 MB of the 300 MB at once
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("BATCHCHECK_UNSUPERVISED", None)
    done = subprocess.run([sys.executable, "-m", "batchcheck", "check", str(path), "--trials", "2", "--max-memory",
                           "300M", "--json", str(tmp_path / "report.json")], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr


def _nan_model(folder: Path, name: str, batch_sum: bool) -> Path:
    """input [N, 3, 4, 4] → Log (NaN below 0, -inf at 0) → + 1, or (`batch_sum`) input / its sum over the batch
    (0 / 0 = NaN for an image alone)."""
    from fixtures.onnx.graph import OnnxGraph, save

    g = OnnxGraph(0)
    x = g.input("input", ["batch", 3, 4, 4])
    if batch_sum:
        total = g.op("ReduceSum", [x, g.weight("axes", [0], np.int64)], "/sum/ReduceSum", keepdims=1)
        out = g.op("Div", [x, total], "/div/Div", out="output")
    else:
        out = g.op("Add", [g.op("Log", [x], "/log/Log"), g.weight("one", 1.0)], "/add/Add", out="output")
    return save(g.model([out]), folder / f"{name}.onnx")


def _runner(path: Path, one: np.ndarray, two: np.ndarray):
    from batchcheck.load.open import backend_for, open_model
    from batchcheck.run.runner import Runner

    _, prepared = open_model(path, CheckConfig())
    runner = Runner(backend_for(prepared).session(prepared))
    runner.analyse(one, two)
    return runner


def test_nans_and_infinities_compare_as_themselves(tmp_path):
    from batchcheck.result import Mode

    probe = np.full((1, 3, 4, 4), 2.0, np.float32)
    probe[0, 0, 0, :2] = 0.0, -1.0  # log: -inf, NaN
    mate = np.ones_like(probe)
    runner = _runner(_nan_model(tmp_path, "log", batch_sum=False), probe, np.concatenate([probe, mate]))
    for mode in Mode:
        scales = runner.cache_solo(probe, "probe", mode)
        assert np.all(np.isfinite(scales)) and max(scales) == pytest.approx(np.log(2.0) + 1)  # over finite values
        assert np.all(runner.compare(mode, np.concatenate([mate, probe, probe]), [1, 2]) == 0)  # NaN is NaN

    runner = _runner(_nan_model(tmp_path, "share", batch_sum=True), probe, np.concatenate([probe, mate]))
    runner.cache_solo(probe, "probe", Mode.DETAIL)  # alone: 0 / 0 = NaN at the first pixel, 1 elsewhere
    diffs = dict(zip([runner.targets[i].tensor for i in runner.watched[Mode.DETAIL]],
                     runner.compare(Mode.DETAIL, np.concatenate([probe, mate]), [0])))
    assert diffs["/div/Div:0"] == np.inf  # in a batch the pixel is 0 / 1: a number where the probe alone had NaN
