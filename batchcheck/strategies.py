"""Hypothesis strategies for batch plans: which batch the probe runs in.

A plan is a `BatchPlan`: the probe (one of the pool's main images), its position in the batch, and its
batch-mates, indices into the checker's image pool. Mates are drawn from the pool's special images (flat
black first, then the other extremes), duplicates of the probe, and the other pool images, in that order,
so shrinking ends at the simplest failing batch: two images, probe first, a flat black mate.

    from hypothesis import given
    from batchcheck.strategies import checker_plans

    @given(plan=checker_plans(checker))
    def test_any_batch(plan):
        assert checker.run_plan(plan), checker.describe(plan)
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from .check import BatchPlan
from .errors import check_argument
from .options import MAX_BATCH

if TYPE_CHECKING:
    from .check import Checker

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


@st.composite
def batch_plans(draw: st.DrawFn, main_images: int, pool_size: int, max_size: int,
                min_size: int = MIN_BATCH) -> BatchPlan:
    """Plans over a pool whose first `main_images` images are probes and the rest special batch-mates."""
    check_argument(isinstance(main_images, int) and main_images >= 1,
                   "main_images={!r}: give a whole number of at least 1", main_images)
    check_argument(isinstance(pool_size, int) and pool_size >= main_images,
                   "pool_size={!r}: give a whole number of at least main_images ({})", pool_size, main_images)
    size = draw(batch_sizes(max_size, min_size), label="batch size")
    probe = draw(st.integers(0, main_images - 1), label="probe")
    position = draw(st.integers(0, size - 1), label="position")
    mates = draw(arrays(np.int64, size - 1, elements=st.sampled_from(mate_order(probe, main_images, pool_size))),
                 label="mates")
    return BatchPlan(probe, position, tuple(int(m) for m in mates))


def checker_plans(checker: Checker, max_size: int | None = None) -> st.SearchStrategy[BatchPlan]:
    """Plans for `checker`'s pool, up to `max_size` images (default: its largest configured batch size)."""
    largest = max(checker.config.batch_sizes) if max_size is None else max_size
    return batch_plans(checker.main_images, len(checker.pool), largest)
