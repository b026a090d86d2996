"""`batchcheck fix`: rewrite a batch-dependent graph for inference, fold its BatchNorm, and prove the result.

`fix(path, out, config, calibrate=DIR, fold_bn=True)` returns a `FixResult` (no printing).
"""
from __future__ import annotations

import sys
import types

from .repair import fix
from .result import FixResult

__all__ = ["FixResult", "fix"]


class _CallablePackage(types.ModuleType):
    """Importing this package rebinds `batchcheck.fix` (the public function) to the package; calling the
    package calls `fix`, so `batchcheck.fix(...)` works either way."""

    def __call__(self, *args, **kwargs):
        return fix(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
