"""Keras 2 files, loaded with tf-keras: the Keras 2 that TensorFlow maintains, released with the same version.

Keras 3 cannot read many files Keras 2 wrote (Teachable Machine's `.h5`: DepthwiseConv2D with `groups`, nested
Sequentials; a functional model around a Sequential; a weights-only `.h5` with its `model.json`). tf-keras is an
optional extra (`pip install "tf-keras==<TensorFlow's major.minor>.*"`). The model config was checked for Python
before (`keras_config.refuse_python`); here tf-keras deserialises it and the model is traced as `model(x)` runs it.
"""
from __future__ import annotations

from types import ModuleType

from ...errors import UsageError, first_line
from .env import import_tf
from .keras_config import KerasFile


def tf_keras_install() -> str:
    """The pip command that installs the tf-keras matching the TensorFlow installed."""
    major_minor = ".".join(import_tf().__version__.split(".")[:2])
    return f'pip install "tf-keras=={major_minor}.*"'


def usable_tf_keras() -> tuple[ModuleType | None, str]:
    """(the `tf_keras` module, '') or (None, why it cannot be used: not installed, or not TensorFlow's version)."""
    tf = import_tf()
    try:
        import tf_keras
    except ImportError:
        return None, "tf-keras is not installed"
    if tf_keras.__version__.split(".")[:2] != tf.__version__.split(".")[:2]:
        return None, f"tf-keras {tf_keras.__version__} does not match TensorFlow {tf.__version__}"
    return tf_keras, ""


def load_keras2(keras_file: KerasFile, tf_keras: ModuleType):
    """The model `keras_file` holds, deserialised by tf-keras (safe mode on; the config was checked already)."""
    path = keras_file.path
    try:
        if keras_file.architecture is not None:
            model = tf_keras.models.model_from_json(keras_file.architecture.read_text(encoding="utf-8"))
            model.load_weights(str(path))
        else:
            model = tf_keras.models.load_model(str(path), compile=False, safe_mode=True)
    except Exception as exc:  # tf-keras raises ValueError, TypeError, OSError, KeyError… for files it cannot read
        raise UsageError(f"model `{path}`: written by Keras {keras_file.keras_version}, and tf-keras "
                         f"{tf_keras.__version__} cannot load it ({first_line(exc)})") from None
    return model


def trace_keras2(model):
    """`model(x)` as a concrete function of its inputs (batch axis free), pruned to the outputs: Keras 2 adds the
    moving-statistics updates of a BatchNorm called with training=True as side effects, which pruning leaves out."""
    tf = import_tf()
    specs = [tf.TensorSpec((None, *tensor.shape[1:]), tensor.dtype, name=tensor.name.split(":")[0])
             for tensor in model.inputs]
    wrapped = tf.compat.v1.wrap_function(lambda *inputs: model(list(inputs) if len(inputs) > 1 else inputs[0]), specs)
    return wrapped.prune(wrapped.inputs[:len(specs)], wrapped.outputs)

