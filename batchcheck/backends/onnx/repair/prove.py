"""The proof's onnxruntime runs: the fixed model, the original, and the original's inference semantics as a
reference.

The reference runs the *original* model stage by stage: each override (in graph order) is a value cut out of the
model and fed instead, computed in NumPy from values the stage before fetched: a training-mode Dropout's output is
its input, noise that met the data is the data, a training BatchNorm's output is its input normalised with the
chosen statistics. It shares no graph surgery with the fix, so agreement is evidence, not a tautology."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ....model import PreparedModel
from ....repair.result import RepairRuns
from ..prepare import sub_model
from ..protos import Protos, attribute
from ..runtime import Level, run, session


@dataclass(frozen=True)
class Override:
    """Feed value `value` with what `compute` makes of the `sources` values (fetched first)."""
    value: str
    sources: tuple[str, ...]
    compute: Callable[[list[np.ndarray]], np.ndarray]


def passthrough(value: str, source: str) -> Override:
    """`value` is `source` as it is (dropout off, noise off)."""
    return Override(value, (source,), lambda values: values[0])


def batchnorm_override(p: Protos, node_name: str, mean: np.ndarray, variance: np.ndarray) -> Override:
    """A BatchNormalization's output: its input normalised with `mean` and `variance` in NumPy (channels on axis 1)."""
    node = p.nodes[node_name]
    gamma, beta = (p.constant_input(node, slot).astype(np.float64) for slot in (1, 2))
    epsilon = float(attribute(node, "epsilon", 1e-5))

    def normalise(values: list[np.ndarray]) -> np.ndarray:
        x = values[0].astype(np.float64)
        shape = (1, -1, *[1] * (x.ndim - 2))
        inverse = (gamma / np.sqrt(variance.astype(np.float64) + epsilon)).reshape(shape)
        return ((x - mean.reshape(shape)) * inverse + beta.reshape(shape)).astype(values[0].dtype)
    return Override(node.output[0], (node.input[0],), normalise)


class PreparedRun:
    """One prepared model in an onnxruntime session, with its image input, outputs and fixed feeds."""

    def __init__(self, prepared: PreparedModel) -> None:
        p = Protos(prepared.graph)
        self.model, self.path = prepared.graph, prepared.path
        self.image = prepared.input.node
        self.outputs = [p.value(tensor) for tensor in prepared.outputs]
        self.feeds = {name.rpartition(":")[0]: value for name, value in prepared.feeds.items()}
        self.session = session(self.model, self.path, Level.ALL)

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        return run(self.session, self.outputs, {self.image: batch, **self.feeds}, self.path, len(batch))

    def staged(self, values: list[str], batch: np.ndarray, fed: dict[str, np.ndarray]) -> list[np.ndarray]:
        """`values` of the model cut at the `fed` values, which are fed instead."""
        wanted = [v for v in values if v not in fed]
        if wanted:
            cut = session(sub_model(self.model, wanted, fed=tuple(fed)), self.path, Level.ALL)
            inputs = {i.name for i in cut.get_inputs()}
            feeds = {k: v for k, v in {self.image: batch, **self.feeds, **fed}.items() if k in inputs}
            fed = {**fed, **dict(zip(wanted, run(cut, wanted, feeds, self.path, len(batch))))}
        return [fed[v] for v in values]


class OnnxRepairRuns(RepairRuns):
    """The fixed model and the original (prepared: batch relaxed, pruned to the outputs) and the overrides that make
    the original's reference."""

    def __init__(self, fixed: PreparedModel, original: PreparedModel, overrides: list[Override]) -> None:
        self.after, self.before = PreparedRun(fixed), PreparedRun(original)
        order = {v: i for i, node in enumerate(original.graph.graph.node) for v in node.output}
        self.overrides = sorted((o for o in overrides if o.value in order), key=lambda o: order[o.value])

    def fixed(self, batch: np.ndarray) -> list[np.ndarray]:
        return self.after.run(batch)

    def original(self, batch: np.ndarray) -> list[np.ndarray]:
        return self.before.run(batch)

    def reference(self, batch: np.ndarray) -> list[np.ndarray]:
        fed: dict[str, np.ndarray] = {}
        for override in self.overrides:
            fed[override.value] = override.compute(self.before.staged(list(override.sources), batch, fed))
        return self.before.staged(self.before.outputs, batch, fed)

    def sizes(self) -> tuple[tuple[int, int], tuple[int, int]]:
        before, after = ((len(run.model.graph.node), sum(n.op_type == "BatchNormalization" for n in run.model.graph.node))
                         for run in (self.before, self.after))
        return before, after

    def close(self) -> None:
        self.before.session = self.after.session = None
