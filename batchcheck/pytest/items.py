"""The generated items of one model: `::invariance`, `::determinism`, `::fuzz` and `::baseline`, sharing
one loaded model that their collector holds while they run."""
from __future__ import annotations

import contextlib
import random
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

import pytest

from ..errors import (
    BaselineNotice,
    BatchcheckBug,
    ModelFailure,
    PlanDiverged,
    UsageError,
)
from ..options import CheckConfig, option_args
from ..report.failure import (
    cli_command,
    command,
    failure_report,
    first_failing_plan,
    for_pytest,
    render,
)
from ..result import HEADLINES, Verdict
from ..safety.remote import RemoteChecker, open_checker
from ..safety.supervise import limits_of, stage
from .baseline import compare, measure
from .baseline_file import BaselineEntry
from .pages import PAGES, page_line
from .settings import PREFIX, SETTINGS, Model, Settings

if TYPE_CHECKING:
    from ..checker import Checker
    from ..result import CheckResult

MAX_CHANGE_ROWS = 8


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
        self.state = ModelState(self.model.path, self.config.stash[SETTINGS].check_config, live_line(self.config))

    def teardown(self) -> None:
        if self.state is not None:
            self.state.close()
        self.state = None


def live_line(config: pytest.Config) -> Callable[[str], None]:
    """A writer of one line to the terminal's stderr while an item runs (past pytest's capture), with the CLI's
    flags as the plugin spells them: a model that stays long in one stage is said as it waits."""
    capture = config.pluginmanager.getplugin("capturemanager")

    def say(line: str) -> None:
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            print(for_pytest(line), file=sys.stderr, flush=True)

    return say


class ModelState:
    """A model loaded once for all its items, in a supervised child process (`--graph-timeout`,
    `--graph-max-memory`). A model that cannot be loaded, or whose child crashes, hangs or runs out of
    memory, fails the item it happened in with one line; its other items are skipped with a pointer to it."""

    def __init__(self, path: Path, config: CheckConfig, say: Callable[[str], None]) -> None:
        self.path, self.config, self.say = path, config, say
        self._checker: Checker | RemoteChecker | None = None
        self._error: tuple[UsageError, str, str] | None = None  # (error, stage, node id of the item it failed in)
        self._result: CheckResult | None = None
        self._last = ""  # the node id of the item that last used the checker

    def checker(self, nodeid: str) -> Checker | RemoteChecker:
        """The loaded model, for the item `nodeid`."""
        if self._error is None and self._checker is None:
            try:
                self._checker = open_checker(self.path, self.config, limits_of(self.config), self.say)
            except UsageError as exc:
                self._error = (exc, "load", nodeid)
                raise
        failure = self._failure()
        if failure is not None:
            pytest.skip(f"the model cannot be checked: see {failure[2]}")
        assert self._checker is not None
        self._last = nodeid
        return self._checker

    def result(self, nodeid: str) -> CheckResult:
        """The full check (the seeded plans), run once."""
        if self._result is None:
            self._result = self.checker(nodeid).check()
        return self._result

    def report_dict(self, given: str) -> dict | None:
        """The full check's report, or the error that stopped the model; None when neither happened yet."""
        from ..report.summary import error_report

        if self._result is not None:
            return self._result.to_dict()
        failure = self._failure()
        return error_report(given, for_pytest(str(failure[0])), failure[1]) if failure is not None else None

    def close(self) -> None:
        if self._checker is not None:
            self._checker.close()
        self._checker = self._result = None

    def _failure(self) -> tuple[UsageError, str, str] | None:
        """What stopped the model, in which stage and item: loading, or its child process stopping (a crash,
        a hang, out of memory) in the item that last used it."""
        checker = self._checker
        if self._error is None and isinstance(checker, RemoteChecker) and checker.stopped is not None:
            self._error = (checker.stopped, checker.stopped.stage, self._last)
        return self._error


class ModelItem(pytest.Item):
    """One generated test of one model."""

    parent: ModelCollector

    @property
    def model(self) -> Model:
        return self.parent.model

    def checker(self) -> Checker | RemoteChecker:
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
        return self.path, None, f"{self.parent.name}::{self.name}"  # the short id, whatever the rootdir

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style=None) -> Any:
        if isinstance(excinfo.value, ModelFailure):
            return str(excinfo.value)
        if isinstance(excinfo.value, (UsageError, BatchcheckBug)):
            return f"batchcheck: {for_pytest(str(excinfo.value))}"
        return super().repr_failure(excinfo, style)

    def fail_with_report(self, result: CheckResult, accepted: bool, *, plan: str | None, select: str,
                         headline: str | None = None, pytest_extra: Sequence[str] = (), cli: bool = True) -> None:
        """Fail with the report, or xfail when the baseline accepts this failure."""
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

    def accepted_verdict(self, verdict: Verdict) -> bool:
        """Whether the baseline accepts a `verdict` failure of this model (or is being rewritten)."""
        if self.settings.baseline is None:
            return False
        if self.settings.update_baseline:
            return True
        entry = self.settings.accepted(self.model)
        if entry is None:
            return False
        return entry.nondeterministic if verdict == Verdict.NONDETERMINISTIC else entry.verdict == verdict


class InvarianceItem(ModelItem):
    """The seeded batch plans: the probe's activations must not depend on its batch-mates."""

    def runtest(self) -> None:
        result = self.check_result()
        if result.verdict == Verdict.INVARIANT and not result:  # a pass over too little of the network
            raise UsageError(result.coverage.message(self.model.given))
        if result.verdict == Verdict.BATCH_DEPENDENT:
            self.fail_with_report(result, self.accepted_verdict(Verdict.BATCH_DEPENDENT), plan=first_failing_plan(result),
                                  select="invariance")


class DeterminismItem(ModelItem):
    """The same feed twice must give the same activations."""

    def runtest(self) -> None:
        checker = self.checker()
        stage("the determinism run")
        rerun = checker.rerun()
        if checker.random_reaches_data or not rerun:
            result = checker.result([rerun], trials=[])
            self.fail_with_report(result, self.accepted_verdict(Verdict.NONDETERMINISTIC),
                                  plan=f"probe `{checker.image_name(0)}` alone, run twice", select="determinism",
                                  headline=HEADLINES[Verdict.NONDETERMINISTIC])


class FuzzItem(ModelItem):
    """Hypothesis over batch plans, shrunk to the smallest failing one."""

    def runtest(self) -> None:
        from hypothesis import settings

        from ..strategies import fuzz

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
                result, self.accepted_verdict(Verdict.BATCH_DEPENDENT),
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

    measured: tuple[str, BaselineEntry] | None = None  # (key, entry) to write with --graph-update-baseline

    def runtest(self) -> None:
        settings, key = self.settings, self.settings.baseline_key(self.model)
        result = self.check_result()
        stage("the baseline measurement")
        entry = measure(self.checker(), result)
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

    def _report(self, key: str, entry: BaselineEntry, regressions: list) -> str:
        from rich.table import Table

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
                      f"fixed plan: {entry.plan}", f"accept the change: {update}")



def _find(exc: BaseException, kind: type) -> Any:
    """`exc` or the first exception of type `kind` inside it (hypothesis raises exception groups)."""
    if isinstance(exc, kind):
        return exc
    for inner in getattr(exc, "exceptions", ()):
        found = _find(inner, kind)
        if found is not None:
            return found
    return None
