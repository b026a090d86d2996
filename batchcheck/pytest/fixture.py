"""The `batchcheck` fixture's helper: check models from your own tests.

    def test_export(batchcheck, tmp_path):
        path = export_my_model(tmp_path)
        batchcheck.assert_invariant(path, feeds={"is_training": "false"})
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import NotInvariant, UsageError
from ..options import CheckConfig
from ..report.failure import cli_command, failure_report, first_failing_plan
from ..result import Verdict

if TYPE_CHECKING:
    from ..checker import Checker
    from ..result import CheckResult


class Batchcheck:
    """What the `batchcheck` fixture gives a test: checks with the session's `--graph-*` options as
    defaults, each model loaded once per session."""

    def __init__(self, defaults: CheckConfig) -> None:
        self.defaults = defaults
        self._checkers: dict[tuple[str, str], Checker] = {}
        self._results: dict[tuple[str, str], CheckResult] = {}

    def config(self, **overrides: Any) -> CheckConfig:
        """The session's check options with `overrides` (CheckConfig fields, e.g. trials=3)."""
        known = {f.name for f in dataclasses.fields(CheckConfig)}
        for name in overrides:
            if name not in known:
                raise UsageError(f"{name}={overrides[name]!r}: not a check option; use one of "
                                 f"{', '.join(sorted(known))}")
        for name in ("images", "checkpoint"):
            if isinstance(overrides.get(name), str):
                overrides[name] = Path(overrides[name])
        return dataclasses.replace(self.defaults, **overrides)

    def checker(self, path: Path | str, **overrides: Any) -> Checker:
        """`path` loaded and analysed (once per path and options in this session)."""
        from ..checker import Checker

        config = self.config(**overrides)
        key = self._key(path, config)
        if key not in self._checkers:
            self._checkers[key] = Checker.open(path, config)
        return self._checkers[key]

    def check(self, path: Path | str, **overrides: Any) -> CheckResult:
        """The full check of `path` (run once per path and options in this session)."""
        config = self.config(**overrides)
        key = self._key(path, config)
        if key not in self._results:
            self._results[key] = self.checker(path, **overrides).check()
        return self._results[key]

    def assert_invariant(self, path: Path | str, **overrides: Any) -> CheckResult:
        """Fail with the batchcheck report unless `path` is batch-invariant and deterministic."""
        __tracebackhide__ = True
        result = self.check(path, **overrides)
        if result.verdict == Verdict.INVARIANT and not result:  # a pass over too little of the network
            raise UsageError(result.coverage.message(path))
        if not result:
            config = self.config(**overrides)
            raise NotInvariant(failure_report(
                result, label=f"`{path}`", plan=first_failing_plan(result),
                reproduce=[cli_command(Path(path), config)]))
        return result

    def close(self) -> None:
        """Release every loaded model's TensorFlow session."""
        for checker in self._checkers.values():
            checker.close()
        self._checkers.clear()
        self._results.clear()

    @staticmethod
    def _key(path: Path | str, config: CheckConfig) -> tuple[str, str]:
        return str(Path(path).resolve()), repr(config)
