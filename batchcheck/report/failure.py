"""Failure messages for pytest, and the `batchcheck` fixture's helper for users' own tests.

    def test_export(batchcheck, tmp_path):
        path = export_my_model(tmp_path)
        batchcheck.assert_invariant(path, feeds={"is_training": "false"})

A failure names the first divergent layer, its op, cause and figures, the fix, and the command that
reproduces it.
"""
from __future__ import annotations

import dataclasses
import io
import re
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from ..errors import NotInvariant, UsageError
from ..options import OPTIONS, CheckConfig

if TYPE_CHECKING:
    from ..check import Checker
    from ..result import CheckResult

REPORT_WIDTH = 100
# CheckConfig fields whose option has another name; every other field's option is its name with dashes.
FIELD_OPTIONS = {"outputs": "output", "feeds": "feed", "allow_ops": "allow_op"}
OPTION_NAMES = "|".join(re.escape(name) for name, _ in OPTIONS)
HEADLINES = {
    "batch_dependent": "is batch-dependent: the probe's activations change with its batch-mates",
    "nondeterministic": "is nondeterministic: the same feed run twice gives different activations",
}


# -- reproducing ---------------------------------------------------------------------------------

def option_for_field(name: str, prefix: str = "") -> str:
    """The option that sets CheckConfig field `name`: 'batch_sizes' -> '--batch-sizes'."""
    return f"--{prefix}{FIELD_OPTIONS.get(name, name).replace('_', '-')}"


def option_args(config: CheckConfig, prefix: str = "") -> list[str]:
    """The command-line options that give `config` (defaults left out, the seed always given)."""
    default = CheckConfig()
    args: list[str] = []
    for field in dataclasses.fields(CheckConfig):
        value = getattr(config, field.name)
        if value == getattr(default, field.name) and field.name != "seed":
            continue
        option = option_for_field(field.name, prefix)
        if isinstance(value, bool):
            args.append(option)
        elif isinstance(value, dict):
            args += [part for name, raw in value.items() for part in (option, f"{name}={raw}")]
        elif field.name in ("outputs", "allow_ops"):
            args += [part for output in value for part in (option, output)]
        elif isinstance(value, tuple):
            args += [option, ",".join(map(str, value))]
        else:
            args += [option, str(value)]
    return args


def command(*parts: str | Path) -> str:
    """A shell command line, quoted."""
    return " ".join(shlex.quote(str(part)) for part in parts)


def cli_command(path: Path, config: CheckConfig) -> str:
    """`batchcheck check PATH …` for `config`."""
    return command("batchcheck", "check", path, *option_args(config))


def for_pytest(text: str) -> str:
    """`text` with the CLI's option names (`--feed`) as the plugin spells them (`--graph-feed`)."""
    return re.sub(rf"--({OPTION_NAMES})\b", r"--graph-\1", text)


# -- the report ----------------------------------------------------------------------------------

def render(*parts: Any) -> str:
    """Plain text of strings (taken literally) and rich renderables, one after the other."""
    from rich.console import Console

    buffer = io.StringIO()
    console = Console(file=buffer, width=REPORT_WIDTH, color_system=None, force_terminal=False, highlight=False)
    for part in parts:
        if isinstance(part, str):
            console.print(part, markup=False, soft_wrap=True)
        else:
            console.print(part)
    return "\n".join(line.rstrip() for line in buffer.getvalue().rstrip().splitlines())


def failure_report(result: CheckResult, *, label: str, plan: str | None = None,
                   reproduce: Iterable[str] = (), headline: str | None = None,
                   pytest_options: bool = False) -> str:
    """The failure message: headline, the first divergent node as a table, the per-layer table, and
    the commands that reproduce it. `pytest_options` spells options as the plugin does."""
    from rich.table import Table

    from .terminal import figure, layer_table

    rows = Table.grid(padding=(0, 2))
    rows.add_column(no_wrap=True)
    rows.add_column()
    first = result.first_divergence
    if first is not None:
        rows.add_row("first random layer" if result.verdict == "nondeterministic" else "first divergent layer",
                     first.layer)
        rows.add_row("node", f"{first.node} ({first.op}, output {first.output})")
        rows.add_row("cause", first.cause)
        rows.add_row("max |diff|", f"{figure(first.max_abs_diff)} (relative {figure(first.max_rel_diff)}; "
                                   f"tolerance {_tolerance(result.tolerance)})")
        rows.add_row("hint", for_pytest(first.hint) if pytest_options else first.hint)
    if plan:
        rows.add_row("batch", plan)
    others = result.roots[1:]
    if others:
        shown = ", ".join(f"{r.node} ({r.cause})" for r in others[:3])
        rows.add_row("other roots", shown + (f" and {len(others) - 3} more" if len(others) > 3 else ""))
    lines = [f"{'reproduce:' if i == 0 else '':10} {line}" for i, line in enumerate(reproduce)]
    return render(f"{label} {headline or HEADLINES[result.verdict]}", rows, "", layer_table(result),
                  *([""] + lines if lines else []))


def _tolerance(tolerance: dict) -> str:
    return f"atol {tolerance['atol']:.1e} + rtol {tolerance['rtol']:.1e} × max|solo|"


def first_failing_plan(result: CheckResult) -> str | None:
    """The first trial that diverged, described as `Checker.describe` does."""
    for trial in result.trials:
        if trial.diverged:
            return (f"batch of {trial.batch_size}, probe `{trial.probe}` at {trial.position}, "
                    f"mates: {', '.join(trial.mates)} (trial {trial.index}, seed {trial.seed})")
    return None


# -- the fixture's helper ------------------------------------------------------------------------

class Batchcheck:
    """What the `batchcheck` fixture gives a test: checks with the session's `--graph-*` options as
    defaults, each model loaded once per session."""

    def __init__(self, defaults: CheckConfig) -> None:
        self.defaults = defaults
        self._checkers: dict[tuple[str, str], Checker] = {}
        self._results: dict[tuple[str, str], CheckResult] = {}

    def config(self, **overrides: Any) -> CheckConfig:
        """The session's check options with `overrides` (CheckConfig fields, e.g. trials=3)."""
        known = {f.name for f in dataclasses.fields(CheckConfig)}
        for name in overrides:
            if name not in known:
                raise UsageError(f"{name}={overrides[name]!r}: not a check option; use one of "
                                 f"{', '.join(sorted(known))}")
        for name in ("images", "checkpoint"):
            if isinstance(overrides.get(name), str):
                overrides[name] = Path(overrides[name])
        return dataclasses.replace(self.defaults, **overrides)

    def checker(self, path: Path | str, **overrides: Any) -> Checker:
        """`path` loaded and analysed (once per path and options in this session)."""
        from ..check import Checker

        config = self.config(**overrides)
        key = self._key(path, config)
        if key not in self._checkers:
            self._checkers[key] = Checker.open(path, config)
        return self._checkers[key]

    def check(self, path: Path | str, **overrides: Any) -> CheckResult:
        """The full check of `path` (run once per path and options in this session)."""
        config = self.config(**overrides)
        key = self._key(path, config)
        if key not in self._results:
            self._results[key] = self.checker(path, **overrides).check()
        return self._results[key]

    def assert_invariant(self, path: Path | str, **overrides: Any) -> CheckResult:
        """Fail with the batchcheck report unless `path` is batch-invariant and deterministic."""
        __tracebackhide__ = True
        result = self.check(path, **overrides)
        if not result:
            config = self.config(**overrides)
            raise NotInvariant(failure_report(
                result, label=f"`{path}`", plan=first_failing_plan(result),
                reproduce=[cli_command(Path(path), config)]))
        return result

    def close(self) -> None:
        """Release every loaded model's TensorFlow session."""
        for checker in self._checkers.values():
            checker.close()
        self._checkers.clear()
        self._results.clear()

    @staticmethod
    def _key(path: Path | str, config: CheckConfig) -> tuple[str, str]:
        return str(Path(path).resolve()), repr(config)
