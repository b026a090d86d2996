"""BatchNorm discovery on real fixture GraphDefs: fused, decomposed (Keras, slim fused=False), in cond
branches, without gamma, and per-sample normalisations that must not count as batch statistics."""
from __future__ import annotations

import numpy as np
import pytest

from batchcheck.graph.batchnorm import find_batchnorms
from batchcheck.load.open import load_model, whole_graph
from batchcheck.options import CheckConfig

MN = "MobilenetV1"


def batchnorms(case_model, name, feeds=None):
    index = whole_graph(load_model(case_model(name)[0], CheckConfig()))
    return {bn.name: bn for bn in find_batchnorms(index, feeds)}


def test_fused_inference_batchnorm_with_parameters_and_producer(case_model):
    found = batchnorms(case_model, "mobilenet_v1")
    assert len(found) == 11
    bn = found[f"{MN}/Conv2d_0/BatchNorm/FusedBatchNormV3"]
    assert (bn.kind, bn.op, bn.training.training, bn.training.origin) == ("fused", "FusedBatchNormV3", False, "attribute")
    assert bn.producer == f"{MN}/Conv2d_0/Conv2D" and bn.input == f"{MN}/Conv2d_0/Conv2D:0"
    assert bn.gamma.node == f"{MN}/Conv2d_0/BatchNorm/gamma" and bn.gamma.value.shape == (8,)
    assert bn.mean.node == f"{MN}/Conv2d_0/BatchNorm/moving_mean" and bn.variance.value.min() >= 0.5
    assert bn.epsilon == pytest.approx(1e-3) and not bn.batch_statistics


def test_fused_training_batchnorm(case_model):
    bn = batchnorms(case_model, "mobilenet_v1_bn_training")[f"{MN}/Conv2d_0/BatchNorm/FusedBatchNormV3"]
    assert bn.batch_statistics and bn.training.origin == "attribute" and bn.mean.value.size == 0


def test_scale_false_has_no_gamma(case_model):
    found = batchnorms(case_model, "mobilenet_v1_no_scale")
    assert all(bn.gamma.absent for bn in found.values())
    assert batchnorms(case_model, "mobilenet_v1")[f"{MN}/Conv2d_0/BatchNorm/FusedBatchNormV3"].gamma.absent is False


def test_slim_unfused_training_is_found_at_its_moments(case_model):
    found = batchnorms(case_model, "mobilenet_v1_unfused_bn_training")
    bn = found[f"{MN}/Conv2d_2_pointwise/BatchNorm/moments/mean"]
    assert bn.kind == "decomposed" and bn.axes == (0, 1, 2) and bn.batch_statistics
    assert bn.output == f"{MN}/Conv2d_2_pointwise/BatchNorm/batchnorm/add_1:0"
    assert bn.producer == f"{MN}/Conv2d_2_pointwise/Conv2D" and bn.gamma.node.endswith("gamma")


def test_keras_frozen_arithmetic_with_moving_statistics(case_model):
    found = batchnorms(case_model, "keras")
    assert set(found) == {"bn0_1/batchnorm/add_1", "bn1_1/batchnorm/add_1"}
    bn = found["bn0_1/batchnorm/add_1"]
    assert bn.kind == "decomposed" and not bn.training.training and bn.training.origin == "constants"
    assert bn.producer == "conv0_1/convolution" and bn.epsilon == pytest.approx(1e-3)
    assert bn.mean.value.shape == bn.variance.value.shape == bn.gamma.value.shape == bn.beta.value.shape == (8,)
    assert {"bn0_1/batchnorm/Rsqrt", "bn0_1/batchnorm/mul_1", "bn0_1/batchnorm/add_1"} <= set(bn.nodes)


def test_keras_training_true(case_model):
    found = batchnorms(case_model, "keras_bn_training")
    assert found["bn0_1/moments/mean"].batch_statistics
    assert not found["bn1_1/batchnorm/add_1"].batch_statistics


def test_per_sample_norms_are_not_batch_statistics(case_model):
    found = batchnorms(case_model, "per_sample_norms")
    assert {bn.axes for bn in found.values()} == {(1, 2, 3), (1, 2), (1, 2, 4)}
    assert all(bn.per_sample and not bn.batch_statistics for bn in found.values())


@pytest.mark.parametrize("case", ["cond_v1", "cond_v2"])
def test_cond_branches_name_predicate_and_flag(case_model, case):
    found = batchnorms(case_model, case)
    training = [bn for bn in found.values() if bn.training.training]
    inference = [bn for bn in found.values() if not bn.training.training]
    assert len(training) == len(inference) == 11
    assert all(bn.training.flag == "is_training" and bn.training.flag_default == "true" for bn in found.values())
    assert all(bn.training.branch is True for bn in training) and all(bn.training.branch is False for bn in inference)
    assert "cond on" in training[0].training.describe() and "flag `is_training`" in training[0].training.describe()


def test_fed_flag_replaces_default(case_model):
    found = batchnorms(case_model, "cond_v1", {"is_training": "false"})
    assert {bn.training.flag_default for bn in found.values()} == {"false"}


def test_parameters_summary_is_json_ready(case_model):
    import json

    bn = batchnorms(case_model, "mobilenet_v1_no_scale")[f"{MN}/Conv2d_0/BatchNorm/FusedBatchNormV3"]
    summary = bn.parameters()
    assert summary["gamma"] == {"node": None, "absent": True, "value": 1.0}
    assert summary["variance"]["channels"] == 8 and summary["is_training"] is False
    json.dumps(summary)
    assert np.isclose(summary["mean"]["mean"], float(bn.mean.value.mean()))
