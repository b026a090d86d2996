"""A short Markdown summary for a CI job summary: one table row per model, from report dicts."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from .summary import summarize

MARKS = {"invariant": "✅", "batch_dependent": "❌", "nondeterministic": "❌", "error": "⚠️"}


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell (no pipes, no line breaks)."""
    return " ".join(text.replace("|", "\\|").split())


def _code(text: str) -> str:
    return f"`{_cell(text).replace('`', '')}`"


def markdown_summary(entries: Sequence[tuple[str, str | None, dict]], *, title: str = "batchcheck") -> str:
    """`(label, link to its page or None, report)` entries as a heading line and a table."""
    summaries = [summarize(report) for _, _, report in entries]
    failing = [s for s in summaries if s.verdict in ("batch_dependent", "nondeterministic")]
    errors = [s for s in summaries if s.verdict == "error"]
    invariant = len(entries) - len(failing) - len(errors)
    counts = [f"{n} {what}" for n, what in ((invariant, "invariant"), (len(failing), "not invariant"),
                                              (len(errors), "could not be checked")) if n]
    lines = [f"### {title}: {len(entries)} model{'s' if len(entries) != 1 else ''}, {', '.join(counts)}", "",
             "| model | verdict | culprit | cause | max diff |", "|---|---|---|---|---|"]
    for (label, link, _), summary in zip(entries, summaries):
        name = f"[{_code(label)}]({link})" if link else _code(label)
        verdict = f"{MARKS.get(summary.verdict, '')} {summary.verdict}".strip()
        if summary.reason:
            culprit, cause = "–", _cell(summary.reason)
        else:
            culprit = _code(summary.culprit) if summary.culprit else "–"
            cause = _cell(summary.cause) if summary.cause else "–"
        lines.append(f"| {name} | {verdict} | {culprit} | {cause} | {summary.difference_text()} |")
    return "\n".join(lines) + "\n"


def write_markdown(path: Path | str, entries: Sequence[tuple[str, str | None, dict]], *,
                   title: str = "batchcheck") -> None:
    """Write the summary of `entries` to `path`."""
    Path(path).write_text(markdown_summary(entries, title=title), encoding="utf-8")
