"""Safety: the op scan's messages, broken graphs as one-line errors (no silent substitution), the supervised
child (timeout, crash, memory, Ctrl-C, the pytest plugin) and hypothesis fuzzing of the loader and image reader."""
from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hostile.models import QUICK, _acting_ops, _body, _graph_def, _placed, _write
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchcheck.backends.tf.scan import scan_graph_def
from batchcheck.errors import UsageError
from batchcheck.options import CheckConfig
from batchcheck.safety.scan import refusal_category
from batchcheck.safety.supervise import Limits, parse_size, run_child

SUPERVISED_ENV = {k: v for k, v in os.environ.items() if k != "BATCHCHECK_UNSUPERVISED"}


def one_line_error(result, *words: str) -> str:
    __tracebackhide__ = True
    assert result.code == 2, result.out + result.err
    assert result.err.startswith("batchcheck: ") and result.err.count("\n") == 1, result.err
    for word in words:
        assert word in result.err, result.err
    return result.err


@pytest.fixture(scope="module")
def base_graph():
    return _graph_def(_body)


def _copy(graph_def):
    copy = type(graph_def)()
    copy.CopyFrom(graph_def)
    return copy


def _node(graph_def, name):
    return next(n for n in graph_def.node if n.name == name)


# -- the op scan ------------------------------------------------------------------------------------

@pytest.mark.parametrize("placement, where", [
    ("top", "at top level"),
    ("function", "in function `"),
    ("if_v2", "called from `cond`"),
    ("while_body", "called from `loop`"),
])
def test_refusal_names_op_node_and_where(tmp_path, placement, where):
    graph_def = _graph_def(_placed(placement, _acting_ops(tmp_path / "sentinel")["ReadFile"]))
    with pytest.raises(UsageError) as error:
        scan_graph_def(graph_def, Path("m.pb"))
    message = str(error.value)
    assert "refused to run file op ReadFile (node `ReadFile`" in message and where in message, message
    assert "--allow-op ReadFile" in message and "\n" not in message


def test_nested_function_names_the_chain(tmp_path):
    graph_def = _graph_def(_placed("nested_function", _acting_ops(tmp_path / "s")["PyFunc"]))
    with pytest.raises(UsageError, match=r"Python op PyFunc .*in function `.*`, called from `.*` in function `"):
        scan_graph_def(graph_def, Path("m.pb"))


def test_allow_op_lets_only_that_op_through(tmp_path):
    graph_def = _graph_def(_placed("function", _acting_ops(tmp_path / "s")["ReadFile"]))
    with pytest.raises(UsageError, match="WriteFile"):  # the sentinel's write is still refused
        scan_graph_def(graph_def, Path("m.pb"), ["ReadFile"])
    scan_graph_def(graph_def, Path("m.pb"), ["ReadFile", "WriteFile"])


def test_categories():
    assert [refusal_category(op) for op in ("WriteFile", "TFRecordReaderV2", "WriteScalarSummary", "PyFunc",
                                            "CollectiveReduceV2", "Conv2D", "FusedBatchNormV3", "Identity")] == \
        ["file", "file", "file", "Python", "network", None, None, None]


def test_print_to_console_runs_print_to_file_is_refused(tmp_path):
    def printing(stream):
        def payload(x):
            from fixtures._tf import tf
            with tf.control_dependencies([tf.print(tf.reduce_sum(x), output_stream=stream or sys.stderr)]):
                return tf.identity(x)
        return _graph_def(_placed("top", payload))
    assert not scan_graph_def(printing(None), Path("m.pb")).flagged
    with pytest.raises(UsageError, match="file op PrintV2"):
        scan_graph_def(printing(f"file://{tmp_path / 'out'}"), Path("m.pb"))


def test_flagged_constructs_are_reported_and_run(run_cli, tmp_path):
    from hostile.structure import flagged_cases

    (tmp_path / "models").mkdir()
    path = next(c for c in flagged_cases(tmp_path) if c.name == "flag-while").args[0]
    result = run_cli(path, *QUICK)
    assert result.code == 0 and result.err == "", result.err
    assert "flagged  while loop" in result.out
    assert [f["kind"] for f in result.report["model"]["flagged"]] == ["while loop"]


def test_bad_allow_op_is_one_line(run_cli, tmp_path, base_graph):
    path = _write(tmp_path / "m.pb", base_graph)
    one_line_error(run_cli(path, "--allow-op", "Conv2D"), "--allow-op Conv2D: not an op batchcheck refuses")


# -- no silent substitution (issue 13) ----------------------------------------------------------------

def test_input_naming_a_missing_node_is_an_error(run_cli, tmp_path, base_graph):
    graph_def = _copy(base_graph)
    _node(graph_def, "relu").input[0] = "Conv2D_gone"
    path = _write(tmp_path / "broken.pb", graph_def)
    err = one_line_error(run_cli(path))
    assert err == (f"batchcheck: model `{path}`: node `relu` takes input `Conv2D_gone`, which does not exist; "
                   f"the graph is broken, re-export it\n")


def test_duplicate_node_names_are_an_error(run_cli, tmp_path, base_graph):
    graph_def = _copy(base_graph)
    twin = graph_def.node.add()
    twin.CopyFrom(_node(graph_def, "relu"))
    path = _write(tmp_path / "twins.pb", graph_def)
    one_line_error(run_cli(path), "two nodes are named `relu` (Relu and Relu)")


def test_newline_in_a_path_stays_on_one_line(run_cli, tmp_path, base_graph):
    graph_def = _copy(base_graph)
    _node(graph_def, "relu").input[0] = "gone"
    path = _write(tmp_path / "two\nlines.pb", graph_def)
    one_line_error(run_cli(path), "two\\nlines.pb", "`gone`")


@pytest.mark.parametrize("name", ["nested-attr.pbtxt", "nested-function-attr.pbtxt", "nested-attr.pb"])
def test_deeply_nested_graph_is_one_line(run_cli, tmp_path, name):
    """A value nested thousands of levels deep (text or binary) is refused in one line, not a RecursionError."""
    from hostile.structure import nesting_cases

    (tmp_path / "models").mkdir()
    path = tmp_path / "models" / name
    assert path in [Path(c.args[0]) for c in nesting_cases(tmp_path)]
    assert one_line_error(run_cli(path, *QUICK)) == (
        f"batchcheck: model `{path}`: not a usable TensorFlow GraphDef: its values are nested too deeply to parse "
        f"(over protobuf's limit of 100 levels; a value nested in itself?); re-export the model\n")


def test_automatic_outputs_are_named_with_why(run_cli, tmp_path, base_graph):
    result = run_cli(_write(tmp_path / "m.pb", base_graph), *QUICK)
    assert result.code == 0
    chosen = result.report["model"]["outputs_chosen"]
    assert chosen.startswith("chosen automatically: the 1 node(s) downstream of `input` that nothing consumes")
    assert f"outputs  output:0 ({chosen})" in result.out
    given = run_cli(_write(tmp_path / "m.pb", base_graph), *QUICK, "--output", "pool")
    assert given.report["model"]["outputs_chosen"] == "given with --output"


# -- supervision ------------------------------------------------------------------------------------

def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "batchcheck", "check", *map(str, args)], env=SUPERVISED_ENV,
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def _endless(tmp_path: Path) -> Path:
    from hostile.structure import limit_cases

    (tmp_path / "models").mkdir(exist_ok=True)
    return Path(next(c for c in limit_cases(tmp_path) if c.name == "hang-empty-queue").args[0])


def test_timeout_stops_the_child_and_names_the_stage(tmp_path):
    started = time.monotonic()
    done = _cli(_endless(tmp_path), *QUICK, "--timeout", "15")
    assert done.returncode == 2 and done.stdout == ""
    # the stage is analysis (where the dequeue waits) unless a loaded machine is still importing TensorFlow
    assert done.stderr.count("\n") == 1 and re.search(r"timed out after 15 s during (analysis|loading) "
                                                      r"\(--timeout 15\); raise --timeout", done.stderr), done.stderr
    assert time.monotonic() - started < 40


def test_long_stage_is_named_on_stderr(tmp_path):
    """A check that stays long in one stage says which stage, what it runs and the while loop it holds, while it
    waits (here after 1 s; 60 s by default); Ctrl-C then stops it as usual."""
    from hostile.structure import limit_cases

    (tmp_path / "models").mkdir()
    model = next(c for c in limit_cases(tmp_path) if c.name == "hang-endless-while").args[0]
    parent = subprocess.Popen([sys.executable, "-m", "batchcheck", "check", model, *QUICK, "--timeout", "120"],
                              env=dict(SUPERVISED_ENV, BATCHCHECK_SLOW_STAGE_SECONDS="1"), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    lines = []
    for line in parent.stderr:  # until the analysis notice, or the end (--timeout 120 at the latest)
        lines.append(line)
        if "still in analysis" in line:
            break
    parent.send_signal(signal.SIGINT)
    lines += parent.communicate(timeout=30)[1].splitlines(keepends=True)
    assert parent.returncode == 130 and lines[-1] == "batchcheck: interrupted during analysis; the check was stopped\n"
    notices = lines[:-1]
    assert notices and all(line.startswith("batchcheck: still in ") for line in notices), lines
    assert re.fullmatch(r"batchcheck: still in analysis after \d+ s \(running the graph on one image and on two; "
                        r"it holds while loop `while`\): a slow model or a hang; --timeout 120 stops it in \d+ s\n",
                        notices[-1]), notices[-1]


def test_stage_clock_notices():
    """The first notice after the delay, then every five delays; a new stage restarts the clock, a refined detail
    does not; 0 turns notices off."""
    from batchcheck.safety.slow_stage import StageClock

    clock = StageClock(2.0, since=0.0)
    clock.enter("analysis\trunning the graph", 0.0)
    assert [t for t in range(40) if clock.notice(t, 0, 0.0)] == [2, 12, 22, 32]
    clock.enter("analysis\trunning the graph again", 40.0)
    assert clock.notice(42, 0, 0.0) == "still in analysis after 42 s (running the graph again): a slow model or a " \
                                       "hang; no --timeout: only Ctrl-C stops it"
    clock.enter("trial 1", 50.0)
    assert clock.notice(51, 90, 0.0) is None
    assert clock.notice(52, 90, 0.0) == ("still in trial 1 after 2 s: a slow model or a hang; --timeout 90 stops it "
                                         "in 38 s")
    assert not any(StageClock(0.0, since=0.0).notice(t, 0, 0.0) for t in range(100))


def test_slow_stage_seconds_is_checked(monkeypatch):
    from batchcheck.safety.slow_stage import slow_stage_seconds

    monkeypatch.setenv("BATCHCHECK_SLOW_STAGE_SECONDS", "soon")
    with pytest.raises(UsageError, match="BATCHCHECK_SLOW_STAGE_SECONDS='soon': give seconds of at least 0"):
        slow_stage_seconds()
    monkeypatch.setenv("BATCHCHECK_SLOW_STAGE_SECONDS", "2.5")
    assert slow_stage_seconds() == 2.5
    monkeypatch.delenv("BATCHCHECK_SLOW_STAGE_SECONDS")
    assert slow_stage_seconds() == 60


def test_ctrl_c_stops_the_child_exits_130(tmp_path):
    model = _endless(tmp_path)
    parent = subprocess.Popen([sys.executable, "-m", "batchcheck", "check", str(model), *QUICK], env=SUPERVISED_ENV,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(8)  # TensorFlow imported and the graph running in the child
    children = Path(f"/proc/{parent.pid}/task/{parent.pid}/children").read_text().split()
    parent.send_signal(signal.SIGINT)
    started = time.monotonic()
    out, err = parent.communicate(timeout=30)
    assert parent.returncode == 130 and time.monotonic() - started < 5
    assert err.count("\n") == 1 and err.startswith("batchcheck: interrupted during ") and "stopped" in err
    assert children and not any(Path(f"/proc/{pid}").exists() for pid in children)


@pytest.mark.parametrize("how, expected", [
    ("os.kill(os.getpid(), signal.SIGSEGV)", "crashed with SIGSEGV (a stack overflow from a deep or recursive "
                                             "graph?) during trial 3"),
    ("os.write(2, b'terminate called after throwing an instance of std::bad_alloc\\n'); os.abort()",
     "ran out of memory during trial 3"),
    ("os.write(2, b'F tensorflow/core/x.cc:1] Check failed: rank >= 0\\n'); os.abort()",
     "crashed with SIGABRT during trial 3; TensorFlow said: F tensorflow/core/x.cc:1] Check failed: rank >= 0"),
    # OpenBLAS under a low --max-memory gives up and exits 1, which is no verdict
    ("os.write(2, b'OpenBLAS error: Memory allocation still failed after 10 retries, giving up.'); os._exit(1)",
     "ran out of memory during trial 3"),
])
def test_crash_becomes_one_line_naming_the_stage(tmp_path, monkeypatch, how, expected):
    (tmp_path / "crashing.py").write_text(
        "import os, signal\nfrom batchcheck.safety.supervise import stage\nstage('loading')\nstage('trial 3')\n"
        f"{how}\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    run = run_child(["crashing"], Limits(30, 0), "model `m.pb`", relay_stdout=False)
    assert run.code == 2 and run.failure.startswith(f"model `m.pb`: {expected}"), run.failure
    assert "\n" not in run.failure


def test_resident_memory_over_the_limit_stops_the_child(tmp_path, monkeypatch):
    (tmp_path / "hungry.py").write_text(
        "import time\nfrom batchcheck.safety.supervise import stage\nstage('calibration')\n"
        "blocks = [bytearray(2**20) for _ in range(400)]\ntime.sleep(60)\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    started = time.monotonic()
    run = run_child(["hungry"], Limits(60, 200 * 2**20), "model `m.pb`", relay_stdout=False)
    assert run.failure == ("model `m.pb`: ran out of memory during calibration (limit 200 MB, --max-memory); "
                           "raise --max-memory or check a smaller model")
    assert time.monotonic() - started < 20


def test_sizes():
    assert parse_size("4G") == 4 * 2**30 and parse_size("512m") == 512 * 2**20 and parse_size("0") == 0
    assert 0 < parse_size("50%") < parse_size("100%")


# -- out of memory, and the pytest plugin's supervised models -------------------------------------------

REPO = Path(__file__).resolve().parent.parent
# the children import this checkout's batchcheck wherever they run (not another install's)
CHILD_ENV = {**SUPERVISED_ENV, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}


def _at_trials(x):
    """True on a batch of 3 or more different images: the trials, never analysis (1 and 2 images) nor
    calibration (copies of the probe)."""
    from fixtures._tf import tf

    differ = tf.reduce_max(tf.abs(x - x[:1])) > 0
    return tf.logical_and(tf.shape(x)[0] >= 3, differ)


def _trial_hang(x):
    """Waits forever on an empty queue, at the trials only."""
    from fixtures._tf import tf

    queue = tf.queue.FIFOQueue(4, [tf.float32], shapes=[[]])
    return _body(x) * tf.compat.v1.cond(_at_trials(x), queue.dequeue, lambda: tf.constant(1.0))


def _trial_memory_bomb(x):
    """Fills 16 GB at the trials only (4 MB otherwise)."""
    from fixtures._tf import tf

    big = tf.fill(tf.stack([tf.where(_at_trials(x), 4096, 1), 1024, 1024]), 1.0)
    return _body(x) + tf.reduce_sum(big)


def test_out_of_memory_is_fatal_one_line(tmp_path):
    """TensorFlow refusing an allocation under --max-memory is out of memory (exit 2), not a batch limit."""
    model = _write(tmp_path / "bomb.pb", _graph_def(_trial_memory_bomb))
    report = tmp_path / "report.json"
    done = subprocess.run([sys.executable, "-m", "batchcheck", "check", str(model), "--trials", "2", "--batch-sizes",
                           "2,4", "--max-memory", "2G", "--json", str(report)], env=CHILD_ENV, capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)
    line = (f"batchcheck: model `{model}`: ran out of memory during trial 1 at node `Fill` on a batch of 4 (OOM when "
            f"allocating tensor with shape[4096,1024,1024] and type float; limit 2.0 GB, --max-memory); raise "
            f"--max-memory or lower --batch-sizes\n")
    assert (done.returncode, done.stderr) == (2, line), done.stderr
    assert json.loads(report.read_text()) == {"schema": 1, "verdict": "error", "error": line[12:-1], "stage": "check",
                                              "model": {"path": str(model)}}


def test_plugin_supervises_each_model(tmp_path):
    """Trials, fuzzing and the baseline run in each model's supervised child: a model that hangs or runs out
    of memory at the trials fails its own item with one line, the rest of its items are skipped, the next
    model passes, and pytest itself never imports TensorFlow. While the hang waits, pytest's stderr says so
    (here after 5 s), past its capture."""
    _write(tmp_path / "good.pb", _graph_def(_body))
    hang = _write(tmp_path / "hang.pb", _graph_def(_trial_hang))
    bomb = _write(tmp_path / "bomb.pb", _graph_def(_trial_memory_bomb))
    (tmp_path / "conftest.py").write_text("import sys\n\ndef pytest_sessionfinish():\n"
                                          "    print('\\ntensorflow in pytest:', 'tensorflow' in sys.modules)\n")
    started = time.monotonic()
    # the timeout bounds each model's child from its start: 40 s leaves a loaded machine time to import TensorFlow
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA", "--graph", "hang.pb",
                           "--graph", "bomb.pb", "--graph", "good.pb", "--graph-timeout", "40", "--graph-max-memory",
                           "2G", "--graph-trials", "3", "--graph-batch-sizes", "2,4", "--graph-examples", "5",
                           "--graph-baseline", "baseline.json", "--graph-update-baseline"],
                          cwd=tmp_path, env=dict(CHILD_ENV, BATCHCHECK_SLOW_STAGE_SECONDS="5"), capture_output=True,
                          text=True, timeout=300)
    out = done.stdout
    assert "2 failed, 4 passed, 6 skipped" in out and done.returncode == 1, out[-3000:]
    lines = out.splitlines()
    failures = lines[lines.index(next(line for line in lines if " FAILURES " in line)) + 1:
                     lines.index(next(line for line in lines if " PASSES " in line))]
    assert failures == [
        "_______________________ batchcheck[hang.pb]::invariance ________________________",
        f"batchcheck: model `{hang}`: timed out after 40 s during trial 1 (--graph-timeout 40); raise "
        f"--graph-timeout, or check a smaller model",
        "_______________________ batchcheck[bomb.pb]::invariance ________________________",
        f"batchcheck: model `{bomb}`: ran out of memory during trial 1 at node `Fill` on a batch of 4 (OOM when "
        f"allocating tensor with shape[4096,1024,1024] and type float; limit 2.0 GB, --graph-max-memory); raise "
        f"--graph-max-memory or lower --graph-batch-sizes"], out[-3000:]
    for name in ("hang.pb", "bomb.pb"):
        assert f"SKIPPED [3] {name}: the model cannot be checked: see batchcheck[{name}]::invariance" in out
    for item in ("invariance", "determinism", "fuzz", "baseline"):
        assert f"PASSED batchcheck[good.pb]::{item}" in out
    assert list(json.loads((tmp_path / "baseline.json").read_text())["models"]) == ["good.pb"]
    assert "tensorflow in pytest: False" in out and "Traceback" not in out
    notices = [line for line in done.stderr.splitlines() if line.startswith("batchcheck")]
    notice = (r"batchcheck: model `.*`: still in .* after \d+ s(?: \(.*\))?: a slow model or a hang; "
              r"--graph-timeout 40 stops it in \d+ s")
    assert notices and all(re.fullmatch(notice, line) for line in notices), done.stderr
    assert any(line.startswith(f"batchcheck: model `{hang}`: still in trial 1 after ") for line in notices), notices
    assert time.monotonic() - started < 180


def test_remote_checker_crash_names_the_stage(tmp_path, monkeypatch, base_graph):
    """A child that dies (here: killed with SIGSEGV while idle) fails the next call, and every later one,
    with one line naming the model and the stage the plugin was in."""
    from batchcheck.errors import ChildStopped
    from batchcheck.options import CheckConfig
    from batchcheck.plans import BatchPlan
    from batchcheck.safety.remote import RemoteChecker
    from batchcheck.safety.supervise import stage

    monkeypatch.setenv("PYTHONPATH", CHILD_ENV["PYTHONPATH"])
    model = _write(tmp_path / "m.pb", base_graph)
    remote = RemoteChecker.open(model, CheckConfig(trials=1, batch_sizes=(2,)), Limits(60, 2 * 2**30))
    try:
        plan = BatchPlan(0, 1, (remote.main_images,))
        assert remote.run_plan(plan) and remote.describe(plan) == "batch of 2, probe `noise-0` at 1, mates: flat black"
        os.kill(remote._child.pid, signal.SIGSEGV)
        stage("fuzz example 7")
        for _ in range(2):
            with pytest.raises(ChildStopped) as stopped:
                remote.run_plan(plan)
            assert str(stopped.value) == (f"model `{model}`: crashed with SIGSEGV (a stack overflow from a deep or "
                                          f"recursive graph?) during fuzz example 7; the model is malformed or "
                                          f"triggers a TensorFlow bug")
    finally:
        remote.close()


# -- fuzzing: the GraphDef loader and the image reader, for a fixed budget -----------------------------

MUTATIONS = st.lists(st.tuples(st.sampled_from(["op", "input", "drop", "dup", "dtype", "name"]),
                               st.integers(0, 10**6), st.sampled_from(["WriteFile", "PyFunc", "Identity", "Nope",
                                                                       "", "relu", "^input", "x:9", "a\nb"])),
                     min_size=1, max_size=4)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutations=MUTATIONS)
def test_fuzz_graph_def_mutations(tmp_path, base_graph, mutations):
    from batchcheck.load.open import load_model

    graph_def = _copy(base_graph)
    for kind, where, word in mutations:
        node = graph_def.node[where % len(graph_def.node)]
        if kind == "op":
            node.op = word
        elif kind == "input":
            node.input.append(word)
        elif kind == "drop" and len(graph_def.node) > 1:
            graph_def.node.remove(node)
        elif kind == "dup":
            graph_def.node.add().CopyFrom(node)
        elif kind == "dtype":
            for value in node.attr.values():
                if value.WhichOneof("value") == "type":
                    value.type = where % 40
        elif kind == "name":
            node.name = word or "x"
    _fuzz_load(load_model, _write(tmp_path / "fuzz.pb", graph_def))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=3000), cut=st.integers(0, 4000), flips=st.lists(st.integers(0, 10**6), max_size=8))
def test_fuzz_graph_def_bytes(tmp_path, base_graph, data, cut, flips):
    from batchcheck.load.open import load_model

    raw = bytearray(base_graph.SerializeToString()[:cut] + data)
    for flip in flips:
        if raw:
            raw[flip % len(raw)] ^= 1 << (flip % 8)
    path = tmp_path / "fuzz.pb"
    path.write_bytes(bytes(raw))
    _fuzz_load(load_model, path)


def _fuzz_load(load_model, path: Path) -> None:
    """The loader either refuses (UsageError: one line once printed) or loads a graph the scan let through."""
    try:
        loaded = load_model(path, CheckConfig())
    except UsageError:
        return
    assert loaded.graph.node


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fmt=st.sampled_from(["PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP"]), cut=st.floats(0, 1),
       flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=10))
def test_fuzz_image_reader(tmp_path, fmt, cut, flips):
    from PIL import Image

    from batchcheck.load.images import pool_from_dir

    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8)).save(buffer, fmt)
    data = bytearray(buffer.getvalue()[:max(1, int(len(buffer.getvalue()) * cut))])
    for where, value in flips:
        data[where % len(data)] = value
    folder = tmp_path / "images"
    folder.mkdir(exist_ok=True)
    (folder / f"fuzz.{fmt.lower()}").write_bytes(bytes(data))
    try:
        pool = pool_from_dir(folder, (16, 16, 3), np.dtype(np.float32), "unit")
    except UsageError as error:
        assert "\n" not in str(error) and "fuzz." in str(error)
        return
    assert pool.array.shape == (1, 16, 16, 3) and np.isfinite(pool.array).all()
