"""Report pages of real checks opened in headless Chromium: no console errors, no network requests, the
plot and the culprit on the first screen, red exactly from the first divergent layer on, and the
tensor table's filter and sort working. Skipped when Chromium is absent (`make test-browser` installs it).

Set BATCHCHECK_SCREENSHOTS=DIR to keep the screenshots (one PNG per page) for looking at.
"""
from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest

from fixtures.browser import Browser, chromium_path

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(chromium_path() is None, reason="Chromium is not installed; `make test-browser` "
                                 "installs Debian's chromium package and runs these tests")]

CASES = ("mobilenet_v1_bn_training", "mobilenet_v1_bn_training_deep", "dropout", "mobilenet_v1")
DIVERGENT_RED = (0xD1, 0x38, 0x2F)
FIRST_SCREEN = 1000  # px: the browser window's height
GOLDEN = Path(__file__).resolve().parent / "golden"


@pytest.fixture(scope="module")
def browser():
    with Browser(height=FIRST_SCREEN) as opened:
        yield opened


@pytest.fixture(scope="module")
def pages(case_model, tmp_path_factory) -> dict[str, tuple[Path, dict]]:
    """name -> (page, report) for real checks of the fixture cases, written by `batchcheck check --html`."""
    from batchcheck.cli import main

    folder = tmp_path_factory.mktemp("pages")
    written = {}
    for name in CASES:
        path, args = case_model(name)
        page, report = folder / f"{name}.html", folder / f"{name}.json"
        code = main(["check", str(path), *args, "--trials", "3", "--html", str(page), "--json", str(report)])
        assert code in (0, 1)
        written[name] = (page, json.loads(report.read_text()))
    return written


def screenshot(page, name: str):
    """The first screen as a Pillow image, kept in $BATCHCHECK_SCREENSHOTS when set."""
    from PIL import Image

    png = page.screenshot()
    keep = os.environ.get("BATCHCHECK_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        Path(keep, f"{name}.png").write_bytes(png)
    return Image.open(io.BytesIO(png)).convert("RGB")


def box(page, selector: str) -> dict | None:
    return page.evaluate(f"(function () {{ var e = document.querySelector({json.dumps(selector)});"
                         f" if (!e) return null; var r = e.getBoundingClientRect();"
                         f" return {{left: r.left, right: r.right, top: r.top, bottom: r.bottom,"
                         f" text: e.textContent}}; }})()")


def red_columns(image, area: dict) -> list[int]:
    """x of every pixel column of the plot area (`box`) with the divergent red in it."""
    pixels = image.load()
    return [x for x in range(int(area["left"]), int(area["right"]))
            if any(pixels[x, y] == DIVERGENT_RED for y in range(int(area["top"]), int(area["bottom"])))]


def assert_clean_render(page) -> None:
    assert page.errors() == [], "console errors"
    assert page.requests() == [], "network requests"
    plot = box(page, "#profile svg")
    assert plot and plot["right"] - plot["left"] > 800 and 0 <= plot["top"] and plot["bottom"] <= FIRST_SCREEN


@pytest.mark.parametrize("name", CASES)
def test_page_renders_with_plot_and_culprit_on_the_first_screen(browser, pages, name: str) -> None:
    path, report = pages[name]
    page = browser.open(path)
    assert_clean_render(page)
    culprit = box(page, "#culprit .name")
    assert culprit["bottom"] <= FIRST_SCREEN
    image = screenshot(page, name)
    plot = box(page, "#profile svg")
    red = red_columns(image, box(page, "#profile .plot-area"))
    first = report["first_divergence"]
    if report["verdict"] == "batch_dependent":
        assert culprit["text"] == first["layer"]
        label = box(page, "#profile .root-label")
        assert label["text"] == f"first: {first['layer']}" and label["top"] >= plot["top"]
        line = box(page, "#profile line.first-divergence")
        assert red and min(red) >= line["left"], "red starts at the first divergent layer"
        assert len(red) > (plot["right"] - line["left"]) * 0.3, "and fills much of what follows"
    elif report["verdict"] == "nondeterministic":
        assert culprit["text"] == first["layer"] and not red  # orange: random, not batch-dependent
    else:
        assert culprit["text"] == "no tensor depends on the batch" and not red


def test_tensor_table_filters_by_status_and_sorts_by_difference(browser, pages) -> None:
    path, report = pages["mobilenet_v1_bn_training_deep"]
    page = browser.open(path)
    visible = "document.querySelectorAll('#tensors tbody tr:not([hidden])')"
    assert page.evaluate(f"{visible}.length") == len(report["tensors"])
    page.evaluate("document.querySelector('#tensors button[data-status=divergent]').click()")
    divergent = [t for t in report["tensors"] if t["status"] == "divergent"]
    assert page.evaluate(f"{visible}.length") == len(divergent)
    page.evaluate("document.querySelectorAll('#tensors th')[5].click()")  # max relative, largest first
    first_row = page.evaluate(f"{visible}[0].cells[1].textContent")
    assert first_row == max(divergent, key=lambda t: t["max_rel_diff"])["tensor"]
    page.evaluate("var i = document.querySelector('#tensors input'); i.value = 'conv2d_4';"
                  "i.dispatchEvent(new Event('input'))")
    assert page.evaluate(f"{visible}.length") == sum("conv2d_4" in t["tensor"].lower() for t in divergent)


def test_error_page_and_index(browser, pages, tmp_path: Path) -> None:
    from batchcheck.report.html import write_index
    from batchcheck.report.summary import error_report

    broken = error_report("zoo/broken.pb", "zoo/broken.pb: not a TensorFlow GraphDef; pass a frozen .pb", "load")
    entries = [(name, str(path), report) for name, (path, report) in pages.items()]
    write_index(tmp_path / "index.html", entries + [("zoo/broken.pb", None, broken)])
    page = browser.open(tmp_path / "index.html")
    assert page.errors() == [] and page.requests() == []
    rows = page.evaluate("Array.from(document.querySelectorAll('tbody tr')).map(r => r.innerText)")
    assert len(rows) == len(CASES) + 1 and "not a TensorFlow GraphDef" in rows[-1]
    screenshot(page, "index")


def test_a_2000_tensor_page_renders_quickly_per_run_of_layers(browser, tmp_path: Path) -> None:
    from batchcheck.report.html import write_html
    from fixtures.large import tiled_report

    report = tiled_report(json.loads((GOLDEN / "mobilenet_v1_bn_training_deep.json").read_text()), 34)
    write_html(tmp_path / "tiled.html", report)
    page = browser.open(tmp_path / "tiled.html")
    assert_clean_render(page)
    assert page.evaluate("document.querySelectorAll('#tensors tbody tr').length") == len(report["tensors"]) > 2000
    assert box(page, "#profile .root-label")["text"] == f"first: {report['first_divergence']['layer']}"
    plot, line = box(page, "#profile .plot-area"), box(page, "#profile line.first-divergence")
    assert (line["left"] - plot["left"]) / (plot["right"] - plot["left"]) == pytest.approx(2 / 3, abs=0.03)
    assert min(red_columns(screenshot(page, "tiled"), plot)) >= line["left"]


@pytest.mark.slow
def test_a_2000_tensor_page_from_a_real_check(browser, tmp_path: Path) -> None:
    """The long chain (2,006 tensors, root at block 240 of 400) checked for real (about a minute)."""
    from batchcheck.cli import main
    from fixtures.large import TRAINING_BLOCK, build_long_chain

    model = build_long_chain(tmp_path)
    page_path = tmp_path / "long_chain.html"
    code = main(["check", str(model), "--trials", "2", "--batch-sizes", "2,3", "--html", str(page_path)])
    assert code == 1
    page = browser.open(page_path)
    assert_clean_render(page)
    assert box(page, "#culprit .name")["text"] == f"block_{TRAINING_BLOCK:03d}"
    assert page.evaluate("document.querySelectorAll('#tensors tbody tr').length") > 2000
    plot, line = box(page, "#profile svg"), box(page, "#profile line.first-divergence")
    share = (line["left"] - plot["left"]) / (plot["right"] - plot["left"])
    assert 0.5 < share < 0.7  # block 240 of 400, drawn where it is
    red = red_columns(screenshot(page, "long_chain"), box(page, "#profile .plot-area"))
    assert min(red) >= line["left"]


def test_the_harness_sees_console_errors_and_requests(browser, tmp_path: Path) -> None:
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><html><body><img src='http://127.0.0.1:9/x.png'>"
                   "<script>console.error('broken'); undefinedFunction();</script></body></html>")
    page = browser.open(bad)
    assert "broken" in " ".join(page.errors()) and any("undefinedFunction" in e or "Uncaught" in e
                                                       for e in page.errors())
    assert page.requests() == ["http://127.0.0.1:9/x.png"]
