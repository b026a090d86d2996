"""`pytest --graph` on ONNX models, as on TensorFlow ones: a glob mixing .onnx and .pb files, the `batchcheck`
fixture, hypothesis fuzzing and the baseline gate (pytester, in-process)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import hypothesis.core
import pytest

pytest.importorskip("onnxruntime")
pytest_plugins = ("pytester",)

FAST = ("--graph-trials", "3", "--graph-examples", "5", "-p", "no:cacheprovider", "-rA")


@pytest.fixture
def run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(hypothesis.core, "global_force_seed", None)
    for variable in ("CI", "BUILD_NUMBER"):
        monkeypatch.delenv(variable, raising=False)
    return pytester.runpytest


@pytest.fixture(scope="module")
def zoo(tmp_path_factory) -> dict[str, Path]:
    """A clean and a batch-dependent ONNX model, and a clean frozen GraphDef."""
    from fixtures.graphs import build_case
    from fixtures.onnx import build_onnx_case

    folder = tmp_path_factory.mktemp("onnx-zoo")
    return {"clean.onnx": build_onnx_case("onnx_mobilenet", folder),
            "reduce_batch.onnx": build_onnx_case("onnx_reduce_batch", folder),
            "gray.pb": build_case("grayscale", folder)}


def outcomes(result: pytest.RunResult) -> dict[str, str]:
    found = {}
    for line in result.outlines:
        word, _, rest = line.partition(" ")
        if word in ("PASSED", "FAILED", "XFAIL") and rest.startswith("batchcheck["):
            found[rest.split(" ")[0]] = word
    return found


def test_a_glob_mixes_onnx_and_frozen_graphs(pytester: pytest.Pytester, run, zoo) -> None:
    folder = pytester.mkdir("zoo")
    for name, path in zoo.items():
        shutil.copy(path, folder / name)
    result = run("--graph", "zoo/*", *FAST)
    found = outcomes(result)
    assert {item: found[item] for item in found if "reduce_batch" not in item} == {
        f"batchcheck[{name}]::{check}": "PASSED" for name in ("clean.onnx", "gray.pb")
        for check in ("invariance", "determinism", "fuzz")}
    assert found["batchcheck[reduce_batch.onnx]::invariance"] == found["batchcheck[reduce_batch.onnx]::fuzz"] == "FAILED"
    result.stdout.fnmatch_lines(["*/ReduceMean (ReduceMean, output 0)*"])


def test_the_fixture_checks_an_onnx_model(pytester: pytest.Pytester, run, zoo) -> None:
    pytester.makepyfile(test_export=f"""
        def test_clean(batchcheck):
            assert batchcheck.assert_invariant({str(zoo['clean.onnx'])!r}, trials=2).verdict == "invariant"

        def test_broken(batchcheck):
            batchcheck.assert_invariant({str(zoo['reduce_batch.onnx'])!r}, trials=2)
    """)
    result = run("-p", "no:cacheprovider", "-rA")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["E *.NotInvariant: `*", "E * node * /ReduceMean (ReduceMean, output 0)*"])


def test_baseline_gate_on_an_onnx_model(pytester: pytest.Pytester, run, zoo) -> None:
    folder = pytester.mkdir("models")
    shutil.copy(zoo["clean.onnx"], folder / "net.onnx")
    gate = ("--graph", "models/net.onnx", "--graph-baseline", "gate.json", *FAST)
    run(*gate, "--graph-update-baseline").assert_outcomes(passed=4)
    entry = json.loads((pytester.path / "gate.json").read_text())["models"]["models/net.onnx"]
    assert entry["verdict"] == "invariant" and entry["metrics"]
    shutil.copy(zoo["reduce_batch.onnx"], folder / "net.onnx")  # a broken export at the same path
    assert outcomes(run(*gate))["batchcheck[net.onnx]::baseline"] == "FAILED"
