"""`batchcheck fix`: rewrite a batch-dependent graph for inference, fold its BatchNorm, and prove the result.

`fix(path, out, config, calibrate=DIR, fold_bn=True)` returns a `FixResult` (no printing).
"""
from __future__ import annotations

from .pipeline import fix
from .result import FixResult

__all__ = ["FixResult", "fix"]
