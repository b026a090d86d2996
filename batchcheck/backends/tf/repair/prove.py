"""The proof's TensorFlow runs: the fixed graph, the original, and the original's inference semantics as a
reference.

The reference runs the *original* graph with overrides fed in topological order: training flags at their
inference value, each dropout mask node fed the unscaled data, each training BatchNorm's output (fused) or
batch moments (decomposed) fed from NumPy with the chosen statistics. It shares no graph surgery with the
fix, so agreement is evidence, not a tautology."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ....graph.batchnorm import BatchNorm
from ....repair.result import RepairRuns
from ..env import import_tf
from .graphdef import batchnorm_node_count
from .rewrite import channel_axis


@dataclass(frozen=True)
class Override:
    """Feed `tensor` with a value computed from `sources` (fetched first), in topological order."""
    tensor: str
    sources: tuple[str, ...]
    compute: object  # Callable[[list[np.ndarray]], np.ndarray]


class GraphSession:
    """One imported graph (grappler on) with its input, outputs and fixed feeds."""

    def __init__(self, graph_def, input_tensor: str, outputs: list[str], feeds: dict[str, np.ndarray]) -> None:
        tf = import_tf()
        self.graph = tf.Graph()
        with self.graph.as_default():
            tf.graph_util.import_graph_def(graph_def, name="")
        self.session = tf.compat.v1.Session(graph=self.graph)
        self.input = self.graph.get_tensor_by_name(input_tensor)
        self.outputs = [self.graph.get_tensor_by_name(name) for name in outputs]
        self.feeds = {self.graph.get_tensor_by_name(name): value for name, value in feeds.items()}
        self.forward = self.session.make_callable(self.outputs, feed_list=[self.input, *self.feeds])

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        return self.forward(batch, *self.feeds.values())

    def run_with(self, fetches: list[str], batch: np.ndarray, extra: dict[str, np.ndarray]) -> list[np.ndarray]:
        feed = {self.input: batch, **self.feeds, **{self.graph.get_tensor_by_name(k): v for k, v in extra.items()}}
        return self.session.run([self.graph.get_tensor_by_name(f) for f in fetches], feed)

    def close(self) -> None:
        self.session.close()


def reference_outputs(session: GraphSession, overrides: list[Override], batch: np.ndarray) -> list[np.ndarray]:
    """The original's outputs with each override (in topological order) fed, computed stage by stage."""
    fed: dict[str, np.ndarray] = {}
    for override in overrides:
        sources = session.run_with(list(override.sources), batch, fed) if override.sources else []
        value = override.compute(sources)
        shape = session.graph.get_tensor_by_name(override.tensor).shape
        fed[override.tensor] = value.reshape(shape.as_list()) if shape.is_fully_defined() else value
    return session.run_with([t.name for t in session.outputs], batch, fed)


def dropout_override(mask_node: str, unscaled: str) -> Override:
    return Override(f"{mask_node}:0", (unscaled,), lambda values: values[0])


def batchnorm_overrides(bn: BatchNorm, mean: np.ndarray, variance: np.ndarray) -> list[Override]:
    """Fused: the BN's output computed in NumPy; decomposed: its moments fed with the statistics."""
    if bn.kind == "decomposed":
        return [Override(f"{node}:0", (), lambda _, value=value: value)
                for node, value in ((bn.mean.node, mean), (bn.variance.node, variance))]
    axis = channel_axis(bn)
    gamma = 1.0 if bn.gamma.absent else bn.gamma.value.astype(np.float64)
    beta = 0.0 if bn.beta.absent else bn.beta.value.astype(np.float64)

    def normalise(values):
        x = values[0].astype(np.float64)
        shape = [1] * x.ndim
        shape[axis] = -1
        inverse = np.reshape(gamma / np.sqrt(variance.astype(np.float64) + bn.epsilon), shape)
        offset = np.reshape(beta, shape if np.ndim(beta) else [])
        return ((x - mean.reshape(shape)) * inverse + offset).astype(np.float32)
    return [Override(bn.output, (bn.input,), normalise)]


class TFRepairRuns(RepairRuns):
    """The fixed GraphDef, the original (with the reference's feeds) and its overrides, in two sessions."""

    def __init__(self, fixed_def, original_def, input_tensor: str, outputs: list[str], fixed_feeds: dict,
                 original_feeds: dict, overrides: list[Override]) -> None:
        self.defs = (original_def, fixed_def)
        self.overrides = overrides
        self.after = GraphSession(fixed_def, input_tensor, outputs, fixed_feeds)
        self.before = GraphSession(original_def, input_tensor, outputs, original_feeds)

    def fixed(self, batch: np.ndarray) -> list[np.ndarray]:
        return self.after.run(batch)

    def original(self, batch: np.ndarray) -> list[np.ndarray]:
        return self.before.run(batch)

    def reference(self, batch: np.ndarray) -> list[np.ndarray]:
        return reference_outputs(self.before, self.overrides, batch)

    def sizes(self) -> tuple[tuple[int, int], tuple[int, int]]:
        before, after = ((len(graph_def.node), batchnorm_node_count(graph_def)) for graph_def in self.defs)
        return before, after

    def close(self) -> None:
        self.before.close()
        self.after.close()
