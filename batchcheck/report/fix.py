"""Terminal report of a fix: rewrites, statistics sources, proof, before/after figures."""
from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..repair.result import FixResult
from .terminal import figure


def print_fix_report(result: FixResult, console: Console) -> None:
    """Print `result` for a person."""
    out = lambda text="": console.print(text, highlight=False, soft_wrap=True)  # noqa: E731
    proof = result.proof
    out(f"[bold]batchcheck fix[/] {escape(result.model)} → {escape(result.written)}")
    out(f"  input    {escape(result.input)}")
    out(f"  outputs  {escape(', '.join(result.outputs))}")
    counts = result.rewrite_counts()
    out("rewrites " + (", ".join(f"{kind} ×{n}" for kind, n in counts.items()) or "none (nothing to rewrite)"))
    for kind, count in counts.items():
        first = next(r for r in result.rewrites if r.kind == kind)
        more = f" (and {count - 1} more)" if count > 1 else ""
        out(f"  {kind}: {escape(first.detail)}{more}")
    if len(result.rewrites) > len(counts):
        out("  (--json lists every rewrite with the nodes it touched)")
    if result.statistics:
        by_source: dict[str, int] = {}
        for source in result.statistics:
            by_source[source.source] = by_source.get(source.source, 0) + 1
        out("statistics " + ", ".join(f"{n} BatchNorm(s) from {s}" for s, n in by_source.items())
            + (f" ({result.calibration_images} calibration images)" if result.calibration_images else ""))
        out(f"  e.g. `{escape(result.statistics[0].scope)}`: {escape(result.statistics[0].detail)}")
    out(f"proof   re-check: {proof.verdict}")
    out(f"        outputs vs {escape(proof.reference)}, {proof.images} images:")
    for o in proof.outputs:
        share = "" if o.agreement is None else f", {'top-1' if o.task == 'classification' else 'pixel'} " \
                                               f"agreement {o.agreement:.1%}"
        out(f"          {escape(o.output)}: max |diff| {figure(o.max_abs_diff)} "
            f"(allowed {figure(o.allowed_abs_diff)}), "
            f"relative {figure(o.max_rel_diff)}{share}")
    table = Table(box=None, show_edge=False, pad_edge=False)
    table.add_column("graph")
    for column in ("nodes", "BatchNorm nodes", *(f"batch {b} ms" for b in proof.before.latency_ms)):
        table.add_column(column, justify="right")
    for label, figures in (("before", proof.before), ("after", proof.after)):
        table.add_row(label, f"{figures.nodes:,}", f"{figures.batchnorm_nodes:,}",
                      *(f"{ms:.2f}" for ms in figures.latency_ms.values()))
    console.print(table)
    if result:
        out("[green]PASS[/] written and proven")
    else:
        out(f"[red]FAIL[/] written, but: {escape('; '.join(proof.failed))}")
