"""Static graph analysis on real fixture GraphDefs: kinds, dead branches, layers, boundaries."""
from __future__ import annotations

import pytest

from batchcheck.graph.index import dead_nodes, layer_of, switch_predicates, value_kinds
from batchcheck.load.open import load_model, whole_graph
from batchcheck.options import CheckConfig


def load(path):
    return whole_graph(load_model(path, CheckConfig()))


@pytest.mark.parametrize("node,layer", [
    ("MobilenetV1/Conv2d_0/BatchNorm/FusedBatchNormV3", "MobilenetV1/Conv2d_0"),
    ("MobilenetV1/Conv2d_2_pointwise/BatchNorm/moments/mean", "MobilenetV1/Conv2d_2_pointwise"),
    ("MobilenetV1/Conv2d_0/BatchNorm/cond/FusedBatchNormV3", "MobilenetV1/Conv2d_0"),
    ("input", "input"),
])
def test_layer_of(node, layer):
    assert layer_of(node) == layer


def test_value_kinds_separate_shapes_data_and_randomness(case_model):
    index = load(case_model("batch_size_arith")[0])
    kinds = value_kinds(index, "input")
    shape_nodes = [n for n, k in kinds.items() if k == "shape"]
    assert shape_nodes and all(index.nodes[n].op != "Conv2D" for n in shape_nodes)
    assert kinds["BatchSize/Mul"] == "data"
    dropout = load(case_model("dropout")[0])
    assert value_kinds(dropout, "input")["dropout/random_uniform/RandomUniform"] == "random"


def test_dead_branch_follows_predicate(case_model):
    index = load(case_model("cond_v1")[0])
    switches = switch_predicates(index)
    training = dead_nodes(index, {s: True for s in switches})
    inference = dead_nodes(index, {s: False for s in switches})
    assert "MobilenetV1/Conv2d_0/BatchNorm/cond/FusedBatchNormV3_1" in training
    assert "MobilenetV1/Conv2d_0/BatchNorm/cond/FusedBatchNormV3" in inference
    assert "MobilenetV1/Conv2d_0/BatchNorm/cond/Merge" not in training | inference


def test_topological_order_despite_graphdef_order(case_model):
    index = load(case_model("cond_v1")[0])
    for name, info in index.nodes.items():
        for source, _ in info.data_inputs:
            assert index.position[source] < index.position[name]


def test_fusion_boundaries_skip_conv_before_bn(case_model):
    from batchcheck.backends.tf.session import fusion_boundary

    index = load(case_model("mobilenet_v1")[0])
    assert not fusion_boundary(index, "MobilenetV1/Conv2d_0/Conv2D:0")
    assert fusion_boundary(index, "MobilenetV1/Conv2d_0/Relu6:0")


def test_cond_v2_is_inlined_so_branches_are_visible(case_model):
    index = load(case_model("cond_v2")[0])
    assert not any(info.op in ("If", "StatelessIf") for info in index.nodes.values())
    assert any(info.op == "FusedBatchNormV3" and "cond" in name for name, info in index.nodes.items())
