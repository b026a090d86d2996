"""The documentation's example outputs, produced by real runs: `python docs/examples.py` rewrites every block
between `<!-- example NAME -->` and `<!-- /example -->` on every page (README.md and docs/*.md, found by
`pages()`); `--check` only reports the blocks that are out of date, missing or unknown (exit 1), as
`tests/test_readme.py` does.

Each example runs in a scratch folder holding the demo fixtures under `out/demo/`, so the paths printed
are the ones `make demo` prints.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEMO = "out/demo"
BLOCK = re.compile(r"(<!-- example (?P<name>[\w-]+) -->\n```\n)(?P<body>.*?)(```\n<!-- /example -->)", re.S)
NUMBER = re.compile(r"\d+(\.\d+)?(e[-+]?\d+)?")


@dataclass(frozen=True)
class Example:
    """A command whose output a page shows: the words typed (after `$ `), what runs them, and an
    optional excerpt (the lines from the first one matching `start`, at most `lines` of them)."""
    shown: str
    argv: tuple[str, ...]
    start: str | None = None
    lines: int | None = None
    stderr: bool = False  # show what the command said on stderr (a one-line error) instead of stdout

    def run(self, cwd: Path) -> str:
        env = {**os.environ, "COLUMNS": "110", "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
        done = subprocess.run(self.argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
        said = done.stderr if self.stderr else done.stdout
        lines = [line.rstrip() for line in said.rstrip().splitlines()]
        if self.start is not None:
            first = next(i for i, line in enumerate(lines) if re.search(self.start, line))
            lines = lines[first:]
        if self.lines is not None and len(lines) > self.lines:
            lines = lines[:self.lines] + ["…"]
        return "\n".join([f"$ {self.shown}", *lines]) + "\n"


def _batchcheck(*args: str) -> tuple[str, ...]:
    return (sys.executable, "-m", "batchcheck", *args)


BN_TRAINING = f"{DEMO}/mobilenet_v1_bn_training/model.pb"
COND = f"{DEMO}/cond_v1/model.pb"
FIXED = f"{DEMO}/mobilenet_v1_fixed.pb"
DEMO_CASES = ("mobilenet_v1", "mobilenet_v1_bn_training", "mobilenet_v1_bn_training_deep", "cond_v1",
              "deeplab", "deeplab_export", "map_fn_folded", "keras2_teachable_machine", "onnx_dynamic_quant_matmul",
              "onnx_bn_training")
ONNX_BN_TRAINING = f"{DEMO}/onnx_bn_training/model.onnx"
ONNX_QUANTIZED = f"{DEMO}/onnx_dynamic_quant_matmul/model.onnx"
KERAS2 = f"{DEMO}/keras2_teachable_machine/keras_model.h5"
EXAMPLES = {
    "check-bn-training": Example(f"batchcheck check {BN_TRAINING}", _batchcheck("check", BN_TRAINING), lines=24),
    "pytest-failure": Example(
        f"pytest --graph {BN_TRAINING} --graph-trials 3 --hypothesis-seed 1 -k fuzz",
        (sys.executable, "-m", "pytest", "--graph", BN_TRAINING, "--graph-trials", "3", "-p", "no:cacheprovider",
         "-p", "no:randomly", "--hypothesis-seed", "1", "-q", "-k", "fuzz"),
        start=r"is batch-dependent", lines=14),
    "inspect": Example(f"batchcheck inspect {COND}", _batchcheck("inspect", COND), lines=14),
    "lint": Example(f"batchcheck lint {COND}", _batchcheck("lint", COND), lines=12),
    "lint-foldable": Example(f"batchcheck lint {DEMO}/deeplab/model.pb", _batchcheck("lint", f"{DEMO}/deeplab/model.pb")),
    "explain": Example(f"batchcheck explain {COND}", _batchcheck("explain", COND)),
    "fix": Example(f"batchcheck fix {BN_TRAINING} -o {FIXED} --calibrate fixtures/images --fold-bn",
                   _batchcheck("fix", BN_TRAINING, "-o", FIXED, "--calibrate", "fixtures/images", "--fold-bn")),
    "fix-onnx": Example(f"batchcheck fix {ONNX_BN_TRAINING} -o {DEMO}/onnx_fixed.onnx --fold-bn",
                        _batchcheck("fix", ONNX_BN_TRAINING, "-o", f"{DEMO}/onnx_fixed.onnx", "--fold-bn")),
    "fix-onnx-quantized": Example(f"batchcheck fix {ONNX_QUANTIZED} -o {DEMO}/quantized_fixed.onnx",
                                  _batchcheck("fix", ONNX_QUANTIZED, "-o", f"{DEMO}/quantized_fixed.onnx"),
                                  stderr=True),
    "check-onnx": Example(f"batchcheck check {ONNX_QUANTIZED}",
                          _batchcheck("check", ONNX_QUANTIZED), lines=9),
    "deeplab-export": Example(f"batchcheck check {DEMO}/deeplab_export/model.pb",
                              _batchcheck("check", f"{DEMO}/deeplab_export/model.pb"), lines=9),
    "keras2-file": Example(f"batchcheck check {KERAS2}", _batchcheck("check", KERAS2), lines=4),
    "thin-pass": Example(f"batchcheck check {DEMO}/map_fn_folded/model.pb --input image_tensor",
                         _batchcheck("check", f"{DEMO}/map_fn_folded/model.pb", "--input", "image_tensor"),
                         stderr=True),
    "markdown": Example(f"batchcheck check {DEMO}/mobilenet_v1_bn_training_deep/model.pb --html out/report.html "
                        f"--markdown out/summary.md > /dev/null; cat out/summary.md",
                        ("sh", "-c", f"{sys.executable} -m batchcheck check {DEMO}/mobilenet_v1_bn_training_deep/model.pb "
                         f"--html out/report.html --markdown out/summary.md > /dev/null; cat out/summary.md")),
}


def demo_folder(root: Path) -> Path:
    """`root` with the demo fixtures built under out/demo/, and the images under fixtures/images/."""
    shutil.copytree(ROOT / "fixtures" / "images", root / "fixtures" / "images")
    subprocess.run([sys.executable, "-m", "fixtures.build", str(root / DEMO), *DEMO_CASES], cwd=ROOT, check=True,
                   capture_output=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    return root


def comparable(text: str) -> str:
    """`text` with its figures masked and spaces folded (columns align to the figures' widths): measured
    figures vary with the machine, the words may not."""
    return re.sub(r"[ \t]+", " ", NUMBER.sub("#", text))


def pages() -> list[Path]:
    """The pages whose examples are generated and tested: README.md and every docs/*.md."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def problems(texts: dict[str, str], fresh: dict[str, str]) -> list[str]:
    """What `--check` reports, given each page's text by its name and each example's `fresh` output: blocks
    that are out of date or name no example, and examples that no page shows."""
    found: list[str] = []
    shown: set[str] = set()
    for page, text in texts.items():
        for block in BLOCK.finditer(text):
            name = block["name"]
            shown.add(name)
            if name not in fresh:
                found.append(f"{page}: example `{name}` is not one of docs/examples.py's EXAMPLES "
                             f"({', '.join(fresh)})")
            elif comparable(block["body"]) != comparable(fresh[name]):
                found.append(f"{page}: example `{name}` is out of date; run `python docs/examples.py`")
    return found + [f"example `{name}` is on no page ({', '.join(texts)}); add its block or remove it from "
                    f"EXAMPLES" for name in fresh if name not in shown]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="report stale, unknown or missing blocks, change nothing (exit 1 if any)")
    args = parser.parse_args(argv)
    texts = {page.relative_to(ROOT).as_posix(): page.read_text() for page in pages()}
    with tempfile.TemporaryDirectory() as scratch:
        cwd = demo_folder(Path(scratch))
        fresh = {name: example.run(cwd) for name, example in EXAMPLES.items()}
    if not args.check:
        for page, text in texts.items():
            texts[page] = BLOCK.sub(lambda m: m[1] + fresh.get(m["name"], m["body"]) + m[4], text)
            if texts[page] != text:
                (ROOT / page).write_text(texts[page])
                print(f"{page}: examples rewritten")
    found = problems(texts, fresh)
    for problem in found:
        print(problem)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
