"""What lint and explain read from a prepared model (`GraphFacts`: live nodes, value kinds, inferred shapes,
BatchNorms, flag values) and the `Probe` they measure with: the model run on a few real images, to see whether
a tensor's value for one image changes when another image joins the batch."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import NodeFailed, UsageError
from .graph import kinds
from .graph.batch_rules import batch_axis
from .graph.batchnorm import BatchNorm, find_batchnorms
from .graph.index import GraphIndex, dead_nodes, value_kinds
from .graph.values import constant_value, flag_of, placeholder_default
from .judge.tolerance import user_tolerance
from .load.images import input_pool
from .load.open import backend_for
from .model import PreparedModel
from .options import CheckConfig
from .result import Tolerance

RTOL = 1e-4          # a measured difference counts when above atol + RTOL × max|solo value| (default tolerance)
ATOL = 1e-6


@dataclass
class GraphFacts:
    """What lint and explain read from a prepared graph: live nodes, value kinds, shapes, BatchNorms."""
    prepared: PreparedModel
    index: GraphIndex
    live: set[str]
    values: dict[str, str]  # each node's value kind (`value_kinds`)
    shapes: dict
    norms: list[BatchNorm]
    flag_values: dict[str, str]


def graph_facts(prepared: PreparedModel, feeds: dict[str, str]) -> GraphFacts:
    """Resolve flags, dead branches and live nodes, infer shapes and find the BatchNorms."""
    index = prepared.index
    flag_values = flag_settings(index, {name.rsplit(":", 1)[0]: value for name, value in feeds.items()})
    taken = {}
    for switch, info in index.nodes.items():
        if info.kind == kinds.SWITCH and len(info.data_inputs) == 2:
            value = _predicate_value(index, info.data_inputs[1][0], flag_values)
            if value is not None:
                taken[switch] = value
    dead = dead_nodes(index, taken)
    live = index.ancestors(t.rsplit(":", 1)[0] for t in prepared.outputs) - dead
    return GraphFacts(prepared, index, live, value_kinds(index, prepared.input.node),
                      index.source.static_shapes(), find_batchnorms(index, flag_values), flag_values)


def flag_settings(index: GraphIndex, feeds: dict[str, str]) -> dict[str, str]:
    """Placeholder → the value it takes: the --feed, else a PlaceholderWithDefault's default."""
    values = {name: feeds.get(name, placeholder_default(index, name)) for name, info in index.nodes.items()
              if info.kind in kinds.PLACEHOLDERS}
    return {name: value for name, value in values.items() if value is not None}


def _predicate_value(index: GraphIndex, predicate: str, flag_values: dict[str, str]) -> bool | None:
    """A cond predicate's value when it is a constant or a flag with a known value."""
    value = constant_value(index, predicate)
    if value is not None and value.size == 1:
        return bool(value.reshape(-1)[0])
    flag = flag_of(index, predicate)
    negated = flag is not None and any(index.nodes[n].kind == kinds.LOGICAL_NOT for n in index.ancestors([predicate]))
    if flag is None or flag not in flag_values or negated:
        return None
    return flag_values[flag].strip().lower() in ("true", "1", "1.0")


class Probe:
    """The prepared model in a session, with a pool of images to run it on, and the tolerance its measurements
    judge with (--atol/--rtol/--exact, else ATOL and RTOL)."""

    def __init__(self, facts: GraphFacts, config: CheckConfig) -> None:
        prepared = facts.prepared
        self.facts = facts
        spec = prepared.input
        pool = input_pool(spec, config)
        if len(pool) < 2:
            raise UsageError(f"--images {config.images}: explain needs at least two images")
        self.images = pool.array
        self.tolerance = user_tolerance(config.atol, config.rtol, config.exact) or Tolerance(ATOL, RTOL, "default", None)
        self.session = backend_for(prepared).session(prepared)

    def close(self) -> None:
        self.session.close()

    def run(self, tensors: list[str], rows: list[int]) -> list[np.ndarray]:
        """`tensors` on the pool images `rows`; `UsageError` when the graph cannot run that batch."""
        try:
            return self.session.fetch(tensors, self.images[rows])
        except NodeFailed as failure:
            raise UsageError(f"explain runs the node on batches of 1, 2 and 8 images, and the graph fails on a "
                             f"batch of {len(rows)} ({failure.message}); a graph fixed to one batch size cannot "
                             f"be explained this way: `batchcheck check` tests it at its own batch") from None

    def mixes_rows(self, tensors: list[str]) -> dict[str, dict]:
        """Per tensor: does image 0's value change when image 1 joins the batch? (4 runs for all tensors)"""
        solo_a, solo_b, pair, swapped = (self.run(tensors, rows) for rows in ([0], [1], [0, 1], [1, 0]))
        results = {}
        for i, tensor in enumerate(tensors):
            axis = batch_axis(self.facts.shapes.get(tensor))
            if axis is not None and pair[i].shape[axis] == 2:
                diffs = [max_diff(np.take(pair[i], row, axis), np.take(solo[i], 0, axis))
                         for row, solo in ((0, solo_a), (1, solo_b))]
                scale = max(max_abs(solo_a[i]), max_abs(solo_b[i]))
                how = "rows of a batch of two vs each image alone"
            else:
                diffs = [max_diff(pair[i], solo_a[i]), max_diff(pair[i], swapped[i])]
                scale = max_abs(solo_a[i])
                how = "whole output: batch of two vs the first image alone, and vs the batch swapped"
            worst = max(diffs)
            results[tensor] = {"mixes_rows": bool(worst > self.tolerance.allowed(scale)), "max_abs_diff": worst,
                               "max_abs_value": scale, "batch_axis": axis, "compared": how,
                               "tolerance": self.judged_with()}
        return results

    def varies_between_runs(self, tensor: str) -> dict:
        first, second = (self.run([tensor], [0])[0] for _ in range(2))
        worst = max_diff(first, second)
        return {"differs_between_runs": bool(worst > self.tolerance.allowed(max_abs(first))), "max_abs_diff": worst,
                "tolerance": self.judged_with()}

    def judged_with(self) -> dict:
        """The tolerance a difference is judged with: atol + rtol × max|value|, and where it came from."""
        return {"atol": self.tolerance.atol, "rtol": self.tolerance.rtol, "source": self.tolerance.source}


def max_diff(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        return float("inf")
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))


def max_abs(a: np.ndarray) -> float:
    return float(np.max(np.abs(a.astype(np.float64)))) if a.size else 0.0
