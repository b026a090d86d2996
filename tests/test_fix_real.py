"""`batchcheck fix` on public graphs trained by others (../shared/real-models): every batch-dependent or
nondeterministic one is fixed and re-checked; every clean one survives --fold-bn with unchanged outputs."""
from __future__ import annotations

from pathlib import Path

import pytest

from batchcheck.options import CheckConfig
from conftest import REAL_MODELS

pytestmark = pytest.mark.skipif(not (REAL_MODELS / "MANIFEST.md").exists(),
                                reason="../shared/real-models is not beside this checkout")
IMAGES = Path(__file__).resolve().parent.parent / "fixtures" / "images"
QUICK = dict(trials=3, batch_sizes=(2, 3))

# file, config, fix options, expected rewrite counts
BROKEN = [
    ("dl4j_fused_batch_norm_float32_nhwc.pb", dict(input="in_0"), dict(calibrate=IMAGES), {"bn_inference": 1}),
    ("utensor_cifar10_cnn_rate.pb", {}, {}, {"dropout_identity": 2}),
    ("utensor_cifar10_buggy.pb", {}, {}, {"dropout_identity": 2}),
]
# file, config, BatchNorms folded
CLEAN = [
    ("ssoniya_mobilenet_v1_0.25_128_frozen_graph.pb", {}, 27),
    ("ssoniya_retrained_graph.pb", dict(outputs=("final_result",)), 27),
    ("ssoniya_optimized_graph.pb", dict(input_shape=(128, 128, 3)), 27),
    ("dl4j_batchnorm_rank4_nhwc_batch2_sz5_fused.pb", dict(input="in_0"), 0),
    ("dl4j_batchnorm_rank4_nhwc_batch4_sz5_noFused.pb", dict(input="in_0"), 0),
    ("dl4j_lenet_frozen.pb", dict(input_shape=(784,)), 0),
    ("cdyang_emotion_minixception_model.pb", {}, 14),
    ("cdyang_emotion_tiny_cnn_049.pb", {}, 8),
    ("utensor_cifar10_cnn.pb", {}, 0),
    ("gsig_charades_frozen_model.pb", dict(input_shape=(224, 224, 3)), 0),
    ("guorbit_model.pb", {}, 0),
]
SLOW = {"gsig_charades_frozen_model.pb", "guorbit_model.pb"}  # 224 and 512 px: marked slow


@pytest.mark.parametrize("name,config,options,rewrites", BROKEN, ids=[c[0] for c in BROKEN])
def test_broken_graph_fixed_and_rechecked(name, config, options, rewrites, tmp_path):
    import batchcheck

    result = batchcheck.fix(REAL_MODELS / name, tmp_path / "fixed.pb", CheckConfig(**QUICK, **config),
                            repeats=2, **options)
    assert result.rewrite_counts() == rewrites
    assert result.proof.verdict == "invariant" and result, result.proof.failed
    for output in result.proof.outputs:
        assert output.max_rel_diff < 1e-4 and output.agreement in (None, 1.0), output
    assert result.proof.after.nodes <= result.proof.before.nodes


@pytest.mark.parametrize("name,config,folded", [
    pytest.param(*case, id=case[0], marks=[pytest.mark.slow] if case[0] in SLOW else []) for case in CLEAN])
def test_clean_graph_survives_fold_bn(name, config, folded, tmp_path):
    import batchcheck

    result = batchcheck.fix(REAL_MODELS / name, tmp_path / "folded.pb", CheckConfig(**QUICK, **config),
                            fold_bn=True, repeats=2)
    assert result.proof.verdict == "invariant" and result, result.proof.failed
    assert result.rewrite_counts().get("bn_folded", 0) == folded
    if folded:
        assert result.proof.after.batchnorm_nodes == 0 < result.proof.before.batchnorm_nodes
    for output in result.proof.outputs:
        assert output.max_abs_diff <= output.allowed_abs_diff, output
        assert output.agreement in (None, 1.0)
