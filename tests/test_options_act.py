"""Every option a command accepts acts. The option table (`Option.commands` in batchcheck/options.py) says which
commands honour each option; for every such (command, option) pair the command runs twice on a tiny model
(fixtures/acting.py), without and with the option, and what it reports (exit code, error line, a JSON field)
must change. `ACTS` holds, per option and command, the model, the value that must make a difference and what
it changes; it must cover the table exactly, so an option or command added without a row here fails.
--timeout and --max-memory act through the supervised child, so those runs are real processes."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, replace
from itertools import count
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
from PIL import Image

from batchcheck.cli import COMMANDS, build_parser
from batchcheck.options import OPTIONS
from conftest import CliRun

REPO = Path(__file__).resolve().parent.parent
CHILD_ENV = {**{k: v for k, v in os.environ.items() if k != "BATCHCHECK_UNSUPERVISED"},
             "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
SUPERVISED = frozenset({"timeout", "max-memory"})  # options the supervising parent enforces
COMMAND_ARGS = {"fix": ("-o", "{out}", "--repeats", "1")}  # what a command needs besides the model


# -- what changes ----------------------------------------------------------------------------------

def outcome(run: CliRun) -> tuple:
    """The exit code and the error lines (warnings left out)."""
    return run.code, tuple(line for line in run.err.splitlines() if not line.startswith("batchcheck: warning:"))


def inventory(run: CliRun) -> tuple:
    """inspect: the outcome and the whole listing (input, its note, outputs, placeholders, BatchNorms)."""
    return outcome(run), run.report


def explained(run: CliRun) -> tuple:
    """explain: the outcome and the node it explains (none when the short check finds no divergence)."""
    return outcome(run), run.report and run.report["node"]


def confirmed(run: CliRun) -> tuple:
    """lint --confirm: whether each finding was confirmed on a batch of two."""
    return outcome(run), [(f["node"], f["confirmed"]) for f in run.report["findings"]]


def measured(run: CliRun) -> tuple:
    """lint --confirm: the largest value each measurement saw (the images it ran)."""
    return [f["evidence"]["measured"]["max_abs_value"] for f in run.report["findings"]]


@dataclass(frozen=True)
class Acts:
    """How an option shows it acts on a command: on `model` (fixtures/acting.py), `words` (the option and a
    value that must make a difference) change `observe(run)`; `base` is given to both runs."""
    model: str
    words: tuple[str, ...]
    observe: Callable[[CliRun], Any] = outcome
    base: tuple[str, ...] = ()


def on(commands: str, acts: Acts) -> dict[str, Acts]:
    """The same `acts` for each of `commands` (space-separated)."""
    return dict.fromkeys(commands.split(), acts)


def confirming(acts: Acts, observe: Callable[[CliRun], Any] = confirmed) -> Acts:
    """`acts` for `lint`, which runs the model only with --confirm."""
    return replace(acts, observe=observe, base=("--confirm", *acts.base))


def measuring(acts: Acts, node: str) -> Acts:
    """`acts` for `explain --node NODE`: its own measurement, not the short check that finds a node."""
    return replace(acts, base=("--node", node, *acts.base))


# option flag → command → how it acts there. {name} words are filled in from `places`.
_images = Acts("plain", ("--images", "{unreadable_images}"))
_skip = Acts("plain", ("--skip-bad-images",), base=("--images", "{mixed_images}"))
_raw = Acts("bright_batch_mean", ("--preprocess", "raw"))
_atol, _rtol = Acts("batch_mean", ("--atol", "1e9")), Acts("batch_mean", ("--rtol", "1e9"))
_exact = Acts("faint_batch_mean", ("--exact",))
_two = Acts("large_batch_switch", ("--batch-sizes", "2"))
_one = Acts("large_batch_switch", ("--trials", "1"))
_seed = Acts("large_batch_switch", ("--seed", "{small_batch_seed}"), base=("--trials", "2"))
_timeout, _memory = Acts("plain", ("--timeout", "0.5")), Acts("plain", ("--max-memory", "200M"))
ACTS: dict[str, dict[str, Acts]] = {
    "format": on("check lint explain inspect fix", Acts("plain", ("--format", "pbtxt"))),
    "signature": on("check lint explain inspect fix", Acts("savedmodel", ("--signature", "gone"))),
    "checkpoint": on("check lint explain inspect fix",
                     Acts("meta_checkpoint", ("--checkpoint", "{models}/meta_checkpoint/gone-1"),
                          base=("--output", "output"))),
    "input": {**on("check lint explain fix", Acts("plain", ("--input", "gone"))),
              "inspect": Acts("plain", ("--input", "gone"), inventory)},
    "output": {**on("check lint explain fix", Acts("plain", ("--output", "gone"))),
               "inspect": Acts("plain", ("--output", "Pool"), inventory)},
    "input-shape": {**on("check lint explain fix", Acts("unknown_size", ("--input-shape", "8,8,3"))),
                    "inspect": Acts("unknown_size", ("--input-shape", "8,8,3"), inventory)},
    "feed": {**on("check lint explain", Acts("training_flag", ("--feed", "is_training=false"))),
             "inspect": Acts("training_flag", ("--feed", "gone=1"), inventory),
             "fix": Acts("training_flag", ("--feed", "is_training=true"))},
    "images": {**on("check fix", _images), "explain": measuring(_images, "Pool"), "lint": confirming(_images, outcome)},
    "preprocess": {**on("check fix", _raw), "explain": measuring(_raw, "Bright/Mean"), "lint": confirming(_raw)},
    "skip-bad-images": {**on("check fix", _skip), "explain": measuring(_skip, "Pool"),
                        "lint": confirming(_skip, outcome)},
    "batch-sizes": {**on("check fix", _two), "explain": replace(_two, observe=explained)},
    "trials": {**on("check fix", _one), "explain": replace(_one, observe=explained)},
    "seed": {**on("check fix", _seed), "explain": replace(_seed, observe=explained),
             "lint": confirming(Acts("batch_mean", ("--seed", "1")), measured)},
    "atol": {**on("check fix", _atol), "explain": measuring(_atol, "BatchMean"), "lint": confirming(_atol)},
    "rtol": {**on("check fix", _rtol), "explain": measuring(_rtol, "BatchMean"), "lint": confirming(_rtol)},
    "exact": {**on("check fix", _exact), "explain": measuring(_exact, "Faint/Mean"), "lint": confirming(_exact)},
    "allow-op": on("check lint explain inspect fix", Acts("reads_file", ("--allow-op", "ReadFile"))),
    "timeout": {**on("check explain fix", _timeout), "lint": confirming(_timeout, outcome)},
    "max-memory": {**on("check explain fix", _memory), "lint": confirming(_memory, outcome)},
}
PAIRS = sorted((command, flag) for flag, commands in ACTS.items() for command in commands)


def test_the_table_covers_every_option_each_command_honours():
    honoured = {(command, option.flag) for option in OPTIONS for command in option.commands}
    assert set(PAIRS) == honoured, (f"no row for {sorted(honoured - set(PAIRS))}; rows for pairs the option "
                                    f"table does not list: {sorted(set(PAIRS) - honoured)}")
    assert set().union(*(option.commands for option in OPTIONS)) == set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_offers_exactly_the_options_that_name_it(command, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args([command, "--help"])
    offered = set(re.findall(r"(?<![\w-])--([a-z][a-z-]*)", capsys.readouterr().out))
    assert {o.flag for o in OPTIONS} & offered == {o.flag for o in OPTIONS if command in o.commands}


# -- running both ways -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def places(tmp_path_factory) -> dict[str, str]:
    """The tiny models, image folders and values the table's words name."""
    from batchcheck.checker import draw_plans
    from batchcheck.options import CheckConfig
    from fixtures.acting import build_acting_models

    root = tmp_path_factory.mktemp("acting")
    models = build_acting_models(root / "models")
    noise = np.random.default_rng(0).integers(0, 256, (2, 20, 20, 3), dtype=np.uint8)
    for folder in ("unreadable", "mixed"):
        (root / folder).mkdir()
        (root / folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    for i, pixels in enumerate(noise):
        Image.fromarray(pixels).save(root / "mixed" / f"noise-{i}.png")
    small = next(seed for seed in count(1) if all(plan.batch_size == 2 for plan, _ in
                                                  draw_plans(CheckConfig(trials=2, seed=seed), 12, 20)))
    return {**{name: str(path) for name, path in models.items()}, "models": str(root / "models"),
            "out": str(root / "fixed.pb"), "unreadable_images": str(root / "unreadable"),
            "mixed_images": str(root / "mixed"), "small_batch_seed": str(small)}


@pytest.fixture(scope="module")
def baselines() -> dict:
    return {}


def _supervised(argv: list[str], report: Path) -> CliRun:
    report.unlink(missing_ok=True)
    done = subprocess.run([sys.executable, "-m", "batchcheck", *argv, "--json", str(report)], env=CHILD_ENV,
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    return CliRun(done.returncode, done.stdout, done.stderr,
                  json.loads(report.read_text()) if report.exists() else None)


@pytest.mark.parametrize("command, flag", PAIRS)
def test_the_option_changes_what_the_command_does(command, flag, places, baselines, run_cli, tmp_path):
    acts = ACTS[flag][command]
    words = [word.format(**places) for word in (places[acts.model], *COMMAND_ARGS.get(command, ()), *acts.base)]
    given = [word.format(**places) for word in acts.words]
    key = (command, *words)
    if key not in baselines:
        baselines[key] = run_cli(*words, command=command)
    without = baselines[key]
    with_option = (_supervised([command, *words, *given], tmp_path / "report.json") if flag in SUPERVISED
                   else run_cli(*words, *given, command=command))
    for run in (without, with_option):
        assert run.code in (0, 1, 2) and "internal error" not in run.err and "usage:" not in run.err, run.err
    assert acts.observe(without) != acts.observe(with_option), (
        f"`{command} … {' '.join(given)}` changed nothing: {acts.observe(with_option)!r}")
    if flag in SUPERVISED:  # stopped in the child: one line naming the stage, and the JSON says why
        assert with_option.code == 2 and with_option.err.count("\n") == 1, with_option.err
        assert re.search(r"(timed out after 0.5 s|ran out of memory) during \S", with_option.err), with_option.err
        assert with_option.report["verdict"] == "error" and with_option.report["error"] in with_option.err


def test_a_supervised_run_relays_the_result(places, tmp_path):
    """A command other than check that runs the model (here lint --confirm) finishes in its supervised child as
    in-process: its exit code, its report on standard output and its JSON."""
    report = tmp_path / "lint.json"
    done = subprocess.run([sys.executable, "-m", "batchcheck", "lint", places["batch_mean"], "--confirm", "--json",
                           str(report)], env=CHILD_ENV, capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stderr) == (1, ""), done.stderr
    assert "BatchMean` (Mean) (confirmed)" in done.stdout
    assert [f["confirmed"] for f in json.loads(report.read_text())["findings"]] == [True]
