"""The large-graph path (issue 13): a chain of about 3,000 nodes with one BatchNorm left in training mode
deep inside is checked end to end, its BatchNorm named as the only root and every layer compared."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import batchcheck
from batchcheck.result import Cause, Verdict
from fixtures.chains import build_chain, layer_scope

LAYERS = 600  # 3,002 nodes as a plain chain
TRAINING_LAYER = 400  # two thirds down the chain
TENSORS_PER_LAYER = 3  # mul, add, Relu (the constants are not compared)


@pytest.fixture(scope="module")
def long_chain(tmp_path_factory) -> Path:
    return build_chain(tmp_path_factory.mktemp("large"), LAYERS, TRAINING_LAYER)


def test_training_batch_norm_deep_in_a_long_chain_is_the_only_root(long_chain: Path) -> None:
    config = batchcheck.CheckConfig(trials=3, batch_sizes=(2, 4))  # the setting
    result = batchcheck.check(long_chain, config)

    assert result.verdict == Verdict.BATCH_DEPENDENT
    scope = layer_scope(TRAINING_LAYER)
    assert [(root.node, root.layer, root.cause) for root in result.roots] == [
        (f"{scope}/BatchNorm/moments/mean", scope, Cause.BATCHNORM_TRAINING)]
    assert result.first_divergence == result.roots[0]
    assert json.loads(long_chain.with_suffix(".json").read_text())["nodes"] >= 3_000  # the size this is about
    assert result.model.compared_tensors == result.coverage.comparable_tensors
    assert result.model.compared_tensors > TENSORS_PER_LAYER * (LAYERS - 1)
    compared_layers = {tensor.layer for tensor in result.tensors}
    assert {layer_scope(0), scope, layer_scope(LAYERS - 1)} <= compared_layers
    assert len(compared_layers) >= LAYERS
