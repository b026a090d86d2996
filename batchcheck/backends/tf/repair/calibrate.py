"""Layer-by-layer recalibration: each BatchNorm's population mean/variance over an image folder, computed
with every earlier BatchNorm already in inference mode, streaming the images in batches."""
from __future__ import annotations

import numpy as np

from ....graph.batchnorm import BatchNorm
from ..env import import_tf
from .rewrite import channel_axis, statistic_tensors

CALIBRATION_BATCH = 16


def recalibrate(graph_def, input_tensor: str, feeds: dict[str, np.ndarray], batchnorms: list[BatchNorm],
                images: np.ndarray, statistics: dict[str, tuple[np.ndarray, np.ndarray]],
                batch_size: int = CALIBRATION_BATCH) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], int]:
    """Fill in `statistics` for `batchnorms` (topological order) in a graph whose BNs are all in inference
    mode already. The graph is imported once: statistics not yet known are fed in place of their constants,
    so BatchNorm k sees BatchNorms 1..k-1 with their final statistics."""
    tf = import_tf()
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(graph_def, name="")
    statistics = dict(statistics)
    with tf.compat.v1.Session(graph=graph) as session:
        base_feeds = {graph.get_tensor_by_name(name): value for name, value in feeds.items()}
        for bn in batchnorms:
            known = {graph.get_tensor_by_name(tensor): _shaped(value, graph, tensor)
                     for bn_done in batchnorms if bn_done.name in statistics
                     for tensor, value in zip(statistic_tensors(bn_done), statistics[bn_done.name])}
            x = graph.get_tensor_by_name(bn.input)
            run = session.make_callable(x, feed_list=[graph.get_tensor_by_name(input_tensor), *base_feeds, *known])
            count, total, squares = 0, 0.0, 0.0
            for start in range(0, len(images), batch_size):
                values = np.moveaxis(run(images[start:start + batch_size], *base_feeds.values(), *known.values()),
                                     channel_axis(bn), -1).astype(np.float64)
                flat = values.reshape(-1, values.shape[-1])
                count, total, squares = count + len(flat), total + flat.sum(0), squares + (flat * flat).sum(0)
            mean = total / count
            variance = np.maximum(squares / count - mean * mean, 0)
            statistics[bn.name] = (mean.astype(np.float32), variance.astype(np.float32))
    return statistics, len(images)


def _shaped(value: np.ndarray, graph, tensor: str) -> np.ndarray:
    return value.reshape(graph.get_tensor_by_name(tensor).shape.as_list())
