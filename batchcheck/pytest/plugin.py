"""pytest plugin: `pytest --graph MODEL` checks models for batch invariance, in any folder.

Each model gets generated test items, `batchcheck[LABEL]::invariance` (the seeded batch plans),
`::determinism` (the same feed twice), `::fuzz` (hypothesis over batch plans) and, with
`--graph-baseline FILE`, `::baseline` (the regression gate). The items share one loaded model, held by a
supervised child process (`batchcheck.safety.remote`): it is loaded when the first of them runs and released
after the last. The `batchcheck` fixture checks models from users' own tests. Importing this module does not
import TensorFlow.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import pytest

from ..errors import UsageError
from ..options import add_check_options
from ..report.failure import for_pytest
from ..serial import plain
from .pages import PAGES, PageWriter, add_page_options, attach_report, page_settings
from .settings import PREFIX, SETTINGS, settings_from

MODEL_ITEM = re.compile(r"(.*/)?batchcheck\[")  # a generated item's id, whatever prefix pytest's rootdir needs

if TYPE_CHECKING:
    from .fixture import Batchcheck


# -- options -------------------------------------------------------------------------------------

def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("batchcheck", "batchcheck: batch invariance of image models")
    group.addoption("--graph", action="append", default=[], metavar="MODEL",
                    help="check MODEL for batch invariance (repeatable; globs like 'zoo/*.pb' work)")
    add_check_options(group.addoption, PREFIX, command="check")
    group.addoption("--graph-examples", type=int, metavar="N",
                    help="hypothesis examples for each fuzz test (default: the hypothesis profile's)")
    group.addoption("--graph-baseline", type=Path, metavar="FILE",
                    help="regression gate: fail when a model regresses against its entry in FILE (JSON)")
    group.addoption("--graph-update-baseline", action="store_true",
                    help="write or refresh the --graph-baseline entries of the models checked")
    add_page_options(group)


def pytest_configure(config: pytest.Config) -> None:
    try:
        settings = config.stash[SETTINGS] = settings_from(config)
        pages = config.stash[PAGES] = page_settings(config)
    except UsageError as exc:
        raise pytest.UsageError(f"batchcheck: {for_pytest(str(exc))}") from None
    if settings.update_baseline and not hasattr(config, "workerinput"):
        from .baseline import BaselineWriter

        config.pluginmanager.register(BaselineWriter(settings), "batchcheck-baseline-writer")
    if pages and settings.models and not hasattr(config, "workerinput"):
        from ..report.failure import cli_command

        commands = {m.label: cli_command(Path(m.given), settings.check_config) for m in settings.models}
        config.pluginmanager.register(PageWriter(pages, commands), "batchcheck-page-writer")


def pytest_report_header(config: pytest.Config) -> list[str]:
    settings = config.stash.get(SETTINGS, None)
    if not settings or not settings.models:
        return []
    gate = f", baseline {settings.baseline}" if settings.baseline else ""
    update = " (updating)" if settings.update_baseline else ""
    return [f"batchcheck: {len(settings.models)} model(s){gate}{update}"]


# -- the fixture -------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def batchcheck(request: pytest.FixtureRequest) -> Iterator[Batchcheck]:
    """Check models from your own tests: `batchcheck.assert_invariant(path, trials=3)` fails with the
    batchcheck report. Defaults come from the `--graph-*` options; each model is loaded once a session."""
    from .fixture import Batchcheck

    helper = Batchcheck(request.config.stash[SETTINGS].check_config)
    yield helper
    helper.close()


# -- xdist ---------------------------------------------------------------------------------------

@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Under `-n N` (load scheduling), keep each model's items on one worker, so that each model is
    loaded once; other tests are spread one by one as usual. loadscope and loadfile group them already."""
    if config.getvalue("dist") != "load" or not config.stash[SETTINGS].models:
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ModelScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return nodeid.rsplit("::", 1)[0] if MODEL_ITEM.match(nodeid) else nodeid

    return ModelScheduling(config, log)


# -- collection ----------------------------------------------------------------------------------

@pytest.hookimpl(tryfirst=True)  # before -k/-m deselection, so they select batchcheck items too
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    settings = config.stash.get(SETTINGS, None)
    if not settings:
        return
    from .items import ModelCollector

    # pytest may pick a rootdir above the invocation folder from a `--graph` path; ids stay short anyway:
    # pytest shows them relative to where it was invoked.
    here = Path(os.path.relpath(config.invocation_params.dir, config.rootpath)).as_posix()
    for model in settings.models:
        name = f"batchcheck[{model.label}]"
        nodeid = name if here == "." else f"{here}/{name}"
        collector = ModelCollector.from_parent(session, name=name, nodeid=nodeid, path=model.path, model=model)
        items.extend(session.genitems(collector))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[pytest.TestReport]:
    from .baseline import REPORT_ATTRIBUTE
    from .items import BaselineItem, ModelItem

    report = yield
    if isinstance(item, BaselineItem) and call.when == "call" and item.measured is not None:
        setattr(report, REPORT_ATTRIBUTE, json.dumps(plain(item.measured)))  # JSON: xdist sends it to the controller
    if isinstance(item, ModelItem) and call.when == "call" and item.config.stash[PAGES] and not item.parent.page_sent:
        model_report = item.parent.state.report_dict(item.model.given) if item.parent.state else None
        if model_report is not None:
            attach_report(report, item.model.label, model_report)
            item.parent.page_sent = True
    if isinstance(item, ModelItem) and report.skipped and isinstance(report.longrepr, tuple):
        report.longrepr = (str(item.path), None, report.longrepr[2])  # the model, not the plugin's source line
    return report


