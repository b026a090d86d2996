"""The divergence profile as a self-contained SVG, built from a report dict (`CheckResult.to_dict()`).

One bar per compared tensor in topological order (per layer when there are many, per run of layers
when there are very many): its largest relative difference on a log scale, coloured by status, with
the tolerance and the noise floor as lines, the first divergent layer and every root marked, and a
status strip underneath so that where the network starts to depend on the batch shows at a glance.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape
from pathlib import Path

WIDTH, HEIGHT = 960, 330
LEFT, RIGHT, TOP, PLOT_HEIGHT = 64, 16, 62, 200
STRIP = 10  # the status strip under the bars
ZERO_BAND = 14  # at the bottom of the plot: differences of exactly 0
MAX_TENSOR_COLUMNS = 240  # above this many tensors, one column per layer
MAX_COLUMNS = 320  # above this many layers, one column per run of consecutive layers
MAX_ROOT_LABELS = 6
LABEL_ROWS = 3
CHAR_WIDTH = 6.4  # of the 11 px label font, for keeping labels apart
LOWEST_DECADE = -12
AFTER_TINT = ("#fbe9e7", "#fdf1e3")  # behind what follows the first divergence (batch-dependent, random)
FIRST_LABEL = ("first: ", "first random: ")
HALO = ' stroke="#fff" stroke-width="3" paint-order="stroke"'  # keeps a label readable over bars

# status → (colour, legend label); the order is the severity a column takes from its tensors
STATUS_STYLE = {
    "divergent": ("#d1382f", "divergent"),
    "nondeterministic": ("#e8871e", "nondeterministic"),
    "unjudged": ("#b9a7d6", "unjudged (after randomness)"),
    "ok": ("#6f9fd8", "within tolerance"),
    "not_compared": ("#d9d9d9", "not compared"),
}
SEVERITY = list(STATUS_STYLE)


def figure_value(value) -> float | None:
    """A figure from a report dict: floats stay, the strings "inf"/"nan" of strict JSON become floats."""
    return None if value is None else float(value)


@dataclass
class Column:
    """One bar: a tensor, a layer or a run of layers."""
    label: str
    status: str
    max_rel: float | None
    tensors: int
    layers: list[str]
    nodes: set[str]


def columns(report: dict) -> tuple[list[Column], str]:
    """The bars of the profile and what one bar stands for ("tensor", "layer" or "layers")."""
    tensors = report["tensors"]
    cols = [Column(t["tensor"], t["status"], figure_value(t["max_rel_diff"]), 1, [t["layer"]],
                   {t["tensor"].rsplit(":", 1)[0]}) for t in tensors]
    if len(cols) <= MAX_TENSOR_COLUMNS:
        return cols, "tensor"
    by_layer: list[Column] = []
    for col in cols:
        if by_layer and by_layer[-1].layers == col.layers:
            _absorb(by_layer[-1], col)
        else:
            by_layer.append(Column(col.layers[0], col.status, col.max_rel, 1, list(col.layers), set(col.nodes)))
    if len(by_layer) <= MAX_COLUMNS:
        return by_layer, "layer"
    size = math.ceil(len(by_layer) / MAX_COLUMNS)
    runs = []
    for start in range(0, len(by_layer), size):
        group = by_layer[start:start + size]
        run = Column("", group[0].status, group[0].max_rel, 0, [], set())
        for col in group:
            _absorb(run, col)
        run.label = f"{group[0].label} … {group[-1].label}" if len(group) > 1 else group[0].label
        runs.append(run)
    return runs, "layers"


def _absorb(into: Column, col: Column) -> None:
    """Merge `col` into `into`: the worse status, the larger difference."""
    if SEVERITY.index(col.status) < SEVERITY.index(into.status):
        into.status = col.status
    if col.max_rel is not None and (into.max_rel is None or not col.max_rel <= into.max_rel):
        into.max_rel = col.max_rel
    into.tensors += col.tensors
    into.layers += [layer for layer in col.layers if layer not in into.layers]
    into.nodes |= col.nodes


@dataclass
class Scale:
    """Log scale from 10**low to 10**high onto the plot's height."""
    low: int
    high: int

    def y(self, value: float | None) -> float:
        bottom = TOP + PLOT_HEIGHT
        if value is None or value <= 0 or math.isnan(value):
            return bottom - 2
        if math.isinf(value):
            return TOP
        share = (math.log10(value) - self.low) / (self.high - self.low)
        return bottom - ZERO_BAND - max(0.0, min(1.0, share)) * (PLOT_HEIGHT - ZERO_BAND)


def _scale(cols: list[Column], lines: list[float]) -> Scale:
    finite = [c.max_rel for c in cols if c.max_rel and math.isfinite(c.max_rel)] + [v for v in lines if v > 0]
    if not finite:
        return Scale(-8, 0)
    low = max(LOWEST_DECADE, math.floor(math.log10(min(finite))) - 1)
    high = math.ceil(math.log10(max(finite)) + 0.3)
    return Scale(low, max(high, low + 2))


def profile_svg(report: dict) -> str:
    """The divergence profile of `report` as an SVG document (inline styles only, no script)."""
    cols, unit = columns(report)
    tolerance = report["tolerance"]
    rtol, floor = tolerance["rtol"], tolerance.get("noise_floor")
    scale = _scale(cols, [rtol] + ([floor] if floor else []))
    plot_width = WIDTH - LEFT - RIGHT
    step = plot_width / max(1, len(cols))
    bar = max(1.0, step * 0.8) if step >= 2 else step
    markers, label_rows = _markers(report, cols, step)
    crop = TOP - 14 - 14 * label_rows  # no room kept for root labels that are not there
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="profile" viewBox="0 {crop} {WIDTH} {HEIGHT - crop}" '
             f'width="{WIDTH}" height="{HEIGHT - crop}" role="img" font-family="system-ui, sans-serif" '
             f'font-size="11">',
             f"<title>divergence profile: largest relative difference per {unit}, input to output</title>",
             f'<rect class="plot-area" x="{LEFT}" y="{TOP}" width="{plot_width}" height="{PLOT_HEIGHT}" '
             f'fill="#fafafa"/>']
    parts += _axis(scale, plot_width)
    bottom = TOP + PLOT_HEIGHT
    first = report.get("first_divergence")
    start = _column_of(cols, first["node"]) if first else None
    if start is not None:
        parts.append(f'<rect x="{LEFT + start * step:.1f}" y="{TOP}" width="{plot_width - start * step:.1f}" '
                     f'height="{PLOT_HEIGHT}" fill="{AFTER_TINT[report["verdict"] == "nondeterministic"]}"/>')
    for i, col in enumerate(cols):
        x = LEFT + i * step
        colour = STATUS_STYLE[col.status][0]
        tip = escape(f"{col.label}: {_rel_text(col.max_rel)} ({col.status}, {col.tensors} tensor"
                     f"{'s' if col.tensors != 1 else ''})")
        if col.status != "not_compared":
            y = scale.y(col.max_rel)
            parts.append(f'<rect x="{x:.2f}" y="{y:.1f}" width="{bar:.2f}" height="{bottom - y:.1f}" '
                         f'fill="{colour}"><title>{tip}</title></rect>')
        parts.append(f'<rect x="{x:.2f}" y="{bottom + 4}" width="{step:.2f}" height="{STRIP}" fill="{colour}">'
                     f"<title>{tip}</title></rect>")
    tol_y = scale.y(rtol)
    parts.append(f'<line x1="{LEFT}" x2="{LEFT + plot_width}" y1="{tol_y:.1f}" y2="{tol_y:.1f}" '
                 f'stroke="#b2182b" stroke-width="1.5" stroke-dasharray="6 3"/>')
    parts.append(f'<text x="{LEFT + 4}" y="{tol_y - 4:.1f}" fill="#b2182b"{HALO}>tolerance rtol {rtol:.1e}</text>')
    if floor:
        floor_y = scale.y(floor)
        parts.append(f'<line x1="{LEFT}" x2="{LEFT + plot_width}" y1="{floor_y:.1f}" y2="{floor_y:.1f}" '
                     f'stroke="#777" stroke-dasharray="2 3"/>')
        parts.append(f'<text x="{LEFT + 4}" y="{floor_y + 12:.1f}" fill="#555"{HALO}>noise floor {floor:.1e}</text>')
    parts += markers
    parts += _legend(cols, unit, bool(report["roots"]))
    parts.append("</svg>")
    return "\n".join(parts)


def _axis(scale: Scale, plot_width: float) -> list[str]:
    parts = []
    span = scale.high - scale.low
    every = 1 if span <= 8 else 2 if span <= 16 else 3
    for decade in range(scale.low, scale.high + 1, every):
        y = scale.y(10.0 ** decade)
        parts.append(f'<line x1="{LEFT}" x2="{LEFT + plot_width}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e6e6e6"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#555">1e{decade}</text>')
    bottom = TOP + PLOT_HEIGHT
    parts.append(f'<text x="{LEFT - 6}" y="{bottom + 1}" text-anchor="end" fill="#555">0</text>')
    parts.append(f'<text x="14" y="{TOP + PLOT_HEIGHT / 2}" text-anchor="middle" fill="#333" '
                 f'transform="rotate(-90 14 {TOP + PLOT_HEIGHT / 2})">max relative difference</text>')
    label_y = bottom + STRIP + 20
    parts.append(f'<text x="{LEFT}" y="{label_y}" fill="#333">input</text>')
    parts.append(f'<text x="{LEFT + plot_width / 2}" y="{label_y}" text-anchor="middle" fill="#333">'
                 f"depth (topological order) →</text>")
    parts.append(f'<text x="{LEFT + plot_width}" y="{label_y}" text-anchor="end" fill="#333">output</text>')
    return parts


def _column_of(cols: list[Column], node: str) -> int | None:
    return next((i for i, col in enumerate(cols) if node in col.nodes), None)


def _markers(report: dict, cols: list[Column], step: float) -> tuple[list[str], int]:
    """A triangle over every root, labels for the first ones that fit, a line at the first divergence;
    and how many rows of labels that took."""
    parts: list[str] = []
    rows: list[list[tuple[float, float]]] = [[] for _ in range(LABEL_ROWS)]
    first = report.get("first_divergence")
    labelled = 0
    for rank, root in enumerate(report["roots"]):
        index = _column_of(cols, root["node"])
        if index is None:
            continue
        x = LEFT + (index + 0.4) * step
        is_first = first is not None and root["node"] == first["node"]
        colour = "#7a0c0c" if is_first else "#333"
        if is_first:
            edge = LEFT + index * step - 1  # just before its bar: everything from here on is after it
            parts.append(f'<line class="first-divergence" x1="{edge:.1f}" x2="{edge:.1f}" y1="{TOP - 4}" '
                         f'y2="{TOP + PLOT_HEIGHT + STRIP + 4}" stroke="{colour}" stroke-width="1.5"/>')
        parts.append(f'<path d="M{x - 5:.1f},{TOP - 10} L{x + 5:.1f},{TOP - 10} L{x:.1f},{TOP - 2} Z" '
                     f'fill="{colour}"><title>{escape(_root_tip(root))}</title></path>')
        if labelled >= MAX_ROOT_LABELS:
            continue
        text = (FIRST_LABEL[report["verdict"] == "nondeterministic"] if is_first else "") + root["layer"]
        width = len(text) * CHAR_WIDTH
        start = min(max(x - width / 2, 2), WIDTH - width - 2)
        row = next((r for r in range(LABEL_ROWS) if all(start > b + 6 or start + width < a - 6
                                                         for a, b in rows[r])), None)
        if row is None:
            continue
        rows[row].append((start, start + width))
        y = TOP - 16 - row * 14
        weight = ' font-weight="bold"' if is_first else ""
        parts.append(f'<text class="root-label" x="{start:.1f}" y="{y}" fill="{colour}"{weight}>'
                     f"{escape(text)}</text>")
        labelled += 1
    return parts, sum(bool(row) for row in rows)


def _root_tip(root: dict) -> str:
    return (f"root {root['node']} ({root['op']}, output {root['output']}): {root['cause']}, "
            f"max |diff| {figure_value(root['max_abs_diff']):.3g}, relative {_rel_text(root['max_rel_diff'])}")


def _legend(cols: list[Column], unit: str, roots: bool) -> list[str]:
    present = [s for s in STATUS_STYLE if any(c.status == s for c in cols)]
    x, y = LEFT, HEIGHT - 8
    per = {"tensor": "one bar per tensor", "layer": "one bar per layer",
           "layers": "one bar per run of layers (worst shown)"}[unit]
    parts = [f'<text x="{x}" y="{y}" fill="#555">{per}:</text>']
    x += len(per) * CHAR_WIDTH + 14
    for status in present:
        colour, label = STATUS_STYLE[status]
        parts.append(f'<rect x="{x}" y="{y - 9}" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{x + 14}" y="{y}" fill="#333">{label}</text>')
        x += 14 + len(label) * CHAR_WIDTH + 14
    if roots:
        parts.append(f'<path d="M{x:.0f},{y - 9} L{x + 10:.0f},{y - 9} L{x + 5:.0f},{y} Z" fill="#333"/>')
        parts.append(f'<text x="{x + 14}" y="{y}" fill="#333">root</text>')
    return parts


def _rel_text(value) -> str:
    value = figure_value(value)
    return "not compared" if value is None else f"{value:.3g}"


def write_plot(path: Path, report: dict) -> None:
    """Write the profile of `report` alone to `path` (an .svg file)."""
    Path(path).write_text(profile_svg(report) + "\n", encoding="utf-8")
