"""One line's worth of a report dict: verdict, culprit, cause, largest difference, or why it could not run.

Shared by the HTML index and the Markdown summary; works on `CheckResult.to_dict()`, on a saved `--json`
report and on an error report (`error_report`).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..result import CheckResult
from ..serial import SCHEMA


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
    return {"schema": SCHEMA, "verdict": "error", "error": message, "stage": stage, "model": {"path": str(model_path)}}


def summarize(report: dict) -> Summary:
    """The summary of a report dict: a check's, another command's (its verdict only) or an error report."""
    verdict = report.get("verdict", "error")
    if verdict == "error":
        stage = report.get("stage")
        reason = f"{stage}: {report.get('error', '')}" if stage else report.get("error", "unknown error")
        return Summary("error", None, None, None, None, None, reason)
    if "tensors" not in report:
        return Summary(verdict, None, None, None, None, None, None)
    return summarize_result(CheckResult.from_dict(report))


def summarize_result(result: CheckResult) -> Summary:
    """The summary of a check's result."""
    verdict, first = str(result.verdict), result.first_divergence
    if first:
        return Summary(verdict, first.layer, first.node, str(first.cause), first.max_abs_diff, first.max_rel_diff,
                       None)
    compared = [t for t in result.tensors if t.max_abs_diff is not None]
    if not compared:
        return Summary(verdict, None, None, None, None, None, None)
    return Summary(verdict, None, None, None, max(t.max_abs_diff for t in compared),
                   max(t.max_rel_diff for t in compared), None)
