"""`batchcheck inspect`: what a model holds, so node names are never guesswork: the image input batchcheck
would feed (or why it finds none), every placeholder with its dtype, shape and default, the outputs, the
BatchNorm nodes with their mode, and the layers."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import UsageError
from .graph import kinds
from .graph.index import GraphIndex, layer_of
from .options import CheckConfig
from .serial import Report


@dataclass(frozen=True)
class PlaceholderEntry:
    """A placeholder: `default` is the PlaceholderWithDefault's value (None: it must be fed)."""
    name: str
    op: str
    dtype: str
    shape: str
    default: str | None
    role: str  # "image input" | "feed"


@dataclass(frozen=True)
class BatchNormEntry:
    node: str
    op: str
    kind: str           # fused | decomposed
    layer: str
    training: bool
    mode_from: str      # attribute | moments | cond flag `NAME`
    per_sample: bool


@dataclass(kw_only=True)
class Inventory(Report):
    """The model's names and what batchcheck makes of them."""
    path: str
    format: str
    nodes: int
    input: str | None        # the tensor `check` feeds images into
    per_image_shape: list[int] | None
    input_note: str          # how it was found, or why not
    placeholders: list[PlaceholderEntry]
    outputs: list[str]
    batchnorms: list[BatchNormEntry]
    layers: list[dict[str, Any]]  # {"layer", "nodes"} in topological order



def inspect_model(path: Path | str, config: CheckConfig | None = None) -> Inventory:
    """Load `path` (with `config`'s model options) and list its names; `UsageError` if it cannot be read."""
    from .graph.batchnorm import find_batchnorms
    from .load.open import load_model, prepare, whole_graph

    path, config = Path(path), config or CheckConfig()
    loaded = load_model(path, config)
    index = whole_graph(loaded)
    try:
        prepared = prepare(loaded, config)
        chosen, shape, outputs = prepared.input.tensor, list(prepared.input.per_image_shape), prepared.outputs
        note = "given with --input" if config.input else "found automatically"
    except UsageError as exc:  # inspect lists what there is even when check would stop here
        chosen, shape, outputs, note = None, None, list(loaded.outputs), str(exc)
    placeholders = [_placeholder(index, name, chosen) for name in index.order
                    if index.nodes[name].kind in kinds.PLACEHOLDERS]
    batchnorms = [BatchNormEntry(bn.name, bn.op, bn.kind, layer_of(bn.name), bn.training.training,
                                 f"cond flag `{bn.training.flag}`" if bn.training.flag else bn.training.origin,
                                 bn.per_sample)
                  for bn in find_batchnorms(index, config.feeds)]
    layers: dict[str, int] = {}
    for name in index.order:
        layers[layer_of(name)] = layers.get(layer_of(name), 0) + 1
    return Inventory(path=str(path), format=loaded.format, nodes=len(index.order), input=chosen,
                     per_image_shape=shape, input_note=note, placeholders=placeholders, outputs=outputs,
                     batchnorms=batchnorms, layers=[{"layer": layer, "nodes": count} for layer, count in layers.items()])


def _placeholder(index: GraphIndex, name: str, chosen: str | None) -> PlaceholderEntry:
    from .load.placeholders import describe_placeholder

    op, dtype, shape, default = describe_placeholder(index, name)
    return PlaceholderEntry(name, op, dtype, shape, default,
                            "image input" if chosen and chosen.rsplit(":", 1)[0] == name else "feed")
