"""Failure messages (pytest items, `assert_invariant`): the first divergent node as a table, the
per-layer table, the fix, and the commands that reproduce the run."""
from __future__ import annotations

import io
import shlex
from pathlib import Path
from typing import Any, Iterable

from ..options import CheckConfig, option_args, with_prefix
from ..result import CheckResult, Verdict

REPORT_WIDTH = 100
PYTEST_PREFIX = "graph-"


# -- reproducing ---------------------------------------------------------------------------------

def command(*parts: str | Path) -> str:
    """A shell command line, quoted."""
    return " ".join(shlex.quote(str(part)) for part in parts)


def cli_command(path: Path, config: CheckConfig) -> str:
    """`batchcheck check PATH …` for `config`."""
    return command("batchcheck", "check", path, *option_args(config))


def for_pytest(text: str) -> str:
    """`text` with the CLI's flags (`--feed`) as the plugin spells them (`--graph-feed`)."""
    return with_prefix(text, PYTEST_PREFIX)


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
        rows.add_row("first random layer" if result.verdict == Verdict.NONDETERMINISTIC else "first divergent layer",
                     first.layer)
        rows.add_row("node", f"{first.node} ({first.op}, output {first.output})")
        rows.add_row("cause", first.cause)
        rows.add_row("max |diff|", f"{figure(first.max_abs_diff)} (relative {figure(first.max_rel_diff)}; "
                                   f"tolerance {result.tolerance.describe()})")
        rows.add_row("hint", for_pytest(first.hint) if pytest_options else first.hint)
    if plan:
        rows.add_row("batch", plan)
    others = result.roots[1:]
    if others:
        shown = ", ".join(f"{r.node} ({r.cause})" for r in others[:3])
        rows.add_row("other roots", shown + (f" and {len(others) - 3} more" if len(others) > 3 else ""))
    lines = [f"{'reproduce:' if i == 0 else '':10} {line}" for i, line in enumerate(reproduce)]
    return render(f"{label} {headline or result.headline}", rows, "", layer_table(result),
                  *([""] + lines if lines else []))


def first_failing_plan(result: CheckResult) -> str | None:
    """The first trial that diverged, described as `Checker.describe` does."""
    for trial in result.trials:
        if trial.diverged:
            return f"{trial.describe()} (trial {trial.index}, seed {trial.seed})"
    return None
