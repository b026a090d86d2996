"""What users ship, loaded (issue 19 §4): TF1-style SavedModels with their own saver, graphs with uncalled library
functions, TF 1.x shapes in `_output_shapes`, a lone non-image input, Keras 2 files through tf-keras (their config
checked for Python first), and Keras augmentation layers named. Checked end to end through the CLI."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from batchcheck.backends.tf.keras_config import (
    KerasFile,
    read_keras_file,
    refuse_python,
)
from batchcheck.errors import UsageError
from fixtures.loaders import ELSEWHERE, LAMBDA_MARKER, LOADER_CASES

EXIT = {"invariant": 0, "batch_dependent": 1, "nondeterministic": 1, "error": 2}
QUICK = ("--trials", "3", "--batch-sizes", "2,3,5")
ROOT = Path(__file__).resolve().parent.parent
KERAS3_REJECTS = {"keras2_teachable_machine", "keras2_generator", "keras2_weights_json"}


def one_line_error(result, *words):
    assert result.code == 2 and result.err.count("\n") == 1 and "Traceback" not in result.err, result.err
    for word in words:
        assert word in result.err, result.err


@pytest.mark.parametrize("name", sorted(LOADER_CASES))
def test_verdict_culprit_and_exit_code(name, case_model, run_cli):
    case = LOADER_CASES[name]
    path, args = case_model(name)
    result = run_cli(path, *args, *QUICK)
    assert result.code == EXIT[case.verdict], result.out + result.err
    if case.verdict == "error":
        one_line_error(result, case.error_mentions)
        assert result.report["verdict"] == "error"
        return
    assert result.err == "" and result.report["verdict"] == case.verdict
    first = result.report["first_divergence"]
    if case.verdict == "invariant":
        assert first is None
    else:
        assert (first["node"], first["op"], first["cause"]) == (case.first_node, case.first_op, case.cause)


def notes_of(run_cli, path, *args) -> list[str]:
    result = run_cli(path, *args, "--trials", "2")
    assert result.code in (0, 1), result.err
    return result.report["model"]["notes"]


def test_tf1_savedmodel_restores_its_own_variables_and_sets_aside_the_exporters_checkpoint_ops(case_model, run_cli):
    path, _ = case_model("savedmodel_tf1_saver")
    (note,) = notes_of(run_cli, path)
    assert note.startswith("set aside 3 checkpoint op(s) the exporter left") and "`RestoreV2`" in note, note


@pytest.mark.parametrize("name,node,where", [
    ("savedmodel_restores_elsewhere", "save/RestoreV2", f"path `{ELSEWHERE}`"),  # under the SaverDef, elsewhere
    ("savedmodel_init_restores", "RestoreV2", "path `model`"),  # the exporter's leftover, run by the init op
])
def test_a_restore_of_another_path_is_refused(name, node, where, case_model, run_cli):
    path, _ = case_model(name)
    one_line_error(run_cli(path), f"refused to run file op RestoreV2 (node `{node}`, at top level, {where})",
                   "--allow-op RestoreV2")


def test_uncalled_library_functions_are_dropped_and_said(case_model, run_cli):
    path, _ = case_model("uncalled_dataset_function")
    (note,) = notes_of(run_cli, path)
    assert note.startswith("dropped 2 library function(s) that nothing in the graph calls, before the op scan")
    assert "`__inference_read_training_records`" in note


def test_a_called_dataset_function_is_still_refused(case_model, run_cli):
    path, _ = case_model("called_dataset_function")
    one_line_error(run_cli(path), "refused to run file op TFRecordDataset", "in function `__inference_Dataset_")


def test_shape_from_output_shapes_without_input_shape(case_model, run_cli):
    path, _ = case_model("output_shapes_input")
    model = run_cli(path, "--trials", "2").report["model"]
    assert (model["input"], model["per_image_shape"]) == ("input:0", [32, 32, 3])


def test_a_lone_non_image_placeholder_is_the_input_given_its_shape(case_model, run_cli):
    path, args = case_model("lone_int_input")
    one_line_error(run_cli(path), "no image placeholder found", "give --input-shape to test `features`")
    result = run_cli(path, *args, "--trials", "2")
    assert (result.report["model"]["input"], result.report["model"]["per_image_shape"]) == ("features:0", [64])
    assert result.report["model"]["notes"] == [
        "input `features` (int32) is the only placeholder and not an image: taken as the input, since "
        "--input-shape was given"]


@pytest.mark.parametrize("name", sorted(n for n in LOADER_CASES if n.startswith("keras2_") and n != "keras2_lambda"))
def test_keras2_files_load_with_tf_keras_and_say_so(name, case_model, run_cli):
    import tf_keras

    path, args = case_model(name)
    result = run_cli(path, *args, "--trials", "2")
    assert result.report["model"]["format"] == "keras2"
    notes = result.report["model"]["notes"]
    assert notes[-1] == f"written by Keras {tf_keras.__version__}: loaded with tf-keras {tf_keras.__version__}"
    if name == "keras2_weights_json":
        assert notes[0] == "architecture from `model.json` beside `model.h5`, which holds weights only"


@pytest.mark.filterwarnings("ignore:Argument `alpha` is deprecated")  # Keras 3 reading the generator's LeakyReLU
def test_the_keras2_fixtures_are_files_keras3_rejects(case_model):
    """Teachable Machine's traits (nested Sequentials around a functional model, DepthwiseConv2D with `groups`,
    BN axis as a list), the generator's Sequential in a functional model, a weights-only .h5: Keras 3 fails."""
    import keras

    for name in sorted(KERAS3_REJECTS):
        path, _ = case_model(name)
        with pytest.raises(Exception):  # noqa: B017 - Keras raises TypeError, IndexError, ValueError here
            keras.models.load_model(str(path), compile=False)
    config = json.dumps(read_keras_file(case_model("keras2_teachable_machine")[0]).config)
    assert '"class_name": "DepthwiseConv2D"' in config and '"groups": 1' in config and '"axis": [3]' in config


def test_lambda_refused_before_anything_runs_it(case_model, run_cli):
    path, _ = case_model("keras2_lambda")
    one_line_error(run_cli(path), f"model `{path}`: refused to load: layer `scale` is a Lambda layer")
    assert not (path.parent / LAMBDA_MARKER).exists(), "the Lambda's Python ran"


@pytest.mark.parametrize("entry,words", [
    ({"class_name": "Dense", "module": "evil.layers", "config": {"name": "head"}},
     "layer `head` (Dense) names Python module `evil.layers`"),
    ({"class_name": "Scale", "registered_name": "Custom>Scale", "config": {"name": "scale"}},
     "layer `scale` is a custom object (`Custom>Scale`)"),
    ({"class_name": "TFOpLambda", "config": {"name": "tf.io.gfile.remove", "function": "io.gfile.remove"}},
     "(TFOpLambda) calls `io.gfile.remove`, not a TensorFlow op"),
    ({"class_name": "Activation", "config": {"name": "act", "activation": {
        "class_name": "__lambda__", "config": {"code": "4wEAAAAAAAAA"}}}},
     "layer `act` holds a Python function (marshalled bytecode)"),
])
def test_python_carrying_configs_are_refused_naming_the_layer(entry, words, tmp_path):
    config = {"class_name": "Functional", "config": {"name": "model", "layers": [
        {"class_name": "InputLayer", "config": {"name": "input"}}, entry]}}
    with pytest.raises(UsageError, match="refused to load") as refused:
        refuse_python(KerasFile(tmp_path / "model.h5", "2.15.0", config))
    assert words in str(refused.value)
    math = {"class_name": "TFOpLambda", "config": {"name": "tf.math.multiply", "function": "math.multiply"}}
    refuse_python(KerasFile(tmp_path / "model.h5", "2.15.0", {**config, "config": {"layers": [math]}}))


def test_weights_only_h5_without_its_architecture_says_what_to_put_beside_it(case_model, run_cli, tmp_path):
    path, _ = case_model("keras2_weights_json")
    alone = tmp_path / "weights.h5"
    alone.write_bytes(path.read_bytes())
    one_line_error(run_cli(alone), "holds weights only", "`weights.json` or `model.json`")


def test_augmentation_layers_are_named_with_how_to_turn_them_off(case_model, run_cli):
    path, _ = case_model("keras3_augmentation")
    (note,) = notes_of(run_cli, path)
    assert note.startswith("augmentation layers run in model(x): RandomFlip `flip`, RandomRotation `rotate`")
    assert "model(x, training=False) or model.predict(x) turns them off" in note


def run_without_tf_keras(path: Path, tmp_path: Path) -> tuple[int, str, dict | None]:
    """`batchcheck check PATH` in a child whose `import tf_keras` fails, as when the extra is not installed."""
    shim = tmp_path / "shim" / "tf_keras"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text('raise ImportError("No module named \'tf_keras\'")\n')
    report = tmp_path / "report.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(shim.parent), str(ROOT)])}
    child = subprocess.run([sys.executable, "-m", "batchcheck", "check", str(path), "--trials", "2",
                            "--json", str(report)], env=env, capture_output=True, text=True, timeout=600)
    return child.returncode, child.stderr, json.loads(report.read_text()) if report.exists() else None


def test_without_tf_keras_one_line_says_how_to_install_it(case_model, tmp_path):
    import tensorflow as tf

    code, err, _ = run_without_tf_keras(case_model("keras2_teachable_machine")[0], tmp_path)
    major_minor = ".".join(tf.__version__.split(".")[:2])
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert "which Keras 3 cannot load" in err and f'pip install "tf-keras=={major_minor}.*"' in err, err


def test_without_tf_keras_keras3_loads_what_it_can_and_says_so(case_model, tmp_path):
    code, err, report = run_without_tf_keras(case_model("keras2_bn_training")[0], tmp_path)
    assert code == 1 and report["verdict"] == "batch_dependent", err
    assert report["model"]["format"] == "keras"
    assert "loaded with Keras 3, since tf-keras is not installed" in report["model"]["notes"][-1]
