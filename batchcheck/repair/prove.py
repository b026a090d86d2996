"""The proof: the original's inference semantics as a reference, output agreement with it, and latency.

The reference runs the *original* graph with overrides fed in topological order: training flags at their
inference value, each dropout mask node fed the unscaled data, each training BatchNorm's output (fused) or
batch moments (decomposed) fed from NumPy with the chosen statistics. It shares no graph surgery with the
fix, so agreement is evidence, not a tautology."""
from __future__ import annotations

import statistics as stats
import time
from dataclasses import dataclass

import numpy as np

from ..graph.batchnorm import BatchNorm
from ..tfenv import import_tf
from .graphdef import batchnorm_node_count
from .result import GraphFigures, OutputAgreement
from .rewrite import channel_axis

LATENCY_BATCHES = (1, 32)


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


def before_after_figures(before: GraphSession, after: GraphSession, before_def, after_def, images: np.ndarray,
                         repeats: int, warmup: int = 2) -> tuple[GraphFigures, GraphFigures]:
    """Node counts and median forward latency (ms) at each of `LATENCY_BATCHES`; the two graphs' passes
    alternate, after `warmup` passes each, so that both see the same machine load."""
    latency: tuple[dict[int, float], dict[int, float]] = ({}, {})
    for size in LATENCY_BATCHES:
        batch = np.resize(images, (size, *images.shape[1:]))
        times: tuple[list[float], list[float]] = ([], [])
        for index in range(warmup + repeats):
            for session, timed in zip((before, after), times):
                start = time.perf_counter()
                session.run(batch)
                if index >= warmup:
                    timed.append((time.perf_counter() - start) * 1000.0)
        for figures, timed in zip(latency, times):
            figures[size] = round(float(stats.median(timed)), 3)
    return (GraphFigures(len(before_def.node), batchnorm_node_count(before_def), latency[0]),
            GraphFigures(len(after_def.node), batchnorm_node_count(after_def), latency[1]))


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


def agreement(name: str, fixed: np.ndarray, reference: np.ndarray, rtol: float, atol: float) -> OutputAgreement:
    """Max absolute/relative difference (allowed: atol + rtol × max|reference|) and, for class scores or
    per-pixel scores, argmax agreement."""
    fixed, reference = fixed.astype(np.float64), reference.astype(np.float64)
    diff = float(np.max(np.abs(fixed - reference))) if fixed.size else 0.0
    scale = float(np.max(np.abs(reference))) if reference.size else 0.0
    relative = diff / scale if scale else (0.0 if diff == 0 else float("inf"))
    task, share = "values", None
    if fixed.ndim in (2, 4) and fixed.shape[-1] > 1:
        task = "classification" if fixed.ndim == 2 else "segmentation"
        share = float(np.mean(np.argmax(fixed, -1) == np.argmax(reference, -1)))
    return OutputAgreement(name, task, diff, relative, share, atol + rtol * scale)
