"""`pytest --graph`: the plugin run for real (pytester) on fixture graphs and real third-party graphs.

Most runs are in-process (TensorFlow is imported once); runs that need a fresh interpreter (--help,
xdist workers) use a subprocess.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import hypothesis.core
import pytest

from batchcheck.pytest.settings import unique_labels

pytest_plugins = ("pytester",)

REAL_MODELS = Path(__file__).resolve().parents[2] / "shared" / "real-models"
FAST = ("--graph-trials", "3", "--graph-examples", "10", "-p", "no:cacheprovider")
BN_ROOT = "MobilenetV1/Conv2d_0/BatchNorm/FusedBatchNormV3"


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Fixture graphs: a small clean CNN, a batch-mean one, dropout, and MobileNet with BN in training mode."""
    from fixtures.graphs import build_case

    folder = tmp_path_factory.mktemp("plugin-models")
    return {name: build_case(name, folder)
            for name in ("grayscale", "batch_mean", "dropout", "keep_prob_1", "mobilenet_v1_bn_training")}


@pytest.fixture
def run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    """pytest in-process in an empty folder; --hypothesis-seed must not leak into this session, and the
    inner run formats as on a desk even under CI (pytest stops truncating its summary when CI is set)."""
    monkeypatch.setattr(hypothesis.core, "global_force_seed", None)
    for variable in ("CI", "BUILD_NUMBER"):
        monkeypatch.delenv(variable, raising=False)
    return pytester.runpytest


def outcomes(result: pytest.RunResult) -> dict[str, str]:
    """node id -> outcome, from the -rA short summary."""
    found = {}
    for line in result.outlines:
        word, _, rest = line.partition(" ")
        if word in ("PASSED", "FAILED", "SKIPPED", "XFAIL", "ERROR") and rest.startswith("batchcheck["):
            found[rest.split(" ")[0]] = word
    return found


def test_help_does_not_import_tensorflow(tmp_path: Path) -> None:
    code = ("import sys, pytest; code = pytest.main(['--help']); "
            "assert 'tensorflow' not in sys.modules, 'tensorflow imported'; sys.exit(code)")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "--graph=MODEL" in done.stdout and "--graph-batch-sizes" in done.stdout
    assert "--graph-baseline=FILE" in done.stdout and "batchcheck:" in done.stdout


def test_a_clean_model_passes_in_a_folder_without_tests(run, models) -> None:
    result = run(f"--graph={models['grayscale']}", *FAST, "-rA")
    result.assert_outcomes(passed=3)
    assert outcomes(result) == {f"batchcheck[model.pb]::{name}": "PASSED"
                                for name in ("invariance", "determinism", "fuzz")}
    assert "batchcheck: 1 model(s)" in result.stdout.str()


def test_bn_training_fails_naming_the_culprit_and_the_smallest_batch(run, models) -> None:
    result = run(f"--graph={models['mobilenet_v1_bn_training']}", *FAST, "--graph-examples", "30", "-rA")
    assert outcomes(result) == {"batchcheck[model.pb]::invariance": "FAILED",
                                "batchcheck[model.pb]::determinism": "PASSED",
                                "batchcheck[model.pb]::fuzz": "FAILED"}
    text = result.stdout.str()
    assert text.count(f"{BN_ROOT} (FusedBatchNormV3, output 0)") == 2
    result.stdout.fnmatch_lines([
        "*batchcheck[[]model.pb]::fuzz*",
        "`*/model.pb` is batch-dependent: hypothesis found a batch that changes the probe's activations",
        "first divergent layer  MobilenetV1/Conv2d_0",
        f"node  * {BN_ROOT} (FusedBatchNormV3, output 0)",
        "cause  * batchnorm_training",
        "max |diff|  * (relative *; tolerance atol * + rtol * × max|solo|)",
        "hint  * BatchNorm in training mode, uses batch statistics; fix: export for inference:*",
        "batch  * batch of 2, probe `noise-0` at 0, mates: flat black (the smallest failing*",
        "layer * tensors * divergent * max |diff| * max rel",
        "MobilenetV1/Conv2d_0 * 5 * 4 *",
    ])
    model = models["mobilenet_v1_bn_training"]
    assert f"reproduce: batchcheck check {model} --trials 3 --seed 0" in text
    assert (f"pytest --graph {model} --graph-trials 3 --graph-seed 0 -k 'batchcheck and invariance'"
            in text)
    fuzz_line = next(line for line in result.outlines if "-k 'batchcheck and fuzz'" in line)
    # a derandomized profile (hypothesis loads one under CI) replays without a seed
    assert ("--hypothesis-seed " in fuzz_line) != hypothesis.settings().derandomize
    assert "--graph-examples 30" in fuzz_line
    assert "Traceback" not in text


def test_a_forced_hypothesis_seed_is_the_one_to_replay(run, models) -> None:
    result = run(f"--graph={models['batch_mean']}", *FAST, "--hypothesis-seed", "123", "-rA")
    assert outcomes(result)["batchcheck[model.pb]::invariance"] == "FAILED"
    result.stdout.fnmatch_lines(["node * BatchMean/Mean (Mean, output 0)", "cause * batch_reduction"])
    assert "--graph-seed 0 --hypothesis-seed 123 --graph-examples 10 -k 'batchcheck and fuzz'" in result.stdout.str()


def test_random_values_that_never_reach_the_data_pass_determinism(run, models) -> None:
    """keep_prob=1: the RandomUniform differs run to run but the mask is all ones, as the CLI judges it."""
    result = run(f"--graph={models['keep_prob_1']}", "--graph-feed", "keep_prob=1.0", *FAST, "-rA")
    assert set(outcomes(result).values()) == {"PASSED"} and len(outcomes(result)) == 3
    half = run(f"--graph={models['keep_prob_1']}", "--graph-feed", "keep_prob=0.5", *FAST, "-rA")
    assert outcomes(half)["batchcheck[model.pb]::determinism"] == "FAILED"


def test_dropout_fails_determinism_only(run, models) -> None:
    result = run(f"--graph={models['dropout']}", *FAST, "-rA")
    assert outcomes(result) == {"batchcheck[model.pb]::invariance": "PASSED",
                                "batchcheck[model.pb]::determinism": "FAILED",
                                "batchcheck[model.pb]::fuzz": "PASSED"}
    result.stdout.fnmatch_lines([
        "`*/dropout/model.pb` is nondeterministic: the same feed run twice gives different activations",
        "first random layer  dropout/random_uniform",
        "node * dropout/random_uniform/RandomUniform (RandomUniform, output 0)",
        "cause * random_op",
        "* is_training=False (slim) or training=False (Keras), or feed keep_prob=1.0 /",
        "* rate=0 with --graph-feed NAME=VALUE",
        "batch * probe `noise-0` alone, run twice",
    ])


def test_fuzz_of_100_examples_loads_the_graph_once(run, models, monkeypatch: pytest.MonkeyPatch) -> None:
    from batchcheck.checker import Checker
    from batchcheck.run.runner import Runner

    calls = {"import": 0, "plan": 0}

    def counting(method, name: str):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return method(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(Runner, "__init__", counting(Runner.__init__, "import"))
    monkeypatch.setattr(Checker, "run_plan", counting(Checker.run_plan, "plan"))
    result = run(f"--graph={models['grayscale']}", "--graph-examples", "100", "-k", "fuzz", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, deselected=2)
    assert calls["import"] == 1
    assert calls["plan"] >= 100


def test_items_run_beside_users_tests_and_the_fixture(pytester: pytest.Pytester, run, models) -> None:
    pytester.makepyfile(test_export=f"""
        import pytest
        from batchcheck import NotInvariant

        def test_clean(batchcheck):
            result = batchcheck.assert_invariant({str(models['grayscale'])!r}, trials=2)
            assert result.verdict == "invariant"

        def test_broken(batchcheck):
            batchcheck.assert_invariant({str(models['batch_mean'])!r})

        def test_bad_option(batchcheck):
            with pytest.raises(Exception, match="trialz=3: not a check option"):
                batchcheck.assert_invariant("x.pb", trialz=3)

        def test_plain():
            assert True
    """)
    result = run(f"--graph={models['grayscale']}", *FAST, "-rA")
    result.assert_outcomes(passed=6, failed=1)
    text = result.stdout.str()
    result.stdout.fnmatch_lines(["E *.NotInvariant: `*", "FAILED test_export.py::test_broken - batchcheck*"])
    result.stdout.fnmatch_lines(["E * node * BatchMean/Mean (Mean, output 0)"])
    assert f"reproduce: batchcheck check {models['batch_mean']} --trials 3 --seed 0" in text
    result.stdout.fnmatch_lines(["test_export.py:*: NotInvariant"])  # the traceback stops at the user's line


@pytest.mark.parametrize("args, message", [
    (["--graph", "nothing/*.pb"], "ERROR: batchcheck: --graph nothing/*.pb: matches no file or folder (from *)"),
    (["--graph", "missing.pb"], "ERROR: batchcheck: --graph missing.pb: no such file or folder; pass a frozen *"),
    (["--graph", "."], "ERROR: batchcheck: model `*`: a folder but not a SavedModel (no saved_model.pb); *"),
    (["--graph-trials", "0"], "ERROR: batchcheck: --graph-trials 0: give a whole number of at least 1"),
    (["--graph-batch-sizes", "1,2"], "ERROR: batchcheck: --graph-batch-sizes 1,2: give whole numbers from 2*"),
    (["--graph-batch-sizes", "2,x"], "*argument --graph-batch-sizes: '2,x' is not a comma-separated list*"),
    (["--graph-examples", "0"], "ERROR: batchcheck: --graph-examples 0: give a whole number of at least 1"),
    (["--graph-update-baseline"], "ERROR: batchcheck: --graph-update-baseline: say which file with --graph-baseline*"),
    (["--graph-baseline", "b.json"], "ERROR: batchcheck: --graph-baseline b.json: the gate checks --graph models*"),
    (["--graph", "{model}", "--graph-baseline", "b.json"],
     "ERROR: batchcheck: --graph-baseline */b.json: no such file*"),
    (["--graph", "{model}", "--graph-baseline", "b.json", "--graph-exact", "--graph-atol", "1"],
     "ERROR: batchcheck: --graph-exact: choose either --graph-exact or --graph-atol/--graph-rtol"),
])
def test_bad_arguments_give_one_usage_error(pytester: pytest.Pytester, run, models, args, message) -> None:
    args = [arg.format(model=models["grayscale"]) for arg in args]
    result = run(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_a_model_tensorflow_cannot_read_fails_once_in_one_line(pytester: pytest.Pytester, run) -> None:
    pytester.path.joinpath("broken.pb").write_bytes(b"not a graph")
    result = run("--graph", "broken.pb", "-rA", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1, skipped=2)
    result.stdout.fnmatch_lines([
        "batchcheck: model `*broken.pb`: not a TensorFlow GraphDef: * (*); pass a frozen*",
        "SKIPPED [[]2] broken.pb: the model cannot be checked: see batchcheck[[]broken.pb]::invariance",
    ])
    assert "Traceback" not in result.stdout.str()


def test_baseline_cycle(pytester: pytest.Pytester, run, models) -> None:
    zoo = pytester.mkdir("zoo")
    shutil.copy(models["grayscale"], zoo / "net.pb")
    gate = ("--graph", "zoo/*.pb", "--graph-baseline", "gate.json", *FAST, "-rA")

    written = run(*gate, "--graph-update-baseline")
    written.assert_outcomes(passed=4)
    written.stdout.fnmatch_lines(["batchcheck: wrote 1 model(s) to baseline */gate.json: zoo/net.pb"])
    entry = json.loads((pytester.path / "gate.json").read_text())["models"]["zoo/net.pb"]
    assert entry["verdict"] == "invariant" and entry["metrics"]

    run(*gate).assert_outcomes(passed=4)

    shutil.copy(models["batch_mean"], zoo / "net.pb")  # a broken export at the same path
    regressed = run(*gate)
    assert outcomes(regressed)["batchcheck[net.pb]::baseline"] == "FAILED"
    regressed.stdout.fnmatch_lines([
        "`zoo/net.pb` regressed against its baseline entry `zoo/net.pb` in */gate.json:",
        "what changed*baseline*now*",
        "verdict*invariant*batch_dependent (root*",
        "layer `BatchMean`*ok*divergent, relative*",
        "fixed plan: batch of 4, probe `noise-0` at 1, mates: flat black, *",
        "accept the change: pytest --graph zoo/net.pb *--graph-baseline */gate.json --graph-update-baseline*",
    ])

    accepted = run(*gate, "--graph-update-baseline")
    assert outcomes(accepted) == {"batchcheck[net.pb]::invariance": "XFAIL",
                                  "batchcheck[net.pb]::determinism": "PASSED",
                                  "batchcheck[net.pb]::fuzz": "XFAIL",
                                  "batchcheck[net.pb]::baseline": "PASSED"}
    again = run(*gate)
    assert outcomes(again) == outcomes(accepted)
    again.stdout.fnmatch_lines(["XFAIL batchcheck[[]net.pb]::invariance - batch_dependent (root `BatchMean/Mean`), "
                                "as accepted in baseline */gate.json"])

    shutil.copy(models["grayscale"], zoo / "net.pb")  # fixed again: passes, with a notice to lock it in
    fixed = run(*gate)
    fixed.assert_outcomes(passed=4, warnings=1)
    fixed.stdout.fnmatch_lines(["*BaselineNotice: zoo/net.pb improved on its baseline (verdict: batch_dependent*"])


def test_xdist_keeps_each_model_on_one_worker_and_writes_one_baseline(pytester: pytest.Pytester, models) -> None:
    for name in ("grayscale", "batch_mean"):
        pytester.mkdir(name).joinpath("model.pb").write_bytes(models[name].read_bytes())
    result = pytester.runpytest_subprocess(
        "-n", "2", "--graph", "*/model.pb", "--graph-baseline", "gate.json", "--graph-update-baseline",
        "--junitxml", "junit.xml", "-v", "--graph-trials", "2", "--graph-examples", "5", "-p", "no:cacheprovider",
        timeout=300)
    assert result.ret == 0, result.stdout.str()
    workers = {}
    for line in result.outlines:  # "[gw0] [ 12%] PASSED batchcheck[grayscale/model.pb]::invariance"
        if line.startswith("[gw") and "batchcheck[" in line:
            node = line.split()[-1]
            workers.setdefault(node.split("::")[0], set()).add(line.split()[0])
    assert set(workers) == {"batchcheck[grayscale/model.pb]", "batchcheck[batch_mean/model.pb]"}
    assert all(len(found) == 1 for found in workers.values()), workers
    assert set(json.loads((pytester.path / "gate.json").read_text())["models"]) == {"grayscale/model.pb",
                                                                                  "batch_mean/model.pb"}
    cases = list(ElementTree.parse(pytester.path / "junit.xml").getroot().iter("testcase"))
    # pytest < 9.2 writes the whole id as the name; 9.2 splits it into classname and name
    (invariance,) = [case for case in cases if "batch_mean" in case.get("classname", "") + case.get("name", "")
                     and case.get("name", "").endswith("invariance")]
    assert len(cases) == 8
    assert invariance.find("skipped") is not None  # xfail: accepted


@pytest.mark.skipif(not REAL_MODELS.is_dir(), reason=f"{REAL_MODELS} is not here")
def test_real_models(run) -> None:
    clean = run(f"--graph={REAL_MODELS}/cdyang_emotion_tiny_cnn_049.pb", *FAST, "-rA")
    clean.assert_outcomes(passed=3)
    fused = run(f"--graph={REAL_MODELS}/dl4j_fused_batch_norm_float32_nhwc.pb", "--graph-input", "in_0", *FAST, "-rA")
    assert outcomes(fused)["batchcheck[dl4j_fused_batch_norm_float32_nhwc.pb]::invariance"] == "FAILED"
    fused.stdout.fnmatch_lines(["node * FusedBatchNormV3 (FusedBatchNormV3, output 0)",
                                "cause * batchnorm_training"])
    assert "--graph-input in_0" in fused.stdout.str()


def test_labels_are_the_shortest_unique_path_suffixes() -> None:
    assert unique_labels([Path("zoo/a.pb"), Path("zoo/b.pb")]) == ["a.pb", "b.pb"]
    assert unique_labels([Path("x/a/model.pb"), Path("x/b/model.pb"), Path("c.pb")]) == [
        "a/model.pb", "b/model.pb", "c.pb"]
    assert unique_labels([Path("/m/saved_model"), Path("saved_model")]) == ["m/saved_model", "saved_model"]


def test_ids_stay_short_when_the_model_lies_outside_the_folder(pytester: pytest.Pytester, run, models,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A `--graph /elsewhere/model.pb` makes pytest choose a rootdir above the folder it runs in; the ids are
    still `batchcheck[LABEL]::item`, alone or under xdist."""
    monkeypatch.chdir(pytester.mkdir("inner"))
    for extra in ((), ("-n", "2")):
        result = run("--graph", str(models["batch_mean"]), *FAST, "-rA", *extra)
        text = result.stdout.str()
        assert "rootdir: " in text and "FAILED batchcheck[model.pb]::invariance - " in text
        assert "_ batchcheck[model.pb]::invariance _" in text  # the failure's heading
        assert "../" not in text and "inner/batchcheck" not in text
