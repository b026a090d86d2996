"""batchcheck: prove an image model gives each image the same answer whatever batch it runs in."""
from __future__ import annotations

from .errors import BatchcheckBug, NotInvariant, UsageError
from .options import CheckConfig
from .version import __version__

__all__ = ["BatchcheckBug", "CheckConfig", "NotInvariant", "UsageError", "__version__", "check", "fix"]


def check(path, config: CheckConfig | None = None, progress=None):
    """Check `path`; see `batchcheck.checker.check` (imported lazily: it loads TensorFlow)."""
    from .checker import check as run

    return run(path, config, progress)


def fix(path, out, config: CheckConfig | None = None, **options):
    """Fix `path` into `out` and prove it; see `batchcheck.repair.fix` (imported lazily: it loads TensorFlow)."""
    from .repair import fix as run

    return run(path, out, config, **options)

