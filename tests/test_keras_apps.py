"""Clean Keras application models must pass: MobileNetV2/V3 frozen from real .keras files.

The default run uses small variants; the 224 px, alpha 1.0 ones the issue names are marked slow.
"""
from __future__ import annotations

import pytest

SMALL = [("MobileNetV2", 0.35, 96), ("MobileNetV3Small", 0.75, 96)]
FULL = [("MobileNetV2", 1.0, 224), ("MobileNetV3Large", 1.0, 224)]


def save_application(name: str, alpha: float, size: int, folder) -> str:
    import keras

    kwargs = {"minimalistic": True} if name.startswith("MobileNetV3") and size < 224 else {}
    model = getattr(keras.applications, name)(input_shape=(size, size, 3), alpha=alpha, weights=None, **kwargs)
    path = folder / f"{name}_{alpha}_{size}.keras"
    model.save(path)
    return str(path)


def check_clean(name, alpha, size, tmp_path, run_cli, *args):
    path = save_application(name, alpha, size, tmp_path)
    result = run_cli(path, *args)
    assert result.code == 0, result.out + result.err
    report = result.report
    assert report["verdict"] == "invariant" and report["model"]["format"] == "keras"
    assert report["model"]["compared_tensors"] > 100


@pytest.mark.parametrize("name,alpha,size", SMALL)
def test_small_keras_applications_pass(name, alpha, size, tmp_path, run_cli):
    check_clean(name, alpha, size, tmp_path, run_cli, "--trials", "3", "--batch-sizes", "2,5")


@pytest.mark.slow
@pytest.mark.parametrize("name,alpha,size", FULL)
def test_full_keras_applications_pass_at_224(name, alpha, size, tmp_path, run_cli):
    check_clean(name, alpha, size, tmp_path, run_cli, "--trials", "4", "--batch-sizes", "8,32")
