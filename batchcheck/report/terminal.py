"""Terminal report: verdict, first divergent layer with cause and fix, other roots, per-layer table."""
from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..graph.findings import Finding
from ..result import CheckResult, Divergence, Verdict

MAX_LAYER_ROWS = 16
MAX_OTHER_ROOTS = 8


def figure(value: float | None) -> str:
    return "–" if value is None else f"{value:.3g}"


def shape_text(shape) -> str:
    return "×".join(str(d) for d in shape)


def root_line(root: Divergence) -> str:
    return (f"`{root.node}` ({root.op}, output {root.output}) in layer `{root.layer}`: {root.cause}, "
            f"max |diff| {figure(root.max_abs_diff)} (relative {figure(root.max_rel_diff)})")


def print_report(result: CheckResult, console: Console, *, all_layers: bool = False) -> None:
    """Print `result` for a person."""
    model, tol = result.model, result.tolerance
    out = lambda text="": console.print(text, highlight=False, soft_wrap=True)  # noqa: E731
    out(f"[bold]batchcheck[/] {escape(model.path)} ({model.format})")
    relaxed = f" (batch axis relaxed from {model.shipped_batch})" if model.batch_relaxed else ""
    out(f"  input    {escape(model.input)} {model.input_dtype}, per image "
        f"{shape_text(model.per_image_shape)}{relaxed}")
    chosen = f" ({escape(model.outputs_chosen)})" if model.outputs_chosen else ""
    out(f"  outputs  {escape(', '.join(model.outputs))}{chosen}")
    for flag in model.flagged:
        out(f"  flagged  {escape(flag.kind)} `{escape(flag.node)}` ({flag.op}) {escape(flag.where)}: "
            f"can hang or hold state; ran under --timeout")
    for note in model.notes:
        out(f"  note     {escape(note)}")
    for p in model.placeholders:
        value = f"fed {p.fed}" if p.fed is not None else "default kept"
        out(f"  placeholder {escape(p.name)} ({p.op} {p.dtype} {p.shape}): {value}")
    sizes = sorted({t.batch_size for t in result.trials})
    extra = len(result.trials) - model.requested_trials
    raised = f" ({extra} more than --trials {model.requested_trials}, to run every batch size)" if extra > 0 else ""
    out(f"  compared {model.compared_tensors} tensors ({model.screened_tensors} on every trial) "
        f"over {len(result.trials)} trials{raised}, batch sizes {', '.join(map(str, sizes))}, images {model.images}")
    if tol.source == "measured":
        out(f"  tolerance {tol.describe()} (noise floor {tol.noise_floor:.1e} measured on batches of the probe's copies)")
    else:
        out(f"  tolerance {tol.describe()} ({tol.source})")
    coverage = result.coverage
    if coverage is not None and (coverage.compared_tensors < coverage.comparable_tensors or coverage.network_share < 1):
        skipped = f"; {coverage.limited_by}" if coverage.limited_by and not result.limits else ""  # limits: below
        out(f"  coverage {coverage.summary()}{escape(skipped)}")
    for limit in result.limits:
        beyond = f"; {limit.tensors_beyond} tensors beyond it not tested" if limit.tensors_beyond else ""
        out(f"  batch limit `{escape(limit.node)}` ({limit.op}) {escape(limit.reason)}{beyond}")
    out()
    out(verdict_line(result))
    first = result.first_divergence
    if first:
        label = "first divergent layer" if result.verdict == Verdict.BATCH_DEPENDENT else "first random layer"
        out(f"{label} `{escape(first.layer)}`, node `{escape(first.node)}`: {escape(first.hint)}")
        out(f"  op {first.op}, output {first.output}, cause {first.cause}, "
            f"max |diff| {figure(first.max_abs_diff)} (relative {figure(first.max_rel_diff)})")
    if len(result.roots) > 1:
        out("other roots:")
        for root in result.roots[1:1 + MAX_OTHER_ROOTS]:
            out(f"  {escape(root_line(root))}")
        if len(result.roots) > 1 + MAX_OTHER_ROOTS:
            out(f"  … {len(result.roots) - 1 - MAX_OTHER_ROOTS} more in --json")
    console.print(layer_table(result, None if all_layers else MAX_LAYER_ROWS))
    print_findings(result, out)


def verdict_line(result: CheckResult) -> str:
    """PASS, FAIL or UNTESTED with what it means, as rich markup."""
    diverged = sum(t.diverged for t in result.trials)
    if result.verdict == Verdict.INVARIANT and not result:
        return (f"[bold yellow]UNTESTED[/] every compared tensor matched, but too little of the network was "
                f"compared: {escape(result.coverage.limited_by or 'see coverage')}")
    if result.verdict == Verdict.INVARIANT:
        return (f"[bold green]PASS[/] invariant: every compared tensor of the probe matched alone and in "
                f"{len(result.trials)} batches")
    if result.verdict == Verdict.BATCH_DEPENDENT:
        return (f"[bold red]FAIL[/] batch_dependent: the probe's activations change with its batch-mates "
                f"({diverged} of {len(result.trials)} trials)")
    return "[bold red]FAIL[/] nondeterministic: the same feed run twice gives different activations"


def print_findings(result: CheckResult, out) -> None:
    """One line per kind of BatchNorm finding, with how many layers and an example."""
    by_kind: dict[str, list[Finding]] = {}
    for finding in result.findings:
        by_kind.setdefault(finding.kind, []).append(finding)
    for findings in by_kind.values():
        example = findings[0]
        out(f"note: {len(findings)} BatchNorm layer(s), e.g. `{escape(example.layer)}`: {escape(example.message)}")


def layer_table(result: CheckResult, most: int | None = MAX_LAYER_ROWS) -> Table:
    """Per-layer figures; past `most` rows, the divergent layers and the largest differences."""
    layers = result.layers()
    shown = layers
    if most is not None and len(layers) > most:
        worst = sorted(layers, key=lambda r: (-r["divergent"], -r["max_rel_diff"]))[:most]
        shown = [row for row in layers if row in worst]
    title = (f"layers ({len(shown)} of {len(layers)} shown; --all-layers lists every one)"
             if len(shown) < len(layers) else "layers")
    table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    for column, justify in (("layer", "left"), ("tensors", "right"), ("divergent", "right"),
                            ("max |diff|", "right"), ("max rel", "right")):
        table.add_column(column, justify=justify)
    for row in shown:
        style = "red" if row["divergent"] else None
        table.add_row(escape(row["layer"]), str(row["tensors"]), str(row["divergent"]),
                      figure(row["max_abs_diff"]), figure(row["max_rel_diff"]), style=style)
    return table
