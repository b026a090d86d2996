"""Placeholders other than the image input, in the neutral graph view: how they are described, and the values
`--feed` gives them (parsed for their dtype and shape)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import UsageError, did_you_mean, names_list
from ..graph import kinds
from ..graph.index import GraphIndex
from ..result import PlaceholderInfo


def format_shape(shape) -> str:
    """'[?,224,224,3]'; 'unknown' for an unknown rank."""
    return "unknown" if shape is None else "[" + ",".join("?" if d is None else str(d) for d in shape) + "]"


def given_input_shape(node: str, per_image: tuple | None, given: tuple[int, ...]) -> tuple[int, ...]:
    """`--input-shape` for input `node` whose per-image shape is `per_image` (None: unknown rank): `UsageError`
    when the rank differs or a size the model fixes differs."""
    text = ",".join(map(str, given))
    if per_image is not None and len(per_image) != len(given):
        raise UsageError(f"--input-shape {text}: input `{node}` has per-image rank {len(per_image)} "
                         f"({format_shape(per_image)}); give {len(per_image)} sizes")
    if per_image is not None and any(d is not None and d != g for d, g in zip(per_image, given)):
        raise UsageError(f"--input-shape {text}: input `{node}` fixes {format_shape(per_image)}; only its "
                         f"unknown sizes can be set")
    return tuple(given)


def describe_placeholder(index: GraphIndex, name: str) -> tuple[str, str, str, str | None]:
    """(op, dtype, shape, default) of placeholder `name`; the default is None when it must be fed."""
    info = index.nodes[name]
    default = None
    if info.kind == kinds.INPUT_WITH_DEFAULT and info.data_inputs:
        default = _value_text(index, info.data_inputs[0][0])
    return info.op, info.attrs["dtype"], format_shape(info.attrs["shape"]), default


def _value_text(index: GraphIndex, node: str) -> str:
    """A constant's value, short enough for one line; another node by name."""
    value = index.constant(node) if index.nodes[node].kind == kinds.CONSTANT else None
    if value is None:
        return f"from `{node}`"
    return str(value.tolist()).lower() if value.size <= 8 else f"{value.dtype} array of shape {list(value.shape)}"


def resolve_feeds(path: Path, index: GraphIndex, input_node: str,
                   feeds: dict[str, str]) -> tuple[list[PlaceholderInfo], dict[str, np.ndarray]]:
    """The placeholders other than `input_node`, each with its --feed value if given, and the values to feed;
    `UsageError` for a feed naming no node or the input, or a placeholder without a default left unfed."""
    placeholders = [name for name in index.order
                    if index.nodes[name].kind in kinds.PLACEHOLDERS and name != input_node]
    for name in feeds:
        node = name.rsplit(":", 1)[0]
        if node == input_node:
            raise UsageError(f"--feed {name}=…: `{node}` is the image input; it is fed with images, not --feed")
        if node not in index:
            raise UsageError(f"--feed {name}=…: no such node in `{path}`{did_you_mean(node, placeholders)} "
                             f"(placeholders: {names_list(placeholders)})")
    infos, values = [], {}
    by_node = {name.rsplit(":", 1)[0]: value for name, value in feeds.items()}
    for name in placeholders:
        info = index.nodes[name]
        dtype, shape = info.attrs["dtype"], info.attrs["shape"]
        raw = by_node.get(name)
        if raw is None and info.kind != kinds.INPUT_WITH_DEFAULT:
            raise UsageError(f"placeholder `{name}` ({dtype}, shape {format_shape(shape)}) has no default and "
                             f"must be fed: add --feed {name}=VALUE")
        infos.append(PlaceholderInfo(name, info.op, dtype, format_shape(shape), raw))
        if raw is not None:
            values[f"{name}:0"] = parse_feed_value(name, raw, dtype, shape)
    for name, raw in feeds.items():
        node = name.rsplit(":", 1)[0]
        if node not in placeholders:
            values[f"{node}:0"] = parse_feed_value(node, raw, index.output_dtypes(node)[0], None)
    return infos, values


def parse_feed_value(name: str, raw: str, dtype: str, shape) -> np.ndarray:
    """Parse a `--feed` value for a tensor of `dtype`; scalars broadcast to a fully known shape."""
    text = raw.strip().lower()
    try:
        if dtype == "bool":
            if text not in ("true", "false", "1", "0"):
                raise ValueError(text)
            value = np.asarray(text in ("true", "1"))
        else:
            parts = [p for p in text.strip("[]").split(",") if p.strip()]
            value = np.asarray([float(p) for p in parts] if len(parts) > 1 else float(parts[0]))
            value = value.astype(np.dtype(dtype) if dtype != "bfloat16" else np.float32)
    except (ValueError, IndexError, TypeError):
        kind = "true or false" if dtype == "bool" else "a number or a comma-separated list"
        raise UsageError(f"--feed {name}={raw}: `{name}` is {dtype}; give {kind}") from None
    if shape is not None and value.ndim == 0 and shape and all(d is not None for d in shape):
        value = np.broadcast_to(value, shape).copy()
    if shape is not None and (value.ndim != len(shape) or any(d is not None and d != v for d, v in
                                                              zip(shape, value.shape))):
        raise UsageError(f"--feed {name}={raw}: `{name}` takes a {dtype} tensor of shape {format_shape(shape)}, "
                         f"not {format_shape(value.shape)}; give {'one value' if not shape else 'a value of that shape'}")
    return value
