"""Runner: the analysis of a prepared model (live branches, batch limits, each tensor's batch axis) and the
comparisons of a probe alone with its row in batches, over a backend's `Session`.

Two watch sets: `detail` (every comparable tensor) and `screen` (fusion boundaries only, so the runtime still
fuses Conv+BN+activation and a trial costs little more than the forward pass). A screened divergence is
localised by re-running the same batch in detail. The probe's rows are fetched once per probe and fed back.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import BatchcheckBug, BatchFailed, NodeFailed, UsageError
from ..graph import kinds
from ..graph.index import GraphIndex, dead_nodes, switch_predicates
from ..model import PreparedModel
from ..result import BatchLimit, Mode
from .session import Session, Target

MAX_LIMIT_SEARCH = 32


@dataclass(frozen=True)
class SoloRun:
    """The probe known as `key` run alone as `mode` runs it: its rows and each watched tensor's scale."""
    key: object
    mode: Mode
    rows: list[np.ndarray]
    scales: np.ndarray  # max |value| over the finite values, in watched order


class Runner:
    """A backend session analysed once; compares tensors between a solo and a batched run."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.prepared: PreparedModel = session.prepared
        self.index: GraphIndex = session.index
        self.targets: list[Target] = []
        self.limits: list[BatchLimit] = []
        self.excluded: dict[str, str] = {}  # tensor -> why it is not compared
        self.dead: set[str] = set()
        self.ranks: dict[str, int] = {}
        self.folded: dict[str, set[int]] = {}  # tensors whose shape mixes the batch with other axes: those axes
        self.cached: SoloRun | None = None  # the probe run alone that compares are against
        self.fixed_batch: int | None = None  # the one batch size the graph runs at, when nothing runs alone

    @property
    def watched(self) -> dict[Mode, list[int]]:
        """Per mode, the targets `compare()` answers for (indices into `targets`)."""
        return self.session.watched

    def close(self) -> None:
        """Release the session: the imported model and the cached activations."""
        self.session.close()

    def _filled(self, batch: np.ndarray, positions=(0,)) -> np.ndarray:
        """`batch`, filled up with copies of the probe (the first position) when the graph runs at one batch
        size only."""
        if self.fixed_batch and len(batch) < self.fixed_batch:
            probe = batch[positions[0]:positions[0] + 1]
            batch = np.concatenate([batch, np.repeat(probe, self.fixed_batch - len(batch), axis=0)])
        return batch

    def _failed(self, failure: NodeFailed, batch: np.ndarray, advice: str) -> BatchFailed:
        """The model failing on `batch` (as the user asked for it, before any filling), in one line."""
        node = failure.node
        return BatchFailed(f"model `{self.prepared.path}`: fails on a batch of {len(batch)}"
                           f"{f' at node `{node}`' if node else ''} ({failure.message}); {advice}", node,
                           failure.message)

    def forward(self, batch: np.ndarray, outputs: list[str]) -> list[np.ndarray]:
        """The tensors `outputs` for `batch` (a plain forward pass)."""
        try:
            return self.session.forward(self._filled(batch), outputs)
        except NodeFailed as failure:
            raise self._failed(failure, batch, "check --input-shape and --feed, or name an earlier --output") from None

    # -- analysis --------------------------------------------------------------------------------

    def analyse(self, one: np.ndarray, two: np.ndarray, only_size: int | None = None) -> None:
        """Find live branches, batch limits and each tensor's batch axis, then build the comparisons.

        `one` is a batch of one image, `two` a batch of two different images; `only_size` the one batch size the
        user asked for (a model whose outputs do not run alone is tried at it when it ships no batch size).
        """
        self.dead = self._dead_branches(one)
        candidates = self.session.candidates(self.dead)
        self.excluded.update(candidates.excluded)
        # The probe alone must reach the outputs: a node failing alone stops the model, unless the graph ships a
        # batch of N and runs at N (an SE Reshape to a hard-coded batch of 12): then batches of N are tested.
        solo_shapes = self._shapes(candidates.tensors, one)
        shipped = self.prepared.input.shipped_batch or only_size
        if self._unreached() and shipped and shipped > 1:
            self._fix_batch(shipped)
            solo_shapes = self._shapes(candidates.tensors, one)
        unreached = self._unreached()
        if unreached:
            output, limit = unreached[0]
            at = f" nor at a batch of {self.fixed_batch}" if self.fixed_batch else ""
            raise UsageError(f"model `{self.prepared.path}`: fails on one image alone{at} at node `{limit.node}` "
                             f"({limit.op}: {limit.reason.split(': ', 1)[-1]}), so output `{output}` never runs and "
                             f"nothing can be tested; check --input-shape and --feed, name an earlier --output, or, "
                             f"for a model that runs at one batch size N only, pass --batch-sizes N")
        pair_shapes = solo_shapes if self.fixed_batch else self._shapes(list(solo_shapes), two)
        in_blocks = self.index.descendants(n for n, info in self.index.nodes.items()
                                           if info.kind == kinds.SPACE_TO_BATCH)
        for tensor in pair_shapes:
            solo, pair = solo_shapes[tensor], pair_shapes[tensor]
            axis, blocks = _batch_axis(solo, pair) if not self.fixed_batch else _fixed_axis(solo, shipped), 0
            node = tensor.rsplit(":", 1)[0]
            if not np.prod(solo):
                self.excluded[tensor] = f"holds no values: shape {list(solo)} alone"
                continue
            if axis == "folded" and node in in_blocks and solo[1:] == pair[1:] and pair[0] == 2 * solo[0]:
                axis, blocks = 0, solo[0]  # row b * batch + n holds block b of image n
            elif axis == "folded":  # the batch mixed with other axes some other way; what unfolds it is compared
                self.excluded[tensor] = (f"shape mixes the batch with other axes: {list(pair)} in a batch of "
                                         f"{self.fixed_batch}" if self.fixed_batch else
                                         f"shape mixes the batch with other axes: {list(solo)} "
                                         f"alone, {list(pair)} in a batch of 2")
                self.folded[tensor] = {i for i, (a, b) in enumerate(zip(solo, pair)) if a != b}
                continue
            boundary = self.session.is_boundary(tensor) or tensor in self.prepared.outputs
            self.targets.append(Target(tensor, node, self.index.nodes[node].op, axis, boundary, blocks))
        self._stop_at_folds()
        self.limits.sort(key=lambda limit: self.index.position[limit.node])  # a fold before the node it breaks
        if not self.targets:
            raise UsageError(f"model `{self.prepared.path}`: nothing beyond input `{self.prepared.input.node}` "
                             f"runs with a batch ({self._limit_summary()}); batch invariance cannot be tested")
        self.ranks = {tensor: len(solo_shapes[tensor]) for tensor in [*(t.tensor for t in self.targets), *self.folded]}
        # the probe's own row is cached: one image's worth even when its reference is a batch of copies
        self.session.build(self.targets, self.ranks,
                           {t.tensor: (1, *solo_shapes[t.tensor][1:]) if t.batch_axis == 0 and not t.blocks
                            else solo_shapes[t.tensor] for t in self.targets})
        self.session.compile(self._filled(one))

    def _fix_batch(self, size: int) -> None:
        """The outputs do not run alone but the graph ships (or the user gives) a batch of `size`: batches of that
        size are tested, the probe's reference being a batch of its own copies; the failures alone are no batch
        limits then."""
        node = self.limits[0].node
        self.fixed_batch = size
        self.limits.clear()
        self.excluded = {t: why for t, why in self.excluded.items() if not why.startswith("beyond batch limit")}
        self.prepared.notes.append(f"the graph runs only at its batch of {size} (`{node}` fails on one image): "
                                   f"each probe's reference is a batch of {size} copies of itself, every trial "
                                   f"a batch of {size}")

    def _unreached(self) -> list[tuple[str, BatchLimit]]:
        """The outputs beyond a batch limit found on one image alone, with that limit."""
        alone = [limit for limit in self.limits if limit.reason.startswith("fails on a batch of 1:")]
        return [(output, limit) for output in self.prepared.outputs for limit in alone
                if output.split(":")[0] in self.index.descendants([limit.node])]

    def _stop_at_folds(self) -> None:
        """A tensor that folds the batch into other axes (a head Reshape to [1, -1, k]) that nothing downstream
        unfolds again is a batch limit: from there on the graph answers for one image only, and what a fixed
        Slice keeps of the folded rows is no batch dependence. A fold that is unfolded again (an instance norm
        written as Reshape to [1, C, 1, -1] and back) is compared where it unfolds."""
        for tensor in sorted(self.folded, key=lambda t: self.index.position[t.split(":")[0]]):
            node = tensor.split(":")[0]
            beyond = self.index.descendants([node]) - {node}
            if node in self.index.descendants(limit.node for limit in self.limits) or any(
                    t.node in beyond and (t.batch_axis is not None or t.blocks) for t in self.targets):
                continue
            lost = [t for t in self.targets if t.node in beyond]
            for target in lost:
                self.excluded[target.tensor] = f"beyond batch limit `{node}`"
            self.targets = [t for t in self.targets if t.node not in beyond]
            self.limits.append(BatchLimit(node, self.index.nodes[node].op,
                                          f"folds the batch into other axes ({self.excluded[tensor].split(': ', 1)[1]})"
                                          f": it answers for one image only", len(lost)))

    def _limit_summary(self) -> str:
        return "; ".join(f"`{limit.node}` {limit.reason}" for limit in self.limits[:2]) or "no comparable tensor"

    def _dead_branches(self, one: np.ndarray) -> set[str]:
        """Nodes in untaken TF1 cond branches, from the predicates' values on one image."""
        predicates = switch_predicates(self.index)
        taken: dict[str, bool] = {}
        while True:
            dead = dead_nodes(self.index, taken)
            unresolved = [s for s in predicates if s not in taken and s not in dead]
            downstream = self.index.descendants(unresolved) - set(unresolved)
            ready = [s for s in unresolved if predicates[s].rsplit(":", 1)[0] not in downstream | dead]
            if not ready:
                return dead
            try:
                values = self.session.fetch([predicates[s] for s in ready], self._filled(one))
            except NodeFailed as failure:
                raise self._failed(failure, one, "check --input, --input-shape and --feed") from None
            taken.update({s: bool(np.all(v)) for s, v in zip(ready, values)})

    def _shapes(self, candidates: list[str], batch: np.ndarray) -> dict[str, tuple[int, ...]]:
        """Each candidate's shape on `batch`. Nodes that fail (e.g. a Reshape to a hard-coded batch of 1)
        become batch limits and are dropped with everything after them."""
        alive = list(candidates)
        for _ in range(MAX_LIMIT_SEARCH):
            try:
                return self.session.shapes(alive, self._filled(batch))
            except NodeFailed as failure:
                node = failure.node
                if node is None:
                    raise self._failed(failure, batch, "check --input, --input-shape and --feed") from None
                beyond = self.index.descendants([node])
                lost = [t for t in alive if t.rsplit(":", 1)[0] in beyond]
                for tensor in lost:
                    self.excluded[tensor] = f"beyond batch limit `{node}`"
                alive = [t for t in alive if t not in set(lost)]
                self.limits.append(BatchLimit(node, self.index.nodes[node].op,
                                              f"fails on a batch of {len(batch)}: {failure.message}", len(lost)))
        raise BatchcheckBug(f"more than {MAX_LIMIT_SEARCH} batch limits; giving up the search")

    # -- comparisons -------------------------------------------------------------------------------

    def cache_solo(self, one: np.ndarray, key: object, mode: Mode = Mode.DETAIL) -> np.ndarray:
        """Run the probe alone as `mode` runs it (unless the probe known as `key` is cached for `mode`
        already) and keep its rows; return each watched tensor's max |value| over its finite values, in
        `watched[mode]` order."""
        if not self.solo_cached(key, mode):
            self.cached = None  # one probe's rows at a time
            try:
                scales, rows = self.session.solo(mode, self._filled(one))
            except NodeFailed as failure:
                raise self._failed(failure, one, "check --input-shape and --feed, or name an earlier --output") \
                    from None
            self.cached = SoloRun(key, mode, rows, scales)
        return self.cached.scales

    def solo_cached(self, key: object, mode: Mode) -> bool:
        """Whether `mode`'s compares are against the probe known as `key`."""
        return self.cached is not None and (self.cached.key, self.cached.mode) == (key, mode)

    def compare(self, mode: Mode, batch: np.ndarray, positions: list[int]) -> np.ndarray:
        """max |row - solo| per watched tensor (in `watched[mode]` order) over the rows at `positions` of
        `batch`, against the probe cached for `mode` (`cache_solo`)."""
        if self.cached is None or self.cached.mode != mode:
            raise BatchcheckBug(f"compare({mode}) without the probe run alone in that mode")
        try:
            return self.session.diffs(mode, self._filled(batch, positions), positions, self.cached.rows)
        except NodeFailed as failure:
            raise self._failed(failure, batch, "check --input-shape and --feed, or name an earlier --output") \
                from None


def _fixed_axis(shape: tuple[int, ...], size: int):
    """At a fixed batch `size`: axis 0 when it has that size, 'folded' when a multiple, else None."""
    if shape and shape[0] == size:
        return 0
    return "folded" if shape and shape[0] > size and shape[0] % size == 0 else None


def _batch_axis(solo: tuple[int, ...], pair: tuple[int, ...]):
    """The axis that is 1 alone and 2 in a batch of two; None when the shape ignores the batch;
    'folded' when the batch changes the shape some other way."""
    if solo == pair:
        return None
    if len(solo) == len(pair):
        differing = [i for i, (a, b) in enumerate(zip(solo, pair)) if a != b]
        if len(differing) == 1 and solo[differing[0]] == 1 and pair[differing[0]] == 2:
            return differing[0]
    return "folded"
