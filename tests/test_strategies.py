"""Hypothesis strategies for batch plans and the fuzz run over a checker (a stand-in checker: no TensorFlow)."""
from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import find, given
from hypothesis.database import InMemoryExampleDatabase

from batchcheck.errors import PlanDiverged, UsageError
from batchcheck.options import CheckConfig
from batchcheck.plans import BatchPlan, PlanOutcome
from batchcheck.strategies import (
    KeyedDatabase,
    batch_plans,
    batch_sizes,
    checker_plans,
    fuzz,
    mate_order,
)

MAIN, POOL = 12, 15  # a synthetic pool: 12 probe images, then flat black, flat white, checkerboard
FLAT_BLACK = MAIN


@given(plan=batch_plans(MAIN, POOL, max_size=8))
def test_plans_are_valid(plan: BatchPlan) -> None:
    assert 2 <= plan.batch_size <= 8
    assert 0 <= plan.probe < MAIN
    assert 0 <= plan.position < plan.batch_size
    assert all(0 <= mate < POOL for mate in plan.mates)
    assert plan.rows()[plan.position] == plan.probe


def test_shrinks_to_two_images_with_a_flat_black_mate() -> None:
    plan = find(batch_plans(MAIN, POOL, max_size=32), lambda p: any(m != p.probe for m in p.mates))
    assert plan == BatchPlan(probe=0, position=0, mates=(FLAT_BLACK,))


def test_duplicates_and_other_images_are_reachable() -> None:
    assert find(batch_plans(MAIN, POOL, 8), lambda p: p.probe in p.mates) == BatchPlan(0, 0, (0,))
    other = find(batch_plans(MAIN, POOL, 8), lambda p: any(m < MAIN and m != p.probe for m in p.mates))
    assert other == BatchPlan(0, 0, (1,))
    big = find(batch_plans(MAIN, POOL, 8), lambda p: p.batch_size == 8 and p.position == 7)
    assert big.batch_size == 8 and big.mates == (FLAT_BLACK,) * 7


def test_mate_order_puts_specials_first_then_the_probe() -> None:
    assert mate_order(probe=2, main_images=4, pool_size=6) == [4, 5, 2, 0, 1, 3]


@pytest.mark.parametrize("call, names", [
    (lambda: batch_sizes(1), "max_size=1"),
    (lambda: batch_sizes(4, min_size=5), "max_size=4"),
    (lambda: batch_sizes(8, min_size=0), "min_size=0"),
    (lambda: batch_sizes(5000), "max_size=5000"),
    (lambda: batch_plans(0, 3, 4), "main_images=0"),
    (lambda: batch_plans(4, 3, 4), "pool_size=3"),
])
def test_bad_arguments_raise_usage_errors_up_front(call, names: str) -> None:
    with pytest.raises(UsageError, match=names):
        call()


def test_batch_of_one_is_allowed_when_asked_for() -> None:
    assert find(batch_plans(MAIN, POOL, 4, min_size=1), lambda p: True) == BatchPlan(0, 0, ())


@dataclass
class FakePool:
    names: tuple[str, ...] = tuple(f"image-{i}" for i in range(POOL))

    def __len__(self) -> int:
        return len(self.names)


@dataclass
class FakeChecker:
    """Diverges whenever a batch-mate differs from the probe (like BatchNorm in training mode)."""
    main_images: int = MAIN
    pool: FakePool = field(default_factory=FakePool)
    config: CheckConfig = field(default_factory=lambda: CheckConfig(batch_sizes=(2, 32)))
    plans: list[BatchPlan] = field(default_factory=list)
    broken: bool = True

    def run_plan(self, plan: BatchPlan) -> PlanOutcome:
        self.plans.append(plan)
        divergent = {0} if self.broken and any(m != plan.probe for m in plan.mates) else set()
        return PlanOutcome(plan, "screen", divergent, {0: 1.0}, {0: 1.0})

    def describe(self, plan: BatchPlan) -> str:
        return f"batch of {plan.batch_size}"


def test_checker_plans_use_the_largest_configured_batch() -> None:
    checker = FakeChecker()
    plan = find(checker_plans(checker), lambda p: p.batch_size > 20)
    assert plan.batch_size == 21
    assert find(checker_plans(checker, max_size=3), lambda p: p.batch_size >= 3).batch_size == 3


def test_fuzz_reports_the_smallest_failing_plan() -> None:
    checker = FakeChecker()
    with pytest.raises(PlanDiverged) as caught:
        fuzz(checker, key=b"model-a", max_examples=50, seed=1)
    assert caught.value.outcome.plan == BatchPlan(0, 0, (FLAT_BLACK,))


def test_fuzz_passes_a_clean_checker_with_the_requested_examples() -> None:
    checker = FakeChecker(broken=False)
    fuzz(checker, max_examples=30, seed=2)
    assert len(set(checker.plans)) >= 25


def test_keyed_database_keeps_models_apart() -> None:
    inner = InMemoryExampleDatabase()
    a, b = KeyedDatabase(inner, b"a"), KeyedDatabase(inner, b"b")
    a.save(b"k", b"1")
    b.save(b"k", b"2")
    assert list(a.fetch(b"k")) == [b"1"] and list(b.fetch(b"k")) == [b"2"]
    a.move(b"k", b"j", b"1")
    assert list(a.fetch(b"k")) == [] and list(a.fetch(b"j")) == [b"1"]
    b.delete(b"k", b"2")
    assert list(inner.fetch(b"b/k")) == []
