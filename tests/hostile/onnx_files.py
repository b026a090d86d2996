"""The hostile ONNX files (`fixtures/onnx/hostile.py`) as corpus cases: each refused in one line naming what is
wrong, or checked when legitimate. None without the onnx extra."""
from __future__ import annotations

from pathlib import Path

from .models import QUICK, Case


def onnx_cases(root: Path) -> list[Case]:
    """Write every hostile ONNX file under `root/models/onnx/` and return its case; the memory bomb runs as a
    supervised process under --max-memory."""
    try:
        import onnxruntime  # noqa: F401

        from fixtures.onnx.hostile import build_hostile_onnx
    except ImportError:
        return []
    return [Case(f"onnx-{case.name}", [str(path), *QUICK], case.codes, case.mentions,
                 supervised=case.category == "memory_limit")
            for case, path in build_hostile_onnx(root / "models" / "onnx")]
