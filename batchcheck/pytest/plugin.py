"""pytest plugin: `pytest --graph MODEL` checks models for batch invariance, in any folder.

Each model gets generated test items, `batchcheck[LABEL]::invariance` (the seeded batch plans),
`::determinism` (the same feed twice), `::fuzz` (hypothesis over batch plans) and, with
`--graph-baseline FILE`, `::baseline` (the regression gate). The items share one loaded model: it is
loaded when the first of them runs and released after the last. The `batchcheck` fixture checks models
from users' own tests. Importing this module does not import TensorFlow.
"""
from __future__ import annotations

import glob
import json
import random
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import pytest

from ..errors import UsageError
from ..options import CheckConfig, add_check_options, config_from_options
from .pages import PAGES, PageWriter, add_page_options, attach_report, page_line, page_settings

if TYPE_CHECKING:
    from ..report.failure import Batchcheck
    from ..check import Checker
    from ..result import CheckResult

PREFIX = "graph-"
REPORT_ATTRIBUTE = "batchcheck_baseline"  # on a baseline item's call report: JSON [key, entry]
GLOB_CHARS = frozenset("*?[")
MAX_CHANGE_ROWS = 8


class BaselineNotice(UserWarning):
    """A model improved on its baseline; refresh it with --graph-update-baseline to lock the gain in."""


@dataclass(frozen=True)
class Model:
    """One model to check: its path, as given and resolved, and its label in test ids."""
    given: str
    path: Path
    label: str


@dataclass
class Settings:
    """The plugin's options, validated once per pytest session."""
    models: list[Model]
    check_config: CheckConfig
    examples: int | None
    baseline: Path | None
    update_baseline: bool
    expected: dict[str, dict] = field(default_factory=dict)  # baseline entries by key

    def baseline_key(self, model: Model) -> str:
        from .baseline import baseline_key

        assert self.baseline is not None
        return baseline_key(model.path, self.baseline)

    def accepted(self, model: Model) -> dict | None:
        """The model's entry in the baseline, if there is one."""
        return self.expected.get(self.baseline_key(model)) if self.baseline else None


SETTINGS = pytest.StashKey[Settings]()


# -- options -------------------------------------------------------------------------------------

def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("batchcheck", "batchcheck: batch invariance of image models")
    group.addoption("--graph", action="append", default=[], metavar="MODEL",
                    help="check MODEL for batch invariance (repeatable; globs like 'zoo/*.pb' work)")
    add_check_options(group.addoption, PREFIX)
    group.addoption("--graph-examples", type=int, metavar="N",
                    help="hypothesis examples for each fuzz test (default: the hypothesis profile's)")
    group.addoption("--graph-baseline", type=Path, metavar="FILE",
                    help="regression gate: fail when a model regresses against its entry in FILE (JSON)")
    group.addoption("--graph-update-baseline", action="store_true",
                    help="write or refresh the --graph-baseline entries of the models checked")
    add_page_options(group)


def pytest_configure(config: pytest.Config) -> None:
    from ..report.failure import for_pytest

    try:
        settings = config.stash[SETTINGS] = _settings(config)
        pages = config.stash[PAGES] = page_settings(config)
    except UsageError as exc:
        raise pytest.UsageError(f"batchcheck: {for_pytest(str(exc))}") from None
    if settings.update_baseline and not hasattr(config, "workerinput"):
        config.pluginmanager.register(BaselineWriter(settings), "batchcheck-baseline-writer")
    if pages and settings.models and not hasattr(config, "workerinput"):
        from ..report.failure import cli_command

        commands = {m.label: cli_command(Path(m.given), settings.check_config) for m in settings.models}
        config.pluginmanager.register(PageWriter(pages, commands), "batchcheck-page-writer")


def _settings(config: pytest.Config) -> Settings:
    from ..report.failure import option_for_field

    try:
        check_config = config_from_options(config.getoption, PREFIX)
    except UsageError as exc:  # "trials=0: …" names the field; say which option it came from
        name, equals, rest = str(exc).partition("=")
        raise UsageError(f"{option_for_field(name, PREFIX)}={rest}" if equals and name.isidentifier()
                         else str(exc)) from None
    examples, baseline = config.getoption("graph_examples"), config.getoption("graph_baseline")
    update = config.getoption("graph_update_baseline")
    models = _models(config.getoption("graph"), config.invocation_params.dir, check_config.format)
    if examples is not None and examples < 1:
        raise UsageError(f"--graph-examples {examples}: give a whole number of at least 1")
    if update and baseline is None:
        raise UsageError("--graph-update-baseline: say which file with --graph-baseline FILE")
    if baseline is not None and not models:
        raise UsageError(f"--graph-baseline {baseline}: the gate checks --graph models; add --graph MODEL")
    settings = Settings(models, check_config, examples, None, update)
    if baseline is not None:
        settings.baseline = (config.invocation_params.dir / baseline).resolve()
        settings.expected = _expected(settings.baseline, update)
    return settings


def _models(patterns: list[str], root: Path, model_format: str) -> list[Model]:
    """`--graph` patterns expanded in order, each model once; `UsageError` for a pattern matching nothing."""
    from ..load.formats import SUPPORTED, detect_format

    found: dict[Path, str] = {}
    for pattern in patterns:
        if GLOB_CHARS & set(pattern):
            matches = sorted(glob.glob(pattern, root_dir=root, recursive=True))
            if not matches:
                raise UsageError(f"--graph {pattern}: matches no file or folder (from {root})")
        else:
            if not (root / pattern).exists():
                raise UsageError(f"--graph {pattern}: no such file or folder; pass {SUPPORTED}")
            matches = [pattern]
        for match in matches:
            path = (root / match).resolve()
            if path.is_dir() and model_format in ("auto", "savedmodel"):
                detect_format(path)  # a folder must be a SavedModel
            found.setdefault(path, match)
    labels = _unique_labels([Path(given) for given in found.values()])
    return [Model(given, path, label) for (path, given), label in zip(found.items(), labels)]


def _unique_labels(paths: list[Path]) -> list[str]:
    """The shortest path suffixes that tell the models apart: `model.pb`, or `a/model.pb` and `b/model.pb`."""
    parts = [p.parts or (".",) for p in paths]
    depth = [1] * len(paths)
    while True:
        labels = ["/".join(p[-d:]) for p, d in zip(parts, depth)]
        clashing = {label for label in labels if labels.count(label) > 1}
        grow = [i for i, label in enumerate(labels) if label in clashing and depth[i] < len(parts[i])]
        if not grow:
            return labels
        for i in grow:
            depth[i] += 1


def _expected(baseline: Path, update: bool) -> dict[str, dict]:
    from .baseline import load_baseline

    if not baseline.parent.is_dir():
        raise UsageError(f"--graph-baseline {baseline}: folder `{baseline.parent}` does not exist")
    if baseline.exists():
        return load_baseline(baseline)
    if update:
        return {}
    raise UsageError(f"--graph-baseline {baseline}: no such file; write it first with --graph-update-baseline")


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
    from ..report.failure import Batchcheck

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
            return nodeid.rsplit("::", 1)[0] if nodeid.startswith("batchcheck[") else nodeid

    return ModelScheduling(config, log)


# -- collection ----------------------------------------------------------------------------------

@pytest.hookimpl(tryfirst=True)  # before -k/-m deselection, so they select batchcheck items too
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    settings = config.stash.get(SETTINGS, None)
    if not settings:
        return
    for model in settings.models:
        name = f"batchcheck[{model.label}]"
        collector = ModelCollector.from_parent(session, name=name, nodeid=name, path=model.path, model=model)
        items.extend(session.genitems(collector))


class ModelCollector(pytest.Collector):
    """The items of one model; holds the loaded model while they run."""

    def __init__(self, *, model: Model, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.state: ModelState | None = None
        self.page_sent = False  # its report went to the page writer (--graph-html, --graph-markdown)

    def collect(self) -> Iterator[pytest.Item]:
        yield InvarianceItem.from_parent(self, name="invariance")
        yield DeterminismItem.from_parent(self, name="determinism")
        yield FuzzItem.from_parent(self, name="fuzz")
        if self.config.stash[SETTINGS].baseline:
            yield BaselineItem.from_parent(self, name="baseline")

    def setup(self) -> None:
        self.state = ModelState(self.model.path, self.config.stash[SETTINGS].check_config)

    def teardown(self) -> None:
        if self.state is not None:
            self.state.close()
        self.state = None


class ModelState:
    """A model loaded once for all its items. A model that cannot be loaded fails the first item with
    one line; its other items are skipped with a pointer to it."""

    def __init__(self, path: Path, config: CheckConfig) -> None:
        self.path, self.config = path, config
        self._checker: Checker | None = None
        self._error: tuple[UsageError, str] | None = None  # (error, node id of the item it failed)
        self._result: CheckResult | None = None

    def checker(self, nodeid: str) -> Checker:
        """The loaded model, for the item `nodeid`."""
        from ..check import Checker

        if self._error is None and self._checker is None:
            try:
                self._checker = Checker.open(self.path, self.config)
            except UsageError as exc:
                self._error = (exc, nodeid)
                raise
        if self._error is not None:
            pytest.skip(f"the model cannot be checked: see {self._error[1]}")
        assert self._checker is not None
        return self._checker

    def result(self, nodeid: str) -> CheckResult:
        """The full check (the seeded plans), run once."""
        if self._result is None:
            self._result = self.checker(nodeid).check()
        return self._result

    def report_dict(self, given: str) -> dict | None:
        """The full check's report, or the error that stopped loading; None when neither happened yet."""
        from ..report.failure import for_pytest
        from ..report.summary import error_report

        if self._result is not None:
            return self._result.to_dict()
        return error_report(given, for_pytest(str(self._error[0])), "load") if self._error is not None else None

    def close(self) -> None:
        if self._checker is not None:
            self._checker.close()
        self._checker = self._result = None


class ModelFailure(Exception):
    """A batchcheck item failed; the message is the whole report."""


class ModelItem(pytest.Item):
    """One generated test of one model."""

    parent: ModelCollector

    @property
    def model(self) -> Model:
        return self.parent.model

    def checker(self) -> Checker:
        """The model's checker, shared with its other items."""
        assert self.parent.state is not None, "ModelCollector.setup() did not run"
        return self.parent.state.checker(self.nodeid)

    def check_result(self) -> CheckResult:
        """The model's full check, shared with its other items."""
        assert self.parent.state is not None, "ModelCollector.setup() did not run"
        return self.parent.state.result(self.nodeid)

    @property
    def settings(self) -> Settings:
        return self.config.stash[SETTINGS]

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, self.nodeid

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style=None) -> Any:
        from ..report.failure import for_pytest

        if isinstance(excinfo.value, ModelFailure):
            return str(excinfo.value)
        if isinstance(excinfo.value, UsageError):
            return f"batchcheck: {for_pytest(str(excinfo.value))}"
        return super().repr_failure(excinfo, style)

    def fail_with_report(self, result: CheckResult, accepted: bool, *, plan: str | None, select: str,
                         headline: str | None = None, pytest_extra: Sequence[str] = (), cli: bool = True) -> None:
        """Fail with the report, or xfail when the baseline accepts this failure."""
        from ..report.failure import cli_command, command, failure_report, option_args

        if accepted:
            root = f" (root `{result.first_divergence.node}`)" if result.first_divergence else ""
            where = "accepted into" if self.settings.update_baseline else "as accepted in"
            pytest.xfail(f"{result.verdict}{root}, {where} baseline {self.settings.baseline}")
        config = self.settings.check_config
        reproduce = [cli_command(Path(self.model.given), config)] if cli else []
        reproduce.append(command("pytest", "--graph", self.model.given, *option_args(config, PREFIX),
                                 *pytest_extra, "-k", f"batchcheck and {select}"))
        raise ModelFailure(failure_report(result, label=f"`{self.model.given}`", plan=plan, headline=headline,
                                          reproduce=reproduce, pytest_options=True)
                           + page_line(self.config.stash[PAGES], self.model.label))

    def accepted_verdict(self, verdict: str) -> bool:
        """Whether the baseline accepts a `verdict` failure of this model (or is being rewritten)."""
        if self.settings.baseline is None:
            return False
        if self.settings.update_baseline:
            return True
        entry = self.settings.accepted(self.model)
        if entry is None:
            return False
        return entry["nondeterministic"] if verdict == "nondeterministic" else entry["verdict"] == verdict


class InvarianceItem(ModelItem):
    """The seeded batch plans: the probe's activations must not depend on its batch-mates."""

    def runtest(self) -> None:
        from ..report.failure import first_failing_plan

        result = self.check_result()
        if result.verdict == "batch_dependent":
            self.fail_with_report(result, self.accepted_verdict("batch_dependent"), plan=first_failing_plan(result),
                                  select="invariance")


class DeterminismItem(ModelItem):
    """The same feed twice must give the same activations."""

    def runtest(self) -> None:
        from ..check import BatchPlan

        checker = self.checker()
        rerun = checker.run_plan(BatchPlan(0, 0, ()), "detail")
        if checker.random_reaches_data or not rerun:
            result = checker.result([rerun], trials=[])
            self.fail_with_report(result, self.accepted_verdict("nondeterministic"),
                                  plan=f"probe `{checker.pool.names[0]}` alone, run twice", select="determinism",
                                  headline="is nondeterministic: the same feed run twice gives different activations")


class FuzzItem(ModelItem):
    """Hypothesis over batch plans, shrunk to the smallest failing one."""

    def runtest(self) -> None:
        from hypothesis import settings

        from ..strategies import PlanDiverged, fuzz

        checker = self.checker()
        forced = self.config.getoption("hypothesis_seed", None)
        fixed = None if forced is not None or settings().derandomize else random.SystemRandom().getrandbits(32)
        try:
            fuzz(checker, key=self.nodeid.encode(), max_examples=self.settings.examples, seed=fixed)
        except BaseException as exc:  # hypothesis may wrap the failure (flaky, exception groups)
            diverged = _find(exc, PlanDiverged)
            if diverged is None:
                raise
            result = checker.result([diverged.outcome], trials=[])
            self.fail_with_report(
                result, self.accepted_verdict("batch_dependent"),
                plan=f"{checker.describe(diverged.outcome.plan)} (the smallest failing batch found)",
                headline="is batch-dependent: hypothesis found a batch that changes the probe's activations",
                select="fuzz", pytest_extra=self._replay_options(forced if forced is not None else fixed), cli=False)

    def _replay_options(self, seed: int | str | None) -> list[str]:
        """The options that make hypothesis explore the same plans again."""
        options = ["--hypothesis-seed", str(seed)] if seed is not None else []
        if self.settings.examples:
            options += ["--graph-examples", str(self.settings.examples)]
        profile = self.config.getoption("hypothesis_profile", None)
        if profile:
            options += ["--hypothesis-profile", profile]
        return options


class BaselineItem(ModelItem):
    """The regression gate: the model must not be worse than its baseline entry."""

    measured: tuple[str, dict] | None = None  # (key, entry) to write with --graph-update-baseline

    def runtest(self) -> None:
        from .baseline import compare, measure

        settings, key = self.settings, self.settings.baseline_key(self.model)
        entry = measure(self.checker(), self.check_result())
        if settings.update_baseline:
            self.measured = (key, entry)
            return
        expected = settings.expected.get(key)
        if expected is None:
            raise ModelFailure(f"`{self.model.given}` has no entry `{key}` in baseline {settings.baseline}; "
                               f"add it with --graph-update-baseline")
        changes = compare(expected, entry)
        regressions = [c for c in changes if c.regression]
        if regressions:
            raise ModelFailure(self._report(key, entry, regressions))
        if changes:
            shown = "; ".join(f"{c.what}: {c.baseline} -> {c.now}" for c in changes[:3])
            more = f" and {len(changes) - 3} more" if len(changes) > 3 else ""
            warnings.warn(BaselineNotice(f"{self.model.given} improved on its baseline ({shown}{more}); "
                                         f"lock it in with --graph-update-baseline"))

    def _report(self, key: str, entry: dict, regressions: list) -> str:
        from rich.table import Table

        from ..report.failure import command, option_args, render

        table = Table(show_edge=False, pad_edge=False)
        for column in ("what changed", "baseline", "now"):
            table.add_column(column, overflow="fold")
        for change in regressions[:MAX_CHANGE_ROWS]:
            table.add_row(change.what, change.baseline, change.now)
        if len(regressions) > MAX_CHANGE_ROWS:
            table.add_row(f"… and {len(regressions) - MAX_CHANGE_ROWS} more", "", "")
        config = self.settings.check_config
        update = command("pytest", "--graph", self.model.given, *option_args(config, PREFIX), "--graph-baseline",
                         str(self.settings.baseline), "--graph-update-baseline", "-k", "batchcheck and baseline")
        return render(f"`{self.model.given}` regressed against its baseline entry `{key}` in "
                      f"{self.settings.baseline}:", table,
                      f"fixed plan: {entry['plan']}", f"accept the change: {update}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[pytest.TestReport]:
    report = yield
    if isinstance(item, BaselineItem) and call.when == "call" and item.measured is not None:
        setattr(report, REPORT_ATTRIBUTE, json.dumps(item.measured))  # JSON: xdist sends it to the controller
    if isinstance(item, ModelItem) and call.when == "call" and item.config.stash[PAGES] and not item.parent.page_sent:
        model_report = item.parent.state.report_dict(item.model.given) if item.parent.state else None
        if model_report is not None:
            attach_report(report, item.model.label, model_report)
            item.parent.page_sent = True
    if isinstance(item, ModelItem) and report.skipped and isinstance(report.longrepr, tuple):
        report.longrepr = (str(item.path), None, report.longrepr[2])  # the model, not the plugin's source line
    return report


class BaselineWriter:
    """Collects the measured entries (from this process or, under xdist, from the workers' reports) and
    writes them to the baseline once, at the end of the session, in the controlling process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.measured: dict[str, dict] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        measured = getattr(report, REPORT_ATTRIBUTE, None)
        if measured is not None:
            key, entry = json.loads(measured)
            self.measured[key] = entry

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        from .baseline import write_baseline

        if self.measured:
            assert self.settings.baseline is not None
            write_baseline(self.settings.baseline, self.measured)

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.measured:
            terminalreporter.write_line(f"batchcheck: wrote {len(self.measured)} model(s) to baseline "
                                        f"{self.settings.baseline}: {', '.join(sorted(self.measured))}")


def _find(exc: BaseException, kind: type) -> Any:
    """`exc` or the first exception of type `kind` inside it (hypothesis raises exception groups)."""
    if isinstance(exc, kind):
        return exc
    for inner in getattr(exc, "exceptions", ()):
        found = _find(inner, kind)
        if found is not None:
            return found
    return None
