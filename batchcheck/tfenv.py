"""Import TensorFlow quietly: its start-up lines must not reach the user's stderr."""
from __future__ import annotations

import os
from types import ModuleType


def import_tf() -> ModuleType:
    """Return the `tensorflow` module with C++ and Python logging turned down."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    return tf
