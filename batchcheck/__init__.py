"""batchcheck: prove an image model gives each image the same answer whatever batch it runs in."""
from __future__ import annotations

__version__ = "0.1.0"

from .errors import BatchcheckBug, NotInvariant, UsageError  # noqa: E402
from .options import CheckConfig  # noqa: E402

__all__ = ["BatchcheckBug", "CheckConfig", "NotInvariant", "UsageError", "__version__", "check", "fix"]


def check(path, config: CheckConfig | None = None, progress=None):
    """Check `path`; see `batchcheck.check.check` (imported lazily: it loads TensorFlow)."""
    from .check import check as run

    return run(path, config, progress)


def fix(path, out, config: CheckConfig | None = None, **options):
    """Fix `path` into `out` and prove it; see `batchcheck.fix.fix` (imported lazily: it loads TensorFlow)."""
    from .fix import fix as run

    return run(path, out, config, **options)


def _callable_as(module_name: str, function) -> None:
    """Importing the submodule `batchcheck.check` (or `.fix`) rebinds the attribute `batchcheck.check`, the
    public function, to the module; making the module call `function` keeps `batchcheck.check(...)` working."""
    import sys
    import types

    class CallableModule(types.ModuleType):
        def __call__(self, *args, **kwargs):
            return function(*args, **kwargs)

    sys.modules[module_name].__class__ = CallableModule
