"""`--graph-html DIR` (a page per model plus `index.html`) and `--graph-markdown PATH` (a CI summary).

The item that has a model's full check (or the error that stopped it) attaches its report dict to its
test report as JSON; the controlling process (the only one under xdist) collects them and writes every
file once at the end of the session. Importing this module does not import TensorFlow.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ..errors import UsageError

REPORT_ATTRIBUTE = "batchcheck_page"  # on a model item's call report: JSON [label, report dict]


@dataclass
class PageSettings:
    """Where the pages and the summary go (None: not asked for)."""
    html_dir: Path | None
    markdown: Path | None

    def __bool__(self) -> bool:
        return self.html_dir is not None or self.markdown is not None

    def page(self, label: str) -> Path | None:
        """The page of the model labelled `label`."""
        return self.html_dir / page_name(label) if self.html_dir is not None else None


PAGES = pytest.StashKey[PageSettings]()


def add_page_options(group: Any) -> None:
    group.addoption("--graph-html", type=Path, metavar="DIR",
                    help="write a self-contained HTML page per model and an index.html to DIR")
    group.addoption("--graph-markdown", type=Path, metavar="PATH",
                    help="write a Markdown summary (one row per model, for a CI job summary) to PATH")


def page_settings(config: pytest.Config) -> PageSettings:
    """The options, resolved from where pytest was started; `UsageError` when a folder is missing."""
    root = config.invocation_params.dir
    html_dir, markdown = config.getoption("graph_html"), config.getoption("graph_markdown")
    settings = PageSettings(root / html_dir if html_dir else None, root / markdown if markdown else None)
    if settings.html_dir is not None and not settings.html_dir.parent.is_dir():
        raise UsageError(f"--graph-html {html_dir}: folder `{settings.html_dir.parent}` does not exist; "
                         f"create it or choose another folder")
    if settings.html_dir is not None and settings.html_dir.exists() and not settings.html_dir.is_dir():
        raise UsageError(f"--graph-html {html_dir}: is a file; give a folder for the pages")
    if settings.markdown is not None and not settings.markdown.parent.is_dir():
        raise UsageError(f"--graph-markdown {markdown}: folder `{settings.markdown.parent}` does not exist; "
                         f"create it or choose another path")
    return settings


def page_name(label: str) -> str:
    """A file name for the model labelled `label`: `zoo/a.pb` -> `zoo__a.pb.html`."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label.replace("/", "__")).strip("._") + ".html"


def page_line(settings: PageSettings, label: str) -> str:
    """The line a failure message ends with when pages are written."""
    page = settings.page(label)
    return f"\npage:      {page}" if page is not None else ""


def attach_report(report: pytest.TestReport, label: str, model_report: dict) -> None:
    """Send `model_report` (plain JSON values) with this test report; xdist carries it to the controller."""
    setattr(report, REPORT_ATTRIBUTE, json.dumps([label, model_report]))


@dataclass
class PageWriter:
    """Collects the models' report dicts and writes the pages, the index and the summary once."""
    settings: PageSettings
    commands: dict[str, str]  # label -> the command that checks it, for every model, in order
    reports: dict[str, dict] = field(default_factory=dict)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        sent = getattr(report, REPORT_ATTRIBUTE, None)
        if sent is not None:
            label, model_report = json.loads(sent)
            self.reports.setdefault(label, model_report)

    def entries(self) -> list[tuple[str, str | None, dict]]:
        """(label, page link, report) for every model; a model with no report says why."""
        rows = []
        for label in self.commands:
            report = self.reports.get(label) or {
                "verdict": "error", "stage": "not run",
                "error": "no full check ran in this session (its `invariance` test was deselected or skipped)"}
            link = page_name(label) if self.settings.html_dir is not None and label in self.reports else None
            rows.append((label, link, report))
        return rows

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        from ..report.html import write_html, write_index
        from ..report.markdown import write_markdown

        entries = self.entries()
        html_dir, markdown = self.settings.html_dir, self.settings.markdown
        if html_dir is not None:
            html_dir.mkdir(exist_ok=True)
            for label, link, report in entries:
                if link is not None:
                    write_html(html_dir / link, report, command=self.commands[label])
            write_index(html_dir / "index.html", entries)
        if markdown is not None:
            prefix = (Path(html_dir.relative_to(markdown.parent)) if html_dir is not None
                      and html_dir.is_relative_to(markdown.parent) else None)
            write_markdown(markdown, [(label, str(prefix / link) if prefix and link else None, report)
                                      for label, link, report in entries])

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        written = [str(path) for path in (self.settings.html_dir and self.settings.html_dir / "index.html",
                                          self.settings.markdown) if path]
        terminalreporter.write_line(f"batchcheck: {len(self.commands)} model(s) reported in {' and '.join(written)}")
