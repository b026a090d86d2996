"""Layer-by-layer recalibration: each BatchNormalization's population mean/variance over an image folder, computed
with every earlier BatchNorm already in inference mode with its final statistics, streaming the images in batches."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ....model import InputSpec
from ..prepare import BATCH, sub_model
from ..runtime import Level, run, session
from .rewrite import TrainingNorm, copy_model, norms_to_inference

CALIBRATION_BATCH = 16
Statistics = dict[str, tuple[np.ndarray, np.ndarray]]


def recalibrate(model, path: Path, spec: InputSpec, feeds: dict[str, np.ndarray], norms: list[TrainingNorm],
                images: np.ndarray, batch_size: int = CALIBRATION_BATCH) -> Statistics:
    """The statistics of the `norms` (training BatchNorms of `model`, graph order) whose running statistics are
    unusable, their channel counts known. One session of `model` with every BatchNorm in inference mode, whose
    inputs are the image, `feeds` and the statistics being computed (0 and 1 until they are known), so BatchNorm
    k sees BatchNorms 1..k-1 with their final statistics."""
    from onnx import TensorProto, helper

    model = copy_model(model)
    norms_to_inference(model, norms, {})
    nodes = {n.name: n for n in model.graph.node}
    statistics: Statistics = {}
    norms = [norm for norm in norms if norm.unusable]
    for norm in norms:
        node = nodes[norm.node]
        for slot in (3, 4):
            node.input[slot] = _statistic_input(norm, slot)
            model.graph.input.append(helper.make_tensor_value_info(node.input[slot], TensorProto.FLOAT,
                                                                   [norm.channels]))
        statistics[norm.node] = (np.zeros(norm.channels, np.float32), np.ones(norm.channels, np.float32))
    calibration = session(sub_model(model, [n.input for n in norms], spec.node, (BATCH, *spec.per_image_shape)),
                          path, Level.ALL)
    inputs = {i.name for i in calibration.get_inputs()}  # the last BatchNorms' statistics are not read
    for norm in norms:
        known = {_statistic_input(n, slot): value for n in norms for slot, value in zip((3, 4), statistics[n.node])
                 if _statistic_input(n, slot) in inputs}
        count, total, squares = 0, 0.0, 0.0
        for start in range(0, len(images), batch_size):
            batch = images[start:start + batch_size]
            [values] = run(calibration, [norm.input], {spec.node: batch, **feeds, **known}, path, len(batch))
            flat = np.moveaxis(values, 1, -1).astype(np.float64).reshape(-1, values.shape[1])
            count, total, squares = count + len(flat), total + flat.sum(0), squares + (flat * flat).sum(0)
        mean = total / count
        variance = np.maximum(squares / count - mean * mean, 0)
        statistics[norm.node] = (mean.astype(np.float32), variance.astype(np.float32))
    return statistics


def _statistic_input(norm: TrainingNorm, slot: int) -> str:
    return f"{norm.node}/calibration_{'mean' if slot == 3 else 'variance'}"
