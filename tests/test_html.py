"""HTML page, profile SVG, index and Markdown summary: from saved reports (tests/golden, written by real
checks), from the CLI (`--html`, `--plot`, `--markdown`) and from the pytest plugin (`--graph-html`,
`--graph-markdown`, also under xdist). The page in a real browser is tests/test_browser.py."""
from __future__ import annotations

import html
import json
import re
import shlex
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from batchcheck.report.html import render_html, render_index, reproduce_command
from batchcheck.report.markdown import markdown_summary
from batchcheck.report.profile import (
    MAX_COLUMNS,
    MAX_TENSOR_COLUMNS,
    columns,
    profile_svg,
)
from batchcheck.report.summary import error_report, summarize
from fixtures.large import tiled_report

pytest_plugins = ("pytester",)

GOLDEN = Path(__file__).resolve().parent / "golden"
SVG = "{http://www.w3.org/2000/svg}"


def golden(name: str) -> dict:
    return json.loads((GOLDEN / f"{name}.json").read_text())


def bars(svg: str) -> list[ElementTree.Element]:
    """The profile's bars: rects with a tooltip, above the status strip."""
    root = ElementTree.fromstring(svg)
    strip_y = max(float(r.get("y")) for r in root.iter(f"{SVG}rect") if r.find(f"{SVG}title") is not None)
    return [r for r in root.iter(f"{SVG}rect") if r.find(f"{SVG}title") is not None and float(r.get("y")) < strip_y]


# -- the profile -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["mobilenet_v1_bn_training", "mobilenet_v1_bn_training_deep", "dropout",
                                  "mobilenet_v1", "mobilenet_v1_batch1", "cond_v1"])
def test_profile_has_a_bar_per_compared_tensor_coloured_by_status(name: str) -> None:
    report = golden(name)
    svg = profile_svg(report)
    compared = [t for t in report["tensors"] if t["status"] != "not_compared"]
    shown = bars(svg)
    assert len(shown) == len(compared)
    for rect, tensor in zip(shown, compared):
        assert rect.find(f"{SVG}title").text.startswith(tensor["tensor"])
        assert f"({tensor['status']}," in rect.find(f"{SVG}title").text
    assert f"tolerance rtol {report['tolerance']['rtol']:.1e}" in svg
    labels = re.findall(r'class="root-label"[^>]*>([^<]+)<', svg)
    if report["first_divergence"]:
        prefix = "first random: " if report["verdict"] == "nondeterministic" else "first: "
        assert labels[0] == prefix + report["first_divergence"]["layer"]
        assert svg.count("<path") == len(report["roots"]) + 1  # a marker per root, one in the legend
    else:
        assert labels == []


def test_bars_grow_with_the_difference_and_zero_sits_at_the_bottom() -> None:
    report = golden("mobilenet_v1_bn_training_deep")
    heights = [float(r.get("height")) for r in bars(profile_svg(report))]
    rel = [t["max_rel_diff"] for t in report["tensors"]]
    order = sorted(range(len(rel)), key=lambda i: rel[i])
    assert [heights[i] for i in order] == sorted(heights)
    assert min(heights) == pytest.approx(2.0)  # exact zeros: a stub


def test_a_2000_tensor_network_is_drawn_per_layer_run_and_marks_the_root_at_its_depth() -> None:
    report = tiled_report(golden("mobilenet_v1_bn_training_deep"), 34)  # 2,108 tensors, 578 layers
    cols, unit = columns(report)
    assert len(report["tensors"]) > 2000 and unit == "layers" and MAX_COLUMNS // 2 < len(cols) <= MAX_COLUMNS
    statuses = [c.status for c in cols]
    first = statuses.index("divergent")
    assert set(statuses[:first]) == {"ok"} and first == pytest.approx(len(cols) * 2 / 3, abs=len(cols) / 30)
    svg = profile_svg(report)
    assert len(bars(svg)) == len(cols) and "one bar per run of layers" in svg
    assert f"first: {report['first_divergence']['layer']}" in svg


def test_a_few_hundred_tensors_are_drawn_per_layer() -> None:
    report = tiled_report(golden("mobilenet_v1_bn_training"), 5)  # 310 tensors, 80 layers
    cols, unit = columns(report)
    assert len(report["tensors"]) > MAX_TENSOR_COLUMNS and unit == "layer"
    assert [c.label for c in cols] == list(dict.fromkeys(t["layer"] for t in report["tensors"]))


def test_infinite_figures_from_strict_json_are_drawn_at_the_top() -> None:
    report = golden("batch_mean")
    report["tensors"][-1].update(max_rel_diff="inf", status="divergent")  # as write_json saves infinity
    svg = profile_svg(report)
    assert float(bars(svg)[-1].get("y")) == pytest.approx(min(float(r.get("y")) for r in bars(svg)))
    assert "inf (divergent" in svg


# -- the page --------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["mobilenet_v1_bn_training", "dropout", "mobilenet_v1", "mobilenet_v1_batch1"])
def test_page_from_a_saved_report_has_every_part(name: str) -> None:
    report = golden(name)
    page = render_html(report)
    assert page.startswith("<!DOCTYPE html>") and "default-src 'none'" in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page), "no external resource"
    assert f"v-{report['verdict']}" in page and "<svg" in page
    assert page.count('data-status="') - page.count('<button') == len(report["tensors"])
    assert page.count("<td class=\"num\">") >= 3 * len(report["trials"])
    assert f"batchcheck check {shlex.quote(report['model']['path'])} --seed 0" in html.unescape(page)
    for root in report["roots"]:
        assert root["node"] in page and root["hint"] in html.unescape(page)
    for limit in report["limits"]:
        assert limit["node"] in page
    if report["first_divergence"] is None:
        assert "no tensor depends on the batch" in page


def test_reproduce_command_given_is_shown_and_quoted() -> None:
    page = render_html(golden("mobilenet_v1"), command="batchcheck check 'my model.pb' --trials 3")
    assert "batchcheck check &#x27;my model.pb&#x27; --trials 3" in page
    assert reproduce_command({"model": {"path": "a b.pb"}, "trials": []}) == "batchcheck check 'a b.pb'"


def test_trials_beyond_the_requested_number_are_explained() -> None:
    report = golden("mobilenet_v1_bn_training")
    assert "more than --trials" not in render_html(report)
    report["model"]["requested_trials"] = len(report["trials"]) - 1
    assert f"1 more than --trials {len(report['trials']) - 1}, to run every batch size once" in render_html(report)


def test_an_error_report_gives_a_page_and_an_index_row_saying_why() -> None:
    report = error_report("zoo/broken.pb", "zoo/broken.pb: not a TensorFlow GraphDef; pass a frozen .pb", "load")
    assert not summarize(report) and summarize(report).reason.startswith("load: zoo/broken.pb: not a")
    page = render_html(report)
    assert "v-error" in page and "load: zoo/broken.pb: not a TensorFlow GraphDef" in page
    index = render_index([("broken.pb", "broken.html", report), ("ok.pb", None, golden("mobilenet_v1"))])
    assert '<a href="broken.html">broken.pb</a>' in index and "not a TensorFlow GraphDef" in index
    assert "2 model(s), 1 not invariant" in index


def test_explain_conclusions_are_shown_with_their_roots() -> None:
    report = golden("cond_v1")
    first = report["roots"][0]["node"]
    report["roots"].append({**report["roots"][0], "node": "MobilenetV1/Conv2d_1/BatchNorm/FusedBatchNormV3"})
    page = render_html(report, explained={first: "this node normalises with the batch's statistics"})
    assert page.count('class="explain"') == 1
    roots = page[page.index('<div class="root">'):]
    card = roots[roots.index(f"<code>{first}</code>"):]
    assert card.index("explain:</b> this node normalises") < card.index('<div class="root">')


def test_unknown_kinds_get_a_generic_page_with_the_whole_report() -> None:
    page = render_html({"verdict": "clean", "model": {"path": "m.pb"}, "findings": [{"rule": "x|y"}]}, kind="lint")
    assert "batchcheck lint: clean" in page and "x|y" in page and "batchcheck lint m.pb" in page


# -- Markdown --------------------------------------------------------------------------------------

def test_markdown_has_a_row_per_model_with_verdict_culprit_cause_and_difference() -> None:
    entries = [("bn.pb", "bn.html", golden("mobilenet_v1_bn_training")), ("clean.pb", None, golden("mobilenet_v1")),
               ("a|b.pb", None, error_report("a|b.pb", "line one\nline | two", "load"))]
    text = markdown_summary(entries)
    lines = text.splitlines()
    assert lines[0] == "### batchcheck: 3 models, 1 invariant, 1 not invariant, 1 could not be checked"
    rows = [line for line in lines if line.startswith("| ")][1:]
    assert len(rows) == 3 and all(row.count(" | ") == 4 for row in rows)
    first = golden("mobilenet_v1_bn_training")["first_divergence"]
    assert rows[0] == (f"| [`bn.pb`](bn.html) | ❌ batch_dependent | `{first['layer']}` | batchnorm_training | "
                       f"{first['max_abs_diff']:.3g} (relative {first['max_rel_diff']:.3g}) |")
    assert rows[1].startswith("| `clean.pb` | ✅ invariant | – | – | 0 (relative 0)")
    assert rows[2] == "| `a\\|b.pb` | ⚠️ error | – | load: line one line \\| two | – |"


# -- the CLI ---------------------------------------------------------------------------------------

def test_check_writes_page_plot_and_summary(case_model, run_cli, tmp_path: Path) -> None:
    path, args = case_model("mobilenet_v1_bn_training")
    page, plot, summary = tmp_path / "page.html", tmp_path / "profile.svg", tmp_path / "summary.md"
    run = run_cli(path, *args, "--trials", "3", "--html", page, "--plot", plot, "--markdown", summary)
    assert run.code == 1, run.err
    text = page.read_text()
    assert run.report["first_divergence"]["node"] in text and "v-batch_dependent" in text
    assert f"batchcheck check {path} --trials 3 --seed 0" in text
    assert "<b>explain:</b> this node normalises with the batch&#x27;s statistics" in text  # explain's conclusion
    assert len(bars(plot.read_text())) == len(run.report["tensors"])
    assert f"| [`{path}`](page.html) | ❌ batch_dependent | `MobilenetV1/Conv2d_0` |" in summary.read_text()


def test_check_of_a_broken_model_still_writes_a_page_that_says_why(run_cli, tmp_path: Path) -> None:
    broken = tmp_path / "broken.pb"
    broken.write_bytes(b"not a graph")
    run = run_cli(broken, "--html", tmp_path / "page.html", "--markdown", tmp_path / "s.md", json_report=False)
    assert run.code == 2 and len(run.err.strip().splitlines()) == 1
    reason = run.err.strip().removeprefix("batchcheck: ")
    assert "v-error" in (tmp_path / "page.html").read_text()
    assert f"load: {reason}".replace("'", "&#x27;") in (tmp_path / "page.html").read_text()
    assert "⚠️ error" in (tmp_path / "s.md").read_text()


@pytest.mark.parametrize("args, message", [
    (["--plot", "p.png"], "--plot p.png: the profile is written as SVG only"),
    (["--html", "missing/p.html"], "--html missing/p.html: folder `missing` does not exist"),
    (["--markdown", "missing/s.md"], "--markdown missing/s.md: folder `missing` does not exist"),
])
def test_report_paths_are_checked_before_any_work(run_cli, args, message, monkeypatch, tmp_path) -> None:
    monkeypatch.chdir(tmp_path)
    run = run_cli("no-such-model.pb", *args, json_report=False)
    assert run.code == 2 and len(run.err.strip().splitlines()) == 1
    assert run.err.startswith(f"batchcheck: {message}") and not list(tmp_path.iterdir())


# -- pytest ----------------------------------------------------------------------------------------

def test_pytest_writes_a_page_per_model_an_index_and_a_summary_under_xdist(pytester: pytest.Pytester,
                                                                              case_model) -> None:
    for name in ("grayscale", "batch_mean"):
        pytester.mkdir(name).joinpath("model.pb").write_bytes(case_model(name)[0].read_bytes())
    pytester.path.joinpath("broken.pb").write_bytes(b"not a graph")
    result = pytester.runpytest_subprocess(
        "-n", "2", "--graph", "*/model.pb", "--graph", "broken.pb", "--graph-html", "pages", "--graph-markdown",
        "summary.md", "--graph-trials", "2", "--graph-examples", "3", "-p", "no:cacheprovider", timeout=300)
    assert result.ret == 1
    pages = pytester.path / "pages"
    assert sorted(p.name for p in pages.iterdir()) == ["batch_mean__model.pb.html", "broken.pb.html",
                                                       "grayscale__model.pb.html", "index.html"]
    failure = result.stdout.str()
    assert f"page:      {pages / 'batch_mean__model.pb.html'}" in failure
    index = (pages / "index.html").read_text()
    for link in ("grayscale__model.pb.html", "batch_mean__model.pb.html", "broken.pb.html"):
        assert f'href="{link}"' in index
    assert "not a TensorFlow GraphDef" in index and "--graph-checkpoint" in index
    assert "BatchMean" in (pages / "batch_mean__model.pb.html").read_text()
    summary = (pytester.path / "summary.md").read_text()
    assert summary.startswith("### batchcheck: 3 models, 1 invariant, 1 not invariant, 1 could not be checked")
    assert "| [`batch_mean/model.pb`](pages/batch_mean__model.pb.html) | ❌ batch_dependent | `BatchMean` |" in summary


def test_pytest_page_options_are_checked_up_front(pytester: pytest.Pytester, case_model) -> None:
    result = pytester.runpytest("--graph", str(case_model("grayscale")[0]), "--graph-html", "no/such/dir",
                                "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--graph-html no/such/dir: folder `*no/such` does not exist*"])


def test_lint_and_fix_write_their_pages_and_summaries(case_model, run_cli, tmp_path: Path) -> None:
    """`lint` and `fix` take --html and --markdown too: a page with their verdict and whole report."""
    path, _ = case_model("mobilenet_v1_bn_training")
    linted = run_cli(path, "--html", tmp_path / "lint.html", "--markdown", tmp_path / "lint.md", command="lint")
    assert linted.code == 1 and linted.report["verdict"] == "errors"
    page = (tmp_path / "lint.html").read_text()
    assert "batchcheck lint: errors" in page and "batchnorm_training" in page
    assert "errors" in (tmp_path / "lint.md").read_text()
    fixed = run_cli(path, "-o", tmp_path / "fixed.pb", "--calibrate", Path(__file__).parent.parent / "fixtures" / "images",
                    "--trials", "2", "--html", tmp_path / "fix.html", command="fix")
    assert fixed.code == 0 and fixed.report["verdict"] == "fixed"
    assert "batchcheck fix: fixed" in (tmp_path / "fix.html").read_text()
