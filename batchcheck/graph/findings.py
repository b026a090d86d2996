"""Static findings about BatchNorm that explain common surprises without being batch dependence:
moving statistics never updated, and BN without a learnt scale (gamma fixed to 1)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .index import GraphIndex, layer_of

FUSED_BATCHNORM_OPS = frozenset({"FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3"})
FINDING_TEXT = {
    "stale_statistics": "moving mean 0 and variance 1, their initial values: training never updated them "
                        "(run tf.GraphKeys.UPDATE_OPS with the train op, e.g. under tf.control_dependencies)",
    "no_scale": "no learnt scale, gamma fixed to 1 (slim scale=False): expected if intended, and why the "
                "checkpoint has no gamma for it",
}


@dataclass(frozen=True)
class Finding:
    """One node with a known BatchNorm pitfall."""
    kind: str
    node: str
    layer: str
    message: str


def batchnorm_findings(index: GraphIndex) -> list[Finding]:
    """Inference-mode fused BatchNorms whose constants show a pitfall, in topological order."""
    findings = []
    for name in index.order:
        definition = index.defs[name]
        if definition.op not in FUSED_BATCHNORM_OPS or definition.attr["is_training"].b:
            continue
        scale, _, mean, variance = (_constant(index, source) for source, _ in index.nodes[name].data_inputs[1:5])
        if mean is not None and variance is not None and not mean.any() and np.all(variance == 1):
            findings.append(Finding("stale_statistics", name, layer_of(name), FINDING_TEXT["stale_statistics"]))
        if scale is not None and np.all(scale == 1):
            findings.append(Finding("no_scale", name, layer_of(name), FINDING_TEXT["no_scale"]))
    return findings


def _constant(index: GraphIndex, name: str) -> np.ndarray | None:
    """The value of `name` when it is a Const, possibly behind Identity nodes (`…/read`)."""
    from tensorflow.python.framework import tensor_util

    while name in index and index.nodes[name].op == "Identity" and index.nodes[name].data_inputs:
        name = index.nodes[name].data_inputs[0][0]
    if name not in index or index.nodes[name].op != "Const":
        return None
    return tensor_util.MakeNdarray(index.defs[name].attr["value"].tensor)
