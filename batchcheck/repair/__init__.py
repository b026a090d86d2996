"""`batchcheck fix`: rewrite a batch-dependent graph for inference, fold its BatchNorm, and prove the result.

`fix(path, out, config, calibrate=DIR, fold_bn=True)` returns a `FixResult` (no printing); the backend that
loads the model rewrites it.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import check_argument
from ..options import CheckConfig
from .result import FixResult

__all__ = ["FixResult", "fix"]
DEFAULT_REPEATS = 10


def fix(path: Path | str, out: Path | str, config: CheckConfig | None = None, *, calibrate: Path | None = None,
        fold_bn: bool = False, repeats: int = DEFAULT_REPEATS) -> FixResult:
    """Rewrite `path` for inference into `out` (a frozen GraphDef, or an ONNX file for an ONNX model) and prove it;
    `UsageError` when it cannot be fixed. `config` holds the model options (input, outputs, feeds, images, check
    trials…)."""
    from ..load.open import backend_for, load_model

    config, path, out = config or CheckConfig(), Path(path), Path(out)
    check_argument(out.parent.is_dir(), "-o {}: folder `{}` does not exist; create it or choose another path",
                   out, out.parent)
    check_argument(not out.is_dir(), "-o {}: is a folder; give the path of the file to write", out)
    check_argument(not path.exists() or out.resolve() != path.resolve(),
                   "-o {}: is the model itself; write the fixed graph to another file", out)
    check_argument(calibrate is None or Path(calibrate).is_dir(),
                   "--calibrate {}: not a folder; point it at a folder of representative images", calibrate)
    check_argument(isinstance(repeats, int) and repeats >= 1, "--repeats {!r}: give a whole number of at least 1",
                   repeats)
    from .prove import prove

    loaded = load_model(path, config)
    repaired = backend_for(loaded).fix(loaded, out, config, calibrate=calibrate, fold_bn=fold_bn)
    return prove(path, repaired, repeats)
