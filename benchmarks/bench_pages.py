#!/usr/bin/env python3
"""What the report files add to a check: `--html`, `--plot` and `--markdown` on Keras MobileNetV2 at 224 px.

Runs one real check of Keras MobileNetV2 1.0 at 224x224 (random weights, nothing downloaded; saved to a
.keras file and loaded as `batchcheck check` does), then times, on its result, what the CLI does for
the report files: `result.to_dict()`, the HTML page, the SVG profile and the Markdown summary, each
`--repeat` times (best and median). A 2,108-tensor report (`fixtures.large.tiled_report`) is timed
the same way, for scale. The target is under 1 s for the MobileNetV2 page. A failing model's page also
carries `explain`'s conclusion about its first root, which loads the model again: that is timed on one
of MobileNetV2's BatchNorm nodes, as if it were the root.

    python benchmarks/bench_pages.py            # about a minute
    python benchmarks/bench_pages.py --quick    # alpha 0.35 at 96 px
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET_SECONDS = 1.0


def timed(work, repeat: int) -> tuple[float, float]:
    """(best, median) wall seconds of `work()` over `repeat` runs."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def write_all(report: dict, folder: Path, label: str) -> None:
    from batchcheck.report.html import write_html
    from batchcheck.report.markdown import write_markdown
    from batchcheck.report.profile import write_plot

    write_html(folder / "page.html", report, command=f"batchcheck check {label}")
    write_plot(folder / "profile.svg", report)
    write_markdown(folder / "summary.md", [(label, "page.html", report)])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="MobileNetV2 alpha 0.35 at 96 px")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs of the writing (default 5)")
    args = parser.parse_args()
    alpha, size = (0.35, 96) if args.quick else (1.0, 224)

    import keras

    from batchcheck.checker import Checker
    from batchcheck.cli.reports import explain_first_root
    from fixtures.large import tiled_report

    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        folder = Path(tmp)
        model_path = folder / f"mobilenet_v2_{alpha}_{size}.keras"
        keras.applications.MobileNetV2(input_shape=(size, size, 3), alpha=alpha, weights=None).save(model_path)
        start = time.perf_counter()
        checker = Checker.open(model_path)
        result = checker.check()
        check_seconds = time.perf_counter() - start

        def whole() -> None:
            write_all(result.to_dict(), folder, model_path.name)

        best, median = timed(whole, args.repeat)
        bn = next(t for t in result.to_dict()["tensors"] if "bn" in t["layer"].lower())  # Keras: decomposed
        as_if_failing = {"first_divergence": {"node": bn["tensor"].split(":")[0]}}
        start = time.perf_counter()
        explained = explain_first_root(model_path, checker.config, as_if_failing)
        explain_seconds = time.perf_counter() - start
        to_dict = timed(result.to_dict, args.repeat)[0]
        page_kb = (folder / "page.html").stat().st_size / 1024
        golden = json.loads((ROOT / "tests" / "golden" / "mobilenet_v1_bn_training_deep.json").read_text())
        big = tiled_report(golden, 34)
        big_best, big_median = timed(lambda: write_all(big, folder, "tiled"), args.repeat)
        big_kb = (folder / "page.html").stat().st_size / 1024
        checker.close()

    print(f"MobileNetV2 alpha {alpha:g} at {size} px: {len(result.tensors)} tensors, {len(result.trials)} trials, "
          f"verdict {result.verdict}; check {check_seconds:.1f} s")
    print(f"  report files (to_dict + page + plot + summary): best {best * 1000:.0f} ms, median "
          f"{median * 1000:.0f} ms (to_dict alone {to_dict * 1000:.0f} ms); page {page_kb:.0f} KB; "
          f"{median / check_seconds:.1%} of the check")
    print(f"  a failing model's page also explains its first root: {explain_seconds:.2f} s here, for "
          f"`{next(iter(explained))}` (the model loaded again)")
    print(f"  {len(big['tensors'])}-tensor report (page + plot + summary): best {big_best * 1000:.0f} ms, "
          f"median {big_median * 1000:.0f} ms; page {big_kb:.0f} KB")
    verdict = "PASS" if median < TARGET_SECONDS else "FAIL"
    print(f"{verdict}: writing the page adds {median:.2f} s (target < {TARGET_SECONDS:g} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
