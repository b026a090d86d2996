"""Import TensorFlow quietly: its start-up lines must not reach the user's stderr."""
from __future__ import annotations

import gc
import os
import sys
from contextlib import contextmanager
from types import ModuleType
from typing import Iterator


def import_tf() -> ModuleType:
    """Return the `tensorflow` module with C++ and Python logging turned down."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" not in sys.modules:
        # absl writes oneDNN's start-up notice to fd 2 before TF_CPP_MIN_LOG_LEVEL takes effect
        with _stderr_silenced():
            import tensorflow  # noqa: F401
        # TensorFlow's import leaves ~300k long-lived objects; out of the collector's generations, Python's
        # full collections no longer walk them (one took 0.17 s in the middle of a check)
        gc.freeze()
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    return tf


@contextmanager
def _stderr_silenced() -> Iterator[None]:
    """Point file descriptor 2 at /dev/null for the duration (C++ writes bypass sys.stderr)."""
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
