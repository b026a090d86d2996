"""Bad input: one clear line on stderr, a documented exit code, no traceback, nothing written."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

IMAGES_BAD = Path(__file__).resolve().parent.parent / "fixtures" / "images_bad"


def assert_one_line_error(result, *words: str) -> None:
    __tracebackhide__ = True
    assert result.code == 2, result.out + result.err
    assert result.err.startswith("batchcheck") and result.err.count("\n") == 1, result.err
    assert "Traceback" not in result.err and result.out == ""
    for word in words:
        assert word in result.err, result.err


def test_missing_file(run_cli, tmp_path):
    assert_one_line_error(run_cli(tmp_path / "nope.pb"), "nope.pb", "no such file")


def test_not_a_model(run_cli, tmp_path):
    junk = tmp_path / "photo.pb"
    junk.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    assert_one_line_error(run_cli(junk), "photo.pb", "not a TensorFlow GraphDef")


def test_text_that_is_not_a_graph(run_cli, tmp_path):
    text = tmp_path / "notes.pbtxt"
    text.write_text("hello: world\n")
    assert_one_line_error(run_cli(text), "notes.pbtxt", "not a TensorFlow GraphDef")


def test_folder_that_is_not_a_savedmodel(run_cli, tmp_path):
    assert_one_line_error(run_cli(tmp_path), "not a SavedModel")


def test_unknown_input_and_output_names_suggest(case_model, run_cli):
    path, _ = case_model("mobilenet_v1")
    assert_one_line_error(run_cli(path, "--input", "inptu"), "--input `inptu`", "did you mean `input`")
    assert_one_line_error(run_cli(path, "--output", "MobilenetV1/Logits/SpatialSqueez"),
                          "no such node", "`MobilenetV1/Logits/SpatialSqueeze`")


def test_bad_feed(case_model, run_cli):
    path, _ = case_model("cond_v1")
    assert_one_line_error(run_cli(path, "--feed", "is_training=maybe"), "is_training", "true or false")
    assert_one_line_error(run_cli(path, "--feed", "is_trainin=false"), "no such node")
    assert_one_line_error(run_cli(path, "--feed", "input=1"), "image input")
    assert_one_line_error(run_cli(path, "--feed", "is_trainin=false"), "placeholders: `is_training`")
    assert_one_line_error(run_cli(path, "--feed", "is_training=false", "--feed", "is_training=true"),
                          "--feed is_training=…: given twice (false and true); keep one")


def test_names_suggested_by_part(case_model, run_cli):
    """A name typed without its scope, or a fragment of it, finds the node."""
    path, _ = case_model("mobilenet_v1")
    assert_one_line_error(run_cli(path, "--output", "Predictions/Reshape_1"), "`MobilenetV1/Predictions/Reshape_1`")
    assert_one_line_error(run_cli(path, "--output", "SpatialSqueeze"), "`MobilenetV1/Logits/SpatialSqueeze`")


def test_no_image_placeholder_lists_what_was_considered(run_cli):
    from conftest import REAL_MODELS

    path = REAL_MODELS / "dl4j_fused_batch_norm_float32_nhwc.pb"  # its input is a Const
    if not path.exists():
        pytest.skip("../shared/real-models is absent")
    assert_one_line_error(run_cli(path), "no image placeholder found (placeholders considered: none;",
                          "--input NAME")


def test_required_placeholder(case_model, run_cli):
    path, _ = case_model("keep_prob_missing")
    assert_one_line_error(run_cli(path), "`keep_prob`", "float32", "--feed keep_prob=VALUE")
    assert_one_line_error(run_cli(path, "--feed", "keep_prob=1,1,1"),
                          "`keep_prob` takes a float32 tensor of shape [], not [3]; give one value")


def test_missing_checkpoint(case_model, run_cli, tmp_path):
    path, args = case_model("meta_checkpoint")
    output = args[args.index("--output") + 1]
    assert_one_line_error(run_cli(path, "--checkpoint", tmp_path / "model-1", "--output", output),
                          "checkpoint", "model-1", "--checkpoint PREFIX")
    assert_one_line_error(run_cli(path, *args[:2]), "--output NAME")


def test_bad_image_folder(case_model, run_cli, tmp_path):
    path, _ = case_model("mobilenet_v1")
    assert_one_line_error(run_cli(path, "--images", IMAGES_BAD), "notes.txt", "not an image")
    assert_one_line_error(run_cli(path, "--images", tmp_path / "none"), "none")


def test_wrong_input_shape(case_model, run_cli):
    path, _ = case_model("mobilenet_v1")
    assert_one_line_error(run_cli(path, "--input-shape", "32,32"), "--input-shape 32,32", "rank 3")


def test_json_folder_missing(case_model, run_cli, tmp_path):
    path, _ = case_model("mobilenet_v1")
    result = run_cli(path, "--json", tmp_path / "no" / "r.json", json_report=False)
    assert_one_line_error(result, "does not exist")


@pytest.mark.parametrize("args,words", [
    (["--trials", "0"], ["--trials 0: give a whole number of at least 1"]),
    (["--seed", "-1"], ["--seed -1: give a whole number of at least 0"]),
    (["--batch-sizes", "1,2"], ["--batch-sizes 1,2: ", "from 2"]),
    (["--batch-sizes", "two"], ["--batch-sizes", "comma-separated"]),
    (["--exact", "--atol", "1"], ["--exact or --atol"]),
    (["--preprocess", "fancy"], ["--preprocess", "invalid choice"]),
])
def test_bad_options_one_line(args, words, case_model, run_cli, capsys):
    path, _ = case_model("mobilenet_v1")
    try:
        result = run_cli(path, *args)
    except SystemExit as exc:  # argparse exits itself
        captured = capsys.readouterr()
        from conftest import CliRun

        result = CliRun(exc.code, captured.out, captured.err, None)
    assert_one_line_error(result, *words)


def run_subprocess(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "batchcheck", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def test_subprocess_stderr_clean_and_nothing_written(case_model, tmp_path):
    """The real command: TF's start-up logs stay off stderr; only the --json file is written."""
    path, _ = case_model("mobilenet_v1_bn_training")
    work = tmp_path / "cwd"
    work.mkdir()
    done = run_subprocess("check", str(path), "--trials", "2", "--json", "out.json", cwd=work)
    assert done.returncode == 1 and done.stderr == ""
    assert ("first divergent layer `MobilenetV1/Conv2d_0`, node `MobilenetV1/Conv2d_0/BatchNorm/FusedBatchNormV3`"
            in done.stdout)
    assert "fix:" in done.stdout
    assert sorted(p.name for p in work.iterdir()) == ["out.json"]
    broken = run_subprocess("check", str(work / "missing.pb"), cwd=work)
    assert broken.returncode == 2 and broken.stderr.count("\n") == 1 and broken.stdout == ""


@pytest.mark.parametrize("target, words", [("{tmp}", "is a folder"), ("/proc/batchcheck-report.json", "cannot be written")])
def test_json_path_checked_before_the_run(case_model, tmp_path, capsys, target, words):
    """A folder or an unwritable path is refused before any work, never after a finished check."""
    from batchcheck.cli import main
    from conftest import CliRun

    path, _ = case_model("batch_mean")
    code = main(["check", str(path), "--json", target.format(tmp=tmp_path)])
    captured = capsys.readouterr()
    assert_one_line_error(CliRun(code, captured.out, captured.err, None), "--json", words)


def test_json_to_standard_output_stands_alone(case_model, capsys):
    import json

    from batchcheck.cli import main

    path, _ = case_model("batch_mean")
    assert main(["check", str(path), "--trials", "2", "--json", "-"]) == 1
    out = capsys.readouterr().out
    assert json.loads(out)["first_divergence"]["node"] == "BatchMean/Mean"  # nothing but the JSON


def test_an_untestable_model_still_writes_a_json_report(case_model, run_cli):
    path, _ = case_model("keep_prob_missing")
    result = run_cli(path)
    assert result.code == 2 and result.report["verdict"] == "error"
    assert result.report["stage"] == "load" and "--feed keep_prob=VALUE" in result.report["error"]


def test_quiet_prints_the_verdict_line_only(case_model, run_cli):
    path, _ = case_model("batch_mean")
    result = run_cli(path, "--trials", "2", "--quiet")
    assert result.code == 1 and result.out.startswith("FAIL batch_dependent") and result.out.count("\n") == 1


def test_every_requested_batch_size_runs(case_model, run_cli):
    """`--batch-sizes 32 --trials 1` used to run one batch of 4 and pass: now 32 runs too, and the report says
    that more trials ran than asked for."""
    path, _ = case_model("grayscale")
    result = run_cli(path, "--batch-sizes", "32", "--trials", "1")
    assert sorted(t["batch_size"] for t in result.report["trials"]) == [4, 32]
    assert "1 more than --trials 1, to run every batch size" in result.out


def test_first_divergence_figures_are_the_named_tensors(case_model, run_cli):
    path, _ = case_model("mobilenet_v1_bn_training")
    report = run_cli(path, "--trials", "2").report
    first = report["first_divergence"]
    named = next(t for t in report["tensors"] if t["tensor"] == f"{first['node']}:{first['output']}")
    assert (first["max_abs_diff"], first["max_rel_diff"]) == (named["max_abs_diff"], named["max_rel_diff"])


def test_preprocess_on_a_uint8_input_is_refused(case_model, run_cli):
    """uint8 inputs get raw pixels: a --preprocess given for one would silently do nothing."""
    path, _ = case_model("uint8_input")
    assert_one_line_error(run_cli(path, "--preprocess", "unit"), "--preprocess unit: input `input` is uint8",
                          "drop --preprocess")
    assert run_cli(path, "--trials", "2").code == 0


@pytest.mark.parametrize("name, content, words", [
    ("photo.pb", b"\x89PNG\r\n\x1a\n" + bytes(64), "it is a PNG image"),
    ("empty.pb", b"", "the file is empty"),
    ("notes.h5", b"hello\n", "neither a .keras zip archive nor an HDF5 .h5 file"),
])
def test_what_a_wrong_file_looks_like_is_said_in_words(run_cli, tmp_path, name, content, words):
    (tmp_path / name).write_bytes(content)
    assert_one_line_error(run_cli(tmp_path / name), name, words)


def test_truncated_files_are_called_so(case_model, run_cli, tmp_path):
    for name, size, words in (("mobilenet_v1", 300, "do not parse as a protobuf (truncated or corrupt?)"),
                              ("keras", 2000, "a zip archive of 2,000 bytes, perhaps truncated")):
        path, _ = case_model(name)
        cut = tmp_path / f"cut{path.suffix}"
        cut.write_bytes(path.read_bytes()[:size])
        assert_one_line_error(run_cli(cut), "cut", words)


def test_a_meta_graph_finds_its_checkpoint_and_says_which(case_model, run_cli):
    path, args = case_model("meta_checkpoint")
    output = args[args.index("--output") + 1]
    report = run_cli(path, "--output", output, "--trials", "2").report
    assert report["verdict"] == "invariant"
    assert any(note.startswith("weights from checkpoint `") and "found beside the .meta" in note
               for note in report["model"]["notes"]), report["model"]["notes"]


def test_several_models_one_summary_and_the_worst_exit(case_model, run_cli, tmp_path):
    """`check a.pb 'b*/model.pb' c.pb`: each model's report, one summary table, the worst exit code, and one
    JSON with every model's report (an error report for the one that cannot be checked)."""
    clean, _ = case_model("grayscale")
    dependent, _ = case_model("batch_mean")
    broken, _ = case_model("keep_prob_missing")
    pattern = str(dependent.parent.parent / "batch_m*" / "model.pb")
    result = run_cli(clean, pattern, broken, "--trials", "2", "--quiet", "--markdown", tmp_path / "all.md")
    assert result.code == 2  # worst of 0, 1 and 2
    assert [m["verdict"] for m in result.report["models"]] == ["invariant", "batch_dependent", "error"]
    assert "3 models" in result.out and "BatchMean" in result.out and "batch_reduction" in result.out
    assert result.err.count("\n") == 1 and "--feed keep_prob=VALUE" in result.err
    assert "3 models, 1 invariant, 1 not invariant, 1 could not be checked" in (tmp_path / "all.md").read_text()


def test_several_models_refuse_one_page_options(case_model, run_cli, tmp_path):
    clean, _ = case_model("grayscale")
    dependent, _ = case_model("batch_mean")
    assert_one_line_error(run_cli(clean, dependent, "--html", tmp_path / "p.html", json_report=False),
                          "--html: one page per model needs one model per call")


def test_version_and_grouped_help_with_defaults(capsys):
    from batchcheck import __version__
    from batchcheck.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0 and capsys.readouterr().out.strip() == f"batchcheck {__version__}"
    with pytest.raises(SystemExit):
        main(["check", "--help"])
    help_text = capsys.readouterr().out
    text = " ".join(help_text.split())
    for group in ("model:", "images:", "trials:", "tolerance:", "output:"):
        assert f"\n{group}\n" in help_text
    for default in ("(default 8)", "(default 0)", "symmetric -1..1 (default)", "10x the measured noise floor"):
        assert default in text


def test_all_layers_lists_every_layer(case_model, run_cli):
    path, _ = case_model("deeplab")
    short = run_cli(path, "--trials", "2").out
    every = run_cli(path, "--trials", "2", "--all-layers").out
    assert "layers (16 of 22 shown; --all-layers lists every one)" in short and "of 22 shown" not in every
    assert sum(line.count("│") > 0 for line in every.splitlines()) == 22
