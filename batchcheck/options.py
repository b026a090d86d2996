"""Check options, defined once and added to both the CLI's argparse parser and pytest's parser.

`add_check_options(addoption, prefix)` works with `argparse.ArgumentParser.add_argument` and with
pytest's `OptionGroup.addoption`; `config_from_options(get, prefix)` turns parsed values back into a
`CheckConfig`. Importing this module never imports TensorFlow.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .errors import check_argument

FORMATS = ("auto", "pb", "pbtxt", "savedmodel", "keras", "meta")
PREPROCESSING = ("raw", "unit", "symmetric", "caffe")
DEFAULT_BATCH_SIZES = (2, 3, 4, 5, 8, 16, 17, 32)
DEFAULT_TRIALS = 8
MAX_BATCH = 4096


@dataclass(frozen=True)
class CheckConfig:
    """Everything a check needs besides the model path; validated on creation."""
    format: str = "auto"
    signature: str = "serving_default"
    checkpoint: Path | None = None
    input: str | None = None
    outputs: tuple[str, ...] = ()
    input_shape: tuple[int, ...] | None = None
    feeds: dict[str, str] = field(default_factory=dict)
    images: Path | None = None
    preprocess: str = "symmetric"
    batch_sizes: tuple[int, ...] = DEFAULT_BATCH_SIZES
    trials: int = DEFAULT_TRIALS
    seed: int = 0
    atol: float | None = None
    rtol: float | None = None
    exact: bool = False

    def __post_init__(self) -> None:
        check_argument(self.format in FORMATS, "format={!r}: choose one of {}", self.format, ", ".join(FORMATS))
        check_argument(self.preprocess in PREPROCESSING, "preprocess={!r}: choose one of {}",
                       self.preprocess, ", ".join(PREPROCESSING))
        check_argument(isinstance(self.trials, int) and self.trials >= 1,
                       "trials={!r}: give a whole number of at least 1", self.trials)
        check_argument(self.batch_sizes and all(isinstance(b, int) and 2 <= b <= MAX_BATCH for b in self.batch_sizes),
                       "batch_sizes={!r}: give whole numbers from 2 to {} (a batch of 1 is the probe alone)",
                       self.batch_sizes, MAX_BATCH)
        for name in ("atol", "rtol"):
            value = getattr(self, name)
            check_argument(value is None or value >= 0, "{}={!r}: give a number of at least 0", name, value)
        check_argument(not (self.exact and (self.atol is not None or self.rtol is not None)),
                       "exact=True with atol/rtol: choose either --exact or --atol/--rtol")
        check_argument(self.input_shape is None or all(d >= 1 for d in self.input_shape),
                       "input_shape={!r}: sizes must be at least 1", self.input_shape)


def parse_int_list(text: str) -> tuple[int, ...]:
    """'2,4,8' → (2, 4, 8)."""
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of whole numbers") from None
    if not values:
        raise argparse.ArgumentTypeError("give at least one number")
    return values


def parse_feed(text: str) -> tuple[str, str]:
    """'is_training=false' → ('is_training', 'false')."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip() or not value.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=VALUE (e.g. is_training=false)")
    return name.strip(), value.strip()


# (name, argparse keyword arguments); dest is the name with dashes as underscores.
OPTIONS: list[tuple[str, dict[str, Any]]] = [
    ("format", dict(choices=FORMATS, default="auto",
                    help="model format (default: from the path): frozen .pb/.pbtxt, SavedModel folder, "
                         "Keras .keras/.h5, TF1 .meta")),
    ("signature", dict(default="serving_default", metavar="NAME", help="SavedModel signature to check")),
    ("checkpoint", dict(type=Path, metavar="PREFIX", help="checkpoint for a .meta graph, e.g. model-34000")),
    ("input", dict(metavar="NAME", help="tensor to feed images into (default: the image placeholder); "
                                        "a Const or inner tensor works")),
    ("output", dict(action="append", metavar="NAME", help="output to keep (repeatable; default: the sinks)")),
    ("input-shape", dict(type=parse_int_list, metavar="H,W,C",
                         help="per-image input shape without the batch axis, for unknown sizes")),
    ("feed", dict(action="append", type=parse_feed, metavar="NAME=VALUE",
                  help="value for another placeholder, e.g. is_training=false (repeatable)")),
    ("images", dict(type=Path, metavar="DIR", help="folder of images (default: a seeded synthetic set)")),
    ("preprocess", dict(choices=PREPROCESSING, default="symmetric",
                        help="pixel scaling for float inputs: raw 0..255, unit 0..1, symmetric -1..1, caffe BGR-mean")),
    ("batch-sizes", dict(type=parse_int_list, metavar="N,N,…",
                         help=f"batch sizes to draw from (default {','.join(map(str, DEFAULT_BATCH_SIZES))})")),
    ("trials", dict(type=int, default=DEFAULT_TRIALS, metavar="N", help="number of batches to try")),
    ("seed", dict(type=int, default=0, metavar="N", help="seed for images, batch sizes, positions and mates")),
    ("atol", dict(type=float, metavar="X", help="absolute tolerance (default: from the measured noise floor)")),
    ("rtol", dict(type=float, metavar="X", help="relative tolerance, of the tensor's max |value|")),
    ("exact", dict(action="store_true", help="no tolerance: any difference counts")),
]


def add_check_options(addoption: Callable[..., Any], prefix: str = "", names: tuple[str, ...] | None = None) -> None:
    """Add every check option (or those in `names`) as `--{prefix}{name}` through `addoption` (argparse or pytest)."""
    for name, kwargs in OPTIONS:
        if names is None or name in names:
            addoption(f"--{prefix}{name}", dest=_dest(prefix, name), **kwargs)


def config_from_options(get: Callable[[str], Any], prefix: str = "") -> CheckConfig:
    """Build a `CheckConfig` from parsed options; `get(dest)` reads one value."""
    value = lambda name: get(_dest(prefix, name))  # noqa: E731 - a local shorthand
    return CheckConfig(
        format=value("format"), signature=value("signature"), checkpoint=value("checkpoint"),
        input=value("input"), outputs=tuple(value("output") or ()), input_shape=value("input-shape"),
        feeds=dict(value("feed") or ()), images=value("images"), preprocess=value("preprocess"),
        batch_sizes=value("batch-sizes") or DEFAULT_BATCH_SIZES, trials=value("trials"), seed=value("seed"),
        atol=value("atol"), rtol=value("rtol"), exact=value("exact"))


def _dest(prefix: str, name: str) -> str:
    return f"{prefix}{name}".replace("-", "_")
