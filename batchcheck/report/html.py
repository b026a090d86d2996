"""Self-contained HTML pages built from report dicts (`CheckResult.to_dict()` or a saved `--json` report).

`write_html(path, report)` writes one model's page: verdict, culprit, the divergence profile, roots,
model and tolerance, trials, the per-tensor table (filterable, sortable) and how to reproduce.
`write_index(path, entries)` writes the page listing many models. Styles and script are inlined and a
Content-Security-Policy forbids any network access, so a page opens the same anywhere, offline.
An error report (`summary.error_report`) gives a page that says why the check could not run.
"""
from __future__ import annotations

import json
import shlex
from html import escape
from importlib import resources
from pathlib import Path
from typing import Iterable, Sequence

from ..result import CheckResult, Mode, Status, Verdict
from .profile import STATUS_STYLE, figure_value, profile_svg
from .summary import Summary, summarize, summarize_result

CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"
HEADLINES = {
    "batch_dependent": ("FAIL", "batch-dependent: the probe's activations change with its batch-mates"),
    "nondeterministic": ("FAIL", "nondeterministic: the same feed run twice gives different activations"),
    "invariant": ("PASS", "invariant: every compared tensor matched alone and in every batch"),
    "error": ("ERROR", "the check could not run"),
}
MAX_MATES_SHOWN = 6


def _asset(name: str) -> str:
    return resources.files(__package__).joinpath("assets", name).read_text(encoding="utf-8")


def _figure(value) -> str:
    value = figure_value(value)
    return "–" if value is None else f"{value:.3g}"


def _num_cell(value) -> str:
    """A right-aligned figure whose exact value sorts (`data-value`)."""
    value = figure_value(value)
    sort = "" if value is None else f' data-value="{value!r}"'
    return f'<td class="num"{sort}>{_figure(value)}</td>'


def _page(title: str, verdict: str, heading: str, subtitle: str, body: Iterable[str]) -> str:
    badge, text = HEADLINES.get(verdict, (verdict.upper(), verdict))
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title>", f"<style>{_asset('page.css')}</style></head><body>",
        f'<header class="verdict v-{escape(verdict)}"><div class="inner">',
        f'<h1><span class="badge">{badge}</span>{escape(heading)}</h1>',
        f"<p>{escape(subtitle or text)}</p></div></header>", "<main>", *body,
        '<footer>written by batchcheck; this page is self-contained (no network access).</footer>',
        f"</main><script>{_asset('page.js')}</script></body></html>"])


# -- one model -------------------------------------------------------------------------------------

def model_path_of(report: dict, default: str) -> str:
    """The model's path in any command's report (`model` is a dict for check and lint, a path for fix)."""
    model = report.get("model", default)
    return str(model.get("path", default) if isinstance(model, dict) else model)


def render_html(report: dict, *, kind: str = "check", command: str | None = None,
                explained: dict[str, str] | None = None) -> str:
    """The page of one report. `kind` names the command that made it ("check"; others get a generic
    page until they have their own sections); `command` is how to reproduce it; `explained` maps root
    nodes to what `explain` concluded about them."""
    model_path = model_path_of(report, "model")
    verdict = report.get("verdict", "error")
    if verdict == "error":
        sections = _error_sections(report, command or reproduce_command(report, kind))
    elif kind == "check":
        sections = _check_sections(report, CheckResult.from_dict(report), command or reproduce_command(report),
                                   explained or {})
    else:
        sections = _generic_sections(report, command or reproduce_command(report, kind))
    return _page(f"batchcheck {kind}: {verdict} — {model_path}", verdict, f"{verdict} — {model_path}", "", sections)


def write_html(path: Path | str, report: dict, *, kind: str = "check", command: str | None = None,
               explained: dict[str, str] | None = None) -> None:
    """Write the page of `report` to `path`."""
    Path(path).write_text(render_html(report, kind=kind, command=command, explained=explained), encoding="utf-8")


def reproduce_command(report: dict, kind: str = "check") -> str:
    """The command that reruns the check, from what the report records (the model and the seed)."""
    parts = ["batchcheck", kind, model_path_of(report, "MODEL")]
    seeds = {trial["seed"][0] for trial in report.get("trials", [])}
    if len(seeds) == 1:
        parts += ["--seed", str(seeds.pop())]
    return " ".join(shlex.quote(str(part)) for part in parts)


def _check_sections(report: dict, result: CheckResult, command: str, explained: dict[str, str]) -> list[str]:
    return [_culprit(result), _section("profile", "Divergence profile", _profile(report, result)),
            *([_section("roots", f"Roots ({len(result.roots)})", _roots(result, explained))]
              if result.roots else []),
            _section("model", "Model and tolerance", _facts(result)),
            _section("trials", f"Trials ({len(result.trials)})", _trials(result)),
            _section("tensors", f"Tensors ({len(result.tensors)})", _tensors(result)),
            _section("reproduce", "Reproduce", f'<pre class="command">{escape(command)}</pre>')]


def _error_sections(report: dict, command: str) -> list[str]:
    summary = summarize(report)
    return [f'<div class="culprit error" id="culprit"><div class="name">{escape(summary.reason or "")}</div>'
            f'<div class="hint">the model could not be checked; the message says what to change</div></div>',
            _section("reproduce", "Reproduce", f'<pre class="command">{escape(command)}</pre>')]


def _generic_sections(report: dict, command: str) -> list[str]:
    body = escape(json.dumps(report, indent=2, default=str))
    return [_section("report", "Report", f'<pre class="command">{body}</pre>'),
            _section("reproduce", "Reproduce", f'<pre class="command">{escape(command)}</pre>')]



def _section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{anchor}"><h2>{escape(title)}</h2>\n{body}\n</section>'


def _culprit(result: CheckResult) -> str:
    verdict, first = str(result.verdict), result.first_divergence
    if first is None:
        summary = summarize_result(result)
        return (f'<div class="culprit invariant" id="culprit"><div class="name">no tensor depends on the batch'
                f'</div><div class="hint">largest difference seen {escape(summary.difference_text())}, '
                f'within the tolerance</div></div>')
    label = "first random node" if result.verdict == Verdict.NONDETERMINISTIC else "first divergent layer"
    return (f'<div class="culprit {escape(verdict)}" id="culprit"><div class="muted">{label}</div>'
            f'<div class="name">{escape(first.layer)}</div>'
            f'<div>node <code>{escape(first.node)}</code> ({escape(first.op)}, output {first.output}), '
            f'cause <b>{escape(str(first.cause))}</b>, max |diff| {_figure(first.max_abs_diff)} '
            f'(relative {_figure(first.max_rel_diff)})</div>'
            f'<div class="hint">{escape(first.hint)}</div></div>')


def _profile(report: dict, result: CheckResult) -> str:
    tensors = result.tensors
    compared = [t for t in tensors if t.status != Status.NOT_COMPARED]
    counts = {s: sum(t.status == s for t in tensors) for s in STATUS_STYLE}
    shown = ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in counts.items() if n)
    return (f'<div class="profile-box">{profile_svg(report)}</div>'
            f'<p class="muted">{len(compared)} of {len(tensors)} tensors compared ({shown}); '
            f"a bar is the largest |batched − alone| / max|alone| over the trials; hover for names.</p>")


def _roots(result: CheckResult, explained: dict[str, str]) -> str:
    cards = []
    for root in result.roots:
        conclusion = explained.get(root.node)
        explain = f'<div class="explain"><b>explain:</b> {escape(conclusion)}</div>' if conclusion else ""
        cards.append(f'<div class="root"><div class="name">{escape(root.layer)}</div>'
                     f'<div><code>{escape(root.node)}</code> ({escape(root.op)}, output {root.output})'
                     f' — cause <b>{escape(str(root.cause))}</b>, max |diff| {_figure(root.max_abs_diff)} '
                     f'(relative {_figure(root.max_rel_diff)})</div>'
                     f'<div class="muted">{escape(root.hint)}</div>{explain}</div>')
    return "\n".join(cards)


def _facts(result: CheckResult) -> str:
    model, tol = result.model, result.tolerance
    shape = "×".join(str(d) for d in model.per_image_shape)
    relaxed = f" (batch axis relaxed from {model.shipped_batch})" if model.batch_relaxed else ""
    rows = [("model", f"<code>{escape(model.path)}</code> ({escape(model.format)})"),
            ("input", f"<code>{escape(model.input)}</code> {escape(model.input_dtype)}, per image "
                      f"{shape}{relaxed}"),
            ("outputs", ", ".join(f"<code>{escape(o)}</code>" for o in model.outputs)),
            ("images", escape(str(model.images))),
            ("compared", f"{model.compared_tensors} tensors ({model.screened_tensors} on every trial)")]
    for limit in result.limits:
        beyond = f"; {limit.tensors_beyond} tensors beyond it not tested" if limit.tensors_beyond else ""
        rows.append(("batch limit", f"<code>{escape(limit.node)}</code> ({escape(limit.op)}) "
                                    f"{escape(limit.reason)}{beyond}"))
    if not result.limits:
        rows.append(("batch limit", "none: every tensor runs with any batch size"))
    for p in model.placeholders:
        fed = f"fed {p.fed}" if p.fed is not None else "default kept"
        rows.append(("placeholder", f"<code>{escape(p.name)}</code> {escape(p.dtype)}: {escape(fed)}"))
    floor = tol.noise_floor
    rows.append(("tolerance", f"atol {tol.atol:.1e} + rtol {tol.rtol:.1e} × max|alone| ({escape(tol.source)})"))
    rows.append(("noise floor", f"{floor:.1e} (the probe alone vs batches of its copies)" if floor is not None
                 else "not measured"))
    for finding in result.findings:
        rows.append(("note", f"<code>{escape(finding.layer)}</code>: {escape(finding.message)}"))
    versions = result.versions
    if versions:
        rows.append(("versions", escape(", ".join(f"{k} {v}" for k, v in versions.items()))))
    return '<dl class="facts">' + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows) + "</dl>"


def _trials(result: CheckResult) -> str:
    head = ('<table><thead><tr><th class="num">#</th><th class="num">batch size</th>'
            '<th class="num">probe at</th><th>probe</th><th>batch-mates</th><th>compared</th>'
            '<th>diverged</th></tr></thead><tbody>')
    rows = []
    for trial in result.trials:
        mates = trial.mates
        shown = ", ".join(mates[:MAX_MATES_SHOWN]) + (f" … (+{len(mates) - MAX_MATES_SHOWN})"
                                                      if len(mates) > MAX_MATES_SHOWN else "")
        mode = "every tensor" if trial.mode == Mode.DETAIL else "screened" + (
            ", then every tensor" if trial.localised else "")
        rows.append(f'<tr class="{"diverged" if trial.diverged else ""}"><td class="num">{trial.index}</td>'
                    f'<td class="num">{trial.batch_size}</td><td class="num">{trial.position}</td>'
                    f'<td>{escape(trial.probe)}</td><td title="{escape(", ".join(mates))}">{escape(shown)}</td>'
                    f'<td>{mode}</td><td>{"<b>yes</b>" if trial.diverged else "no"}</td></tr>')
    requested = result.model.requested_trials
    extra = len(result.trials) - requested if requested else 0
    note = (f'<p class="muted">{extra} more than --trials {requested}, to run every batch size once.</p>'
            if extra > 0 else "")
    return head + "\n".join(rows) + "</tbody></table>" + note


def _tensors(result: CheckResult) -> str:
    tensors = result.tensors
    present = [s for s in STATUS_STYLE if any(t.status == s for t in tensors)]
    buttons = ['<button type="button" class="active" data-status="all">all</button>'] + [
        f'<button type="button" data-status="{s}">{s.replace("_", " ")} '
        f'({sum(t.status == s for t in tensors)})</button>' for s in present]
    head = ('<table><thead><tr><th data-sort="num" class="num">#</th><th data-sort="text">tensor</th>'
            '<th data-sort="text">op</th><th data-sort="text">status</th>'
            '<th data-sort="num" class="num">max |diff|</th><th data-sort="num" class="num">max relative</th>'
            '<th data-sort="num" class="num">trials</th><th>note</th></tr></thead><tbody>')
    rows = [f'<tr class="s-{t.status}" data-status="{t.status}" data-name="{escape(t.tensor.lower())}">'
            f'<td class="num" data-value="{i}">{i}</td><td class="mono">{escape(t.tensor)}</td>'
            f'<td>{escape(t.op)}</td><td>{str(t.status).replace("_", " ")}</td>'
            f'{_num_cell(t.max_abs_diff)}{_num_cell(t.max_rel_diff)}'
            f'<td class="num" data-value="{t.trials}">{t.trials}</td><td>{escape(t.note)}</td></tr>'
            for i, t in enumerate(tensors)]
    return (f'<div data-filter-box><div class="filters">status: {"".join(buttons)}'
            f'<input type="search" placeholder="filter by name" aria-label="filter tensors by name"></div>'
            f'<div class="scroll">{head}{"".join(rows)}</tbody></table></div></div>')


# -- many models -----------------------------------------------------------------------------------

def render_index(entries: Sequence[tuple[str, str | None, dict]], *, title: str = "batchcheck") -> str:
    """The page listing `(label, link to its page or None, report)` entries, one row per model."""
    summaries = [summarize(report) for _, _, report in entries]
    failing = sum(not s for s in summaries)
    verdict = "pass" if not failing else "fail"
    heading = f"{len(entries)} model(s), {failing} not invariant" if failing else f"{len(entries)} model(s) invariant"
    rows = [_index_row(label, link, summary) for (label, link, _), summary in zip(entries, summaries)]
    table = ('<table><thead><tr><th data-sort="text">model</th><th data-sort="text">verdict</th>'
             '<th data-sort="text">first divergent layer</th><th data-sort="text">cause</th>'
             '<th data-sort="num" class="num">max relative</th></tr></thead><tbody>'
             + "\n".join(rows) + "</tbody></table>")
    return _page(f"{title}: {heading}", verdict, heading, "one row per model; open a model for its profile",
                 [_section("models", "Models", table)])


def write_index(path: Path | str, entries: Sequence[tuple[str, str | None, dict]], *, title: str = "batchcheck") -> None:
    """Write the index of `entries` to `path`."""
    Path(path).write_text(render_index(entries, title=title), encoding="utf-8")


def _index_row(label: str, link: str | None, summary: Summary) -> str:
    name = f'<a href="{escape(link)}">{escape(label)}</a>' if link else escape(label)
    colour = {"invariant": "var(--pass)", "error": "var(--error)", "nondeterministic": "var(--warn)"}.get(
        summary.verdict, "var(--fail)")
    culprit = (escape(summary.reason) if summary.reason else
               f"<code>{escape(summary.culprit)}</code>" if summary.culprit else "–")
    return (f'<tr class="s-{escape(summary.verdict)}"><td>{name}</td>'
            f'<td><span class="pill" style="background:{colour}">{escape(summary.verdict)}</span></td>'
            f'<td>{culprit}</td><td>{escape(summary.cause or "–")}</td>{_num_cell(summary.max_rel_diff)}</tr>')
