"""One line's worth of a report dict: verdict, culprit, cause, largest difference, or why it could not run.

Shared by the HTML index and the Markdown summary; works on `CheckResult.to_dict()`, on a saved `--json`
report and on an error report (`error_report`).
"""
from __future__ import annotations

from dataclasses import dataclass

from .profile import figure_value


@dataclass(frozen=True)
class Summary:
    """What a table row says about one model."""
    verdict: str
    culprit: str | None  # the first divergent (or random) layer
    node: str | None
    cause: str | None
    max_abs_diff: float | None
    max_rel_diff: float | None
    reason: str | None  # why the check could not run (verdict "error")

    def __bool__(self) -> bool:
        return self.verdict == "invariant"

    def difference_text(self) -> str:
        """'2.13 (relative 21.1)', or '–' when nothing was compared."""
        if self.max_abs_diff is None:
            return "–"
        return f"{self.max_abs_diff:.3g} (relative {self.max_rel_diff or 0.0:.3g})"


def error_report(model_path: str, message: str, stage: str) -> dict:
    """The report of a check that ended in an error at `stage` ("load", "check", …) with `message`."""
    return {"verdict": "error", "error": message, "stage": stage, "model": {"path": str(model_path)}}


def summarize(report: dict) -> Summary:
    """The summary of a check's report dict (or an error report)."""
    verdict = report.get("verdict", "error")
    if verdict == "error":
        stage = report.get("stage")
        reason = f"{stage}: {report.get('error', '')}" if stage else report.get("error", "unknown error")
        return Summary("error", None, None, None, None, None, reason)
    first = report.get("first_divergence")
    if first:
        return Summary(verdict, first["layer"], first["node"], first["cause"],
                       figure_value(first["max_abs_diff"]), figure_value(first["max_rel_diff"]), None)
    compared = [t for t in report.get("tensors", []) if t["max_abs_diff"] is not None]
    if not compared:
        return Summary(verdict, None, None, None, None, None, None)
    return Summary(verdict, None, None, None, max(figure_value(t["max_abs_diff"]) for t in compared),
                   max(figure_value(t["max_rel_diff"]) for t in compared), None)
