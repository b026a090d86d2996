"""Inference statistics for training-mode BatchNorms, from (in this order) moving mean/variance constants
left in the graph, the checkpoint of a `.meta`, or the weights of a Keras file (Keras 3, or Keras 2 through
tf-keras). What none of them has must be recalibrated (`calibrate.py`)."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ....graph.batchnorm import BatchNorm, constant_value, find_batchnorms
from ....repair.result import StatisticsSource
from ..env import import_tf
from ..graph import graph_index
from ..keras2 import load_keras2, usable_tf_keras
from ..keras_config import read_keras_file
from ..load import _checkpoint_prefix
from .rewrite import batchnorm_scope

Statistics = dict[str, tuple[np.ndarray, np.ndarray]]


def scope_candidates(scope: str) -> list[str]:
    """`bn0_1` (a Keras layer's second trace) also answers to `bn0`."""
    stripped = re.sub(r"_\d+$", "", scope)
    return [scope] if stripped == scope else [scope, stripped]


def known_statistics(batchnorms: list[BatchNorm], graph_def, model_format: str, path: Path,
                     checkpoint: Path | None) -> tuple[Statistics, list[StatisticsSource]]:
    """Statistics for the BatchNorms whose moving mean/variance can be found, and where each came from."""
    if not batchnorms:
        return {}, []
    lookups = [("graph", "moving_mean/moving_variance constants in the graph", _graph_lookup(graph_def))]
    if model_format == "meta-checkpoint":
        checkpoint = _checkpoint_prefix(path, checkpoint)  # --checkpoint, else the one beside the .meta
        lookups.append(("checkpoint", f"variables in checkpoint `{checkpoint}`", _checkpoint_lookup(checkpoint)))
    if model_format in ("keras", "keras2"):
        model = _keras_model(path) if model_format == "keras" else _keras2_model(path)
        lookups.append(("keras", f"the BatchNormalization layer's weights in `{path.name}`", _layer_lookup(model)))
    statistics: Statistics = {}
    sources = []
    for bn in batchnorms:
        for source, detail, lookup in lookups:
            found = next((lookup(scope) for scope in scope_candidates(batchnorm_scope(bn)) if lookup(scope)), None)
            if found:
                mean, variance, names = found
                statistics[bn.name] = (mean.astype(np.float32), variance.astype(np.float32))
                sources.append(StatisticsSource(bn.name, batchnorm_scope(bn), source, f"{detail}: {names}"))
                break
    return statistics, sources


def _graph_lookup(graph_def):
    index = graph_index(graph_def)

    def lookup(scope: str):
        mean = constant_value(index, f"{scope}/moving_mean")
        variance = constant_value(index, f"{scope}/moving_variance")
        if mean is None or variance is None:
            return None
        return mean, variance, f"`{scope}/moving_mean`, `{scope}/moving_variance`"
    return lookup


def _checkpoint_lookup(prefix: Path):
    tf = import_tf()
    reader = tf.train.load_checkpoint(str(prefix))
    names = set(reader.get_variable_to_shape_map())

    def lookup(scope: str):
        mean, variance = f"{scope}/moving_mean", f"{scope}/moving_variance"
        if mean not in names or variance not in names:
            return None
        return reader.get_tensor(mean), reader.get_tensor(variance), f"`{mean}`, `{variance}`"
    return lookup


def _keras_model(path: Path):
    import_tf()
    import keras

    return keras.models.load_model(str(path), compile=False, safe_mode=True)


def _keras2_model(path: Path):
    """The Keras 2 file as the loader read it: with tf-keras (format `keras2` means it was usable)."""
    tf_keras, _ = usable_tf_keras()
    return load_keras2(read_keras_file(path), tf_keras)


def _layer_lookup(model):
    """Moving statistics of `model`'s BatchNormalization layers by scope: a layer answers to its path of layer
    names from the model's (`cnn/bn1`, as a traced graph names it) and to every shorter tail that no other layer
    shares (`bn1`)."""
    paths: dict[str, list] = {}
    for names, layer in _all_layers(model, (model.name,)):
        if hasattr(layer, "moving_mean") and hasattr(layer, "moving_variance"):
            for start in range(len(names)):
                paths.setdefault("/".join(names[start:]), []).append(layer)

    def lookup(scope: str):
        layers = paths.get(scope, [])
        if len(layers) != 1:
            return None
        mean, variance = layers[0].moving_mean, layers[0].moving_variance
        return (np.asarray(mean), np.asarray(variance),
                f"`{getattr(mean, 'path', mean.name)}`, `{getattr(variance, 'path', variance.name)}`")
    return lookup


def _all_layers(model, names: tuple[str, ...]) -> list[tuple[tuple[str, ...], object]]:
    """(names from the model's to the layer's, layer) for every layer, nested models' too."""
    found = []
    for layer in getattr(model, "layers", []):
        found.append(((*names, layer.name), layer))
        found.extend(_all_layers(layer, (*names, layer.name)))
    return found


def cond_branch_sources(graph_def, kept: set[str], flags: dict[str, bool]) -> list[StatisticsSource]:
    """BatchNorms that are in inference mode because a flag made constant kept their cond branch: their
    statistics are the moving statistics that branch already held."""
    sources = []
    for bn in find_batchnorms(graph_index(graph_def)):
        flag = bn.training.flag
        if flag in flags and bn.name in kept and not bn.batch_statistics:
            sources.append(StatisticsSource(bn.name, batchnorm_scope(bn), "graph",
                                            f"moving statistics of the cond branch kept by `{flag}` = "
                                            f"{str(flags[flag]).lower()}"))
    return sources
