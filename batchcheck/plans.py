"""Batch plans (a probe, its position and its batch-mates) and what one plan showed; the seeded plans a check
runs."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .judge.calibrate import DETAIL_BATCH
from .options import CheckConfig
from .result import Mode


@dataclass(frozen=True)
class BatchPlan:
    """One batch: the probe and its batch-mates (indices into the checker's pool), probe at `position`."""
    probe: int
    position: int
    mates: tuple[int, ...]

    @property
    def batch_size(self) -> int:
        return len(self.mates) + 1

    def rows(self) -> list[int]:
        return [*self.mates[:self.position], self.probe, *self.mates[self.position:]]


@dataclass
class PlanOutcome:
    """What one plan showed: divergent tensors (indices into the runner's targets) with their figures."""
    plan: BatchPlan
    mode: Mode
    divergent: set[int]
    abs_diff: dict[int, float]
    rel_diff: dict[int, float]
    localised: bool = False

    def __bool__(self) -> bool:
        return not self.divergent



def draw_plans(config: CheckConfig, main_images: int, pool_size: int,
               fixed_batch: int | None = None) -> list[tuple[BatchPlan, list[int]]]:
    """The seeded trial plans, each with the seed that drew it. The first compares every tensor on a small
    batch (cheap at any model size; the fixed batch of a graph that runs at one size only); with
    `--batch-sizes` given, the next ones run each of them once (more trials than asked for when needed);
    the rest draw their size from the batch sizes."""
    sizes = sorted(set(config.sizes))
    first = sizes[0] if fixed_batch else min(sizes[0], DETAIL_BATCH)
    uncovered = [size for size in sizes if size != first] if config.batch_sizes else []
    plans = []
    for index in range(max(config.trials, 1 + len(uncovered))):
        seed = [config.seed, index]
        rng = np.random.default_rng(seed)
        size = first if index == 0 else uncovered[index - 1] if index <= len(uncovered) else int(rng.choice(sizes))
        probe = int(rng.integers(main_images))
        others = [i for i in range(pool_size) if i != probe]
        mates = tuple(int(m) for m in rng.choice(others, size - 1, replace=len(others) < size - 1))
        plans.append((BatchPlan(probe, int(rng.integers(size)), mates), seed))
    return plans
