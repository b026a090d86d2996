"""What a loaded Keras model (Keras 3 or tf-keras) does that the report should say, from its layers."""
from __future__ import annotations

import inspect


def augmentation_notes(model) -> list[str]:
    """Which layers augment in `model(x)` (RandomFlip, RandomRotation…: their `training` defaults to true), and
    how to turn them off, as a report note; none when no layer does."""
    found = [f"{type(layer).__name__} `{layer.name}`" for layer in _augmenting_layers(model)]
    if not found:
        return []
    return [f"augmentation layers run in model(x): {', '.join(found)} (their `training` argument defaults to "
            f"true), so as shipped model(x) draws new random values on every call; model(x, training=False) or "
            f"model.predict(x) turns them off"]


def _augmenting_layers(model) -> list:
    """Layers (nested ones too) whose call's `training` defaults to true and that no call turned off."""
    found = []
    for layer in getattr(model, "layers", []):
        nodes = getattr(layer, "_inbound_nodes", [])
        # Keras 3 records each call's arguments in node.arguments, tf-keras in node.call_kwargs
        kwargs = [n.arguments.kwargs if hasattr(n, "arguments") else getattr(n, "call_kwargs", {}) for n in nodes]
        if kwargs and all(k.get("training") is False for k in kwargs):
            continue
        training = inspect.signature(layer.call).parameters.get("training")
        if training is not None and training.default is True:
            found.append(layer)
        found += _augmenting_layers(layer)
    return found
