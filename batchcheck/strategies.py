"""Hypothesis strategies for batch plans (which batch the probe runs in), and the fuzz run over them.

A plan is a `BatchPlan`: the probe (one of the pool's main images), its position in the batch, and its
batch-mates, indices into the checker's image pool. Mates are drawn from the pool's special images (flat
black first, then the other extremes), duplicates of the probe, and the other pool images, in that order,
so shrinking ends at the simplest failing batch: two images, probe first, a flat black mate.

    from hypothesis import given
    from batchcheck.strategies import checker_plans

    @given(plan=checker_plans(checker))
    def test_any_batch(plan):
        assert checker.run_plan(plan), checker.describe(plan)

`fuzz(checker)` does that with shrinking and raises `PlanDiverged` for the smallest failing plan.
"""
from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Iterable

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import seed as fixed_seed
from hypothesis import strategies as st
from hypothesis.database import ExampleDatabase
from hypothesis.extra.numpy import arrays

from .errors import PlanDiverged, check_argument
from .options import MAX_BATCH
from .plans import BatchPlan
from .safety.supervise import stage

if TYPE_CHECKING:
    from .checker import Checker
    from .safety.remote import RemoteChecker

MIN_BATCH = 2  # a batch of one is the probe alone: that is the determinism check, not a batch


def batch_sizes(max_size: int, min_size: int = MIN_BATCH) -> st.SearchStrategy[int]:
    """Batch sizes from `min_size` to `max_size`, shrinking towards `min_size`."""
    check_argument(isinstance(min_size, int) and 1 <= min_size <= MAX_BATCH,
                   "min_size={!r}: give a whole number from 1 to {}", min_size, MAX_BATCH)
    check_argument(isinstance(max_size, int) and min_size <= max_size <= MAX_BATCH,
                   "max_size={!r}: give a whole number from min_size ({}) to {}", max_size, min_size, MAX_BATCH)
    return st.integers(min_size, max_size)


def mate_order(probe: int, main_images: int, pool_size: int) -> list[int]:
    """Pool indices a batch-mate can take, simplest first: the specials (pool[main_images:]), a duplicate
    of the probe, then the other main images."""
    specials = list(range(main_images, pool_size))
    others = [i for i in range(main_images) if i != probe]
    return [*specials, probe, *others]


def batch_plans(main_images: int, pool_size: int, max_size: int,
                min_size: int = MIN_BATCH) -> st.SearchStrategy[BatchPlan]:
    """Plans over a pool whose first `main_images` images are probes and the rest special batch-mates."""
    check_argument(isinstance(main_images, int) and main_images >= 1,
                   "main_images={!r}: give a whole number of at least 1", main_images)
    check_argument(isinstance(pool_size, int) and pool_size >= main_images,
                   "pool_size={!r}: give a whole number of at least main_images ({})", pool_size, main_images)
    sizes = batch_sizes(max_size, min_size)

    @st.composite
    def plans(draw: st.DrawFn) -> BatchPlan:
        size = draw(sizes, label="batch size")
        probe = draw(st.integers(0, main_images - 1), label="probe")
        position = draw(st.integers(0, size - 1), label="position")
        order = mate_order(probe, main_images, pool_size)
        mates = draw(arrays(np.int64, size - 1, elements=st.sampled_from(order)), label="mates")
        return BatchPlan(probe, position, tuple(int(m) for m in mates))

    return plans()


def checker_plans(checker: Checker | RemoteChecker, max_size: int | None = None) -> st.SearchStrategy[BatchPlan]:
    """Plans for `checker`'s pool, up to `max_size` images (default: its largest configured batch size)."""
    largest = max(checker.config.sizes) if max_size is None else max_size
    return batch_plans(checker.main_images, len(checker.pool), largest)


# -- fuzzing a checker ---------------------------------------------------------------------------

def fuzz(checker: Checker | RemoteChecker, *, key: bytes = b"", max_examples: int | None = None,
         seed: int | None = None) -> None:
    """Run `checker`'s plans through hypothesis (current profile, no deadline); raise `PlanDiverged` for
    the smallest failing plan. `key` keeps this model's examples apart in the example database;
    `seed` fixes the exploration (as `@seed` does)."""
    profile = settings()
    database = KeyedDatabase(profile.database, key) if profile.database is not None and key else profile.database

    examples = itertools.count(1)

    @settings(parent=profile, deadline=None, report_multiple_bugs=False, database=database,
              max_examples=max_examples or profile.max_examples,
              suppress_health_check=[*profile.suppress_health_check, HealthCheck.too_slow])
    @given(plan=checker_plans(checker))
    def batch_invariance(plan: BatchPlan) -> None:
        stage(f"fuzz example {next(examples)}")
        outcome = checker.run_plan(plan)
        if not outcome:
            raise PlanDiverged(checker.describe(plan), outcome)

    if seed is not None:
        batch_invariance = fixed_seed(seed)(batch_invariance)
    batch_invariance()


class KeyedDatabase(ExampleDatabase):
    """Another database seen through a key prefix, so each model's fuzz examples stay its own."""

    def __init__(self, inner: ExampleDatabase, prefix: bytes) -> None:
        super().__init__()
        self.inner, self.prefix = inner, prefix + b"/"

    def save(self, key: bytes, value: bytes) -> None:
        self.inner.save(self.prefix + key, value)

    def fetch(self, key: bytes) -> Iterable[bytes]:
        return self.inner.fetch(self.prefix + key)

    def delete(self, key: bytes, value: bytes) -> None:
        self.inner.delete(self.prefix + key, value)

    def move(self, src: bytes, dest: bytes, value: bytes) -> None:
        self.inner.move(self.prefix + src, self.prefix + dest, value)
