"""Public graphs trained by others (../shared/real-models): each loads and gets the manifest's verdict."""
from __future__ import annotations

import pytest

from conftest import REAL_MODELS

pytestmark = pytest.mark.skipif(not (REAL_MODELS / "MANIFEST.md").exists(),
                                reason="../shared/real-models is not beside this checkout")
QUICK = ("--trials", "3", "--batch-sizes", "2,3,5")

# file, extra args, verdict (or "error"), first root op / error word
CASES = [
    ("ssoniya_mobilenet_v1_0.25_128_frozen_graph.pb", (), "invariant", None),
    ("ssoniya_retrained_graph.pb", ("--output", "final_result"), "invariant", None),
    ("ssoniya_optimized_graph.pb", (), "error", "--input-shape"),
    ("ssoniya_optimized_graph.pb", ("--input-shape", "128,128,3"), "invariant", None),
    ("dl4j_fused_batch_norm_float32_nhwc.pb", (), "error", "--input"),
    ("dl4j_fused_batch_norm_float32_nhwc.pb", ("--input", "in_0"), "batch_dependent", "FusedBatchNormV3"),
    ("dl4j_batchnorm_rank4_nhwc_batch2_sz5_fused.pb", ("--input", "in_0"), "invariant", None),
    ("dl4j_batchnorm_rank4_nhwc_batch4_sz5_noFused.pb", ("--input", "in_0"), "invariant", None),
    ("dl4j_lenet_frozen.pb", ("--input-shape", "784"), "invariant", None),
    ("cdyang_emotion_minixception_model.pb", (), "invariant", None),
    ("cdyang_emotion_tiny_cnn_049.pb", (), "invariant", None),
    ("utensor_cifar10_cnn_rate.pb", (), "error", "--feed rate="),
    ("utensor_cifar10_cnn_rate.pb", ("--feed", "rate=0"), "invariant", None),
    ("utensor_cifar10_cnn_rate.pb", ("--feed", "rate=0.5"), "nondeterministic", "RandomUniform"),
    ("utensor_cifar10_buggy.pb", ("--feed", "keep_prob=1"), "invariant", None),
    ("utensor_cifar10_cnn.pb", (), "invariant", None),
    ("gsig_charades_frozen_model.pb", ("--input-shape", "224,224,3", "--batch-sizes", "2,3"), "invariant", None),
    ("guorbit_model.pb", ("--batch-sizes", "2", "--trials", "2"), "invariant", None),
]


@pytest.mark.parametrize("name,args,verdict,detail", CASES, ids=[f"{c[0]}{''.join(c[1][:2])}" for c in CASES])
def test_manifest_verdict(name, args, verdict, detail, run_cli):
    extra = () if "--trials" in args else QUICK[:2]
    extra += () if "--batch-sizes" in args else QUICK[2:]
    result = run_cli(REAL_MODELS / name, *args, *extra)
    if verdict == "error":
        assert result.code == 2 and result.err.count("\n") == 1 and detail in result.err, result.err
        return
    assert (result.code, result.report["verdict"]) == ({"invariant": 0}.get(verdict, 1), verdict), result.out
    if detail:
        assert result.report["first_divergence"]["op"] == detail


def test_google_mobilenet_batch_relaxed_and_limit_reported(run_cli):
    """Google's MobileNetV1 fixes the batch at 1 and reshapes to a hard-coded [1, 1001]."""
    report = run_cli(REAL_MODELS / "ssoniya_mobilenet_v1_0.25_128_frozen_graph.pb", *QUICK).report
    assert report["model"]["shipped_batch"] == 1 and report["model"]["batch_relaxed"]
    assert [limit["node"] for limit in report["limits"]] == ["MobilenetV1/Predictions/Reshape_1"]
    assert report["model"]["compared_tensors"] > 100
