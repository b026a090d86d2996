"""Check options, defined once in `OPTIONS` and derived everywhere: the CLI's and pytest's parsers
(`add_check_options(addoption, prefix, command=…)` works with argparse's `add_argument` and pytest's
`OptionGroup.addoption`), `config_from_options` back to a `CheckConfig`, `option_args` for the commands
that reproduce a run, and validation messages that name the flag as the user typed it. Each option records
the commands that honour it (`Option.commands`); a command's parser offers exactly those, and pytest's
`--graph-*` options are `check`'s. Adding an option is one `Option` entry plus its `CheckConfig` field (and a
row in tests/test_options_act.py showing it acts). Importing this never imports TensorFlow.
"""
from __future__ import annotations

import argparse
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Literal

from .errors import InvalidOption, UsageError, check_field
from .formats import FORMAT_NAMES
from .safety.scan import refusal_category
from .safety.supervise import DEFAULT_TIMEOUT, parse_seconds, parse_size

PREPROCESSING = ("raw", "unit", "symmetric", "caffe")
DEFAULT_BATCH_SIZES = (2, 3, 4, 5, 8, 16, 17, 32)
DEFAULT_TRIALS = 8
MAX_BATCH = 4096
# Which commands honour an option. lint runs the model only with --confirm, so its image, seed, tolerance and
# limit options act there only; inspect never runs the model.
EVERY_COMMAND = frozenset({"check", "lint", "explain", "inspect", "fix"})
RUNS_MODEL = EVERY_COMMAND - {"inspect"}
RUNS_TRIALS = frozenset({"check", "explain", "fix"})  # explain: the short check that finds the node to explain


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
    preprocess: str | None = None  # None: symmetric for float inputs; uint8 inputs always get raw pixels
    batch_sizes: tuple[int, ...] | None = None  # None: draw from DEFAULT_BATCH_SIZES; given: each runs once
    trials: int = DEFAULT_TRIALS
    seed: int = 0
    atol: float | None = None
    rtol: float | None = None
    exact: bool = False
    allow_ops: tuple[str, ...] = ()
    skip_bad_images: bool = False
    timeout: float = DEFAULT_TIMEOUT  # seconds; 0 = no limit
    max_memory: int | None = None  # bytes; None = a share of the machine's memory, 0 = no limit

    @property
    def scaling(self) -> str:
        """The pixel scaling for float inputs."""
        return self.preprocess or "symmetric"

    @property
    def sizes(self) -> tuple[int, ...]:
        """The batch sizes trials draw from."""
        return self.batch_sizes or DEFAULT_BATCH_SIZES

    def __post_init__(self) -> None:
        check_field(self.format in FORMAT_NAMES, "format", self.format, f"choose one of {', '.join(FORMAT_NAMES)}")
        check_field(self.preprocess is None or self.preprocess in PREPROCESSING, "preprocess", self.preprocess,
                    f"choose one of {', '.join(PREPROCESSING)}")
        check_field(isinstance(self.trials, int) and self.trials >= 1, "trials", self.trials,
                    "give a whole number of at least 1")
        check_field(isinstance(self.seed, int) and self.seed >= 0, "seed", self.seed,
                    "give a whole number of at least 0")
        check_field(self.batch_sizes is None or self.batch_sizes and all(
                    isinstance(b, int) and 2 <= b <= MAX_BATCH for b in self.batch_sizes),
                    "batch_sizes", self.batch_sizes,
                    f"give whole numbers from 2 to {MAX_BATCH} (a batch of 1 is the probe alone)")
        for name in ("atol", "rtol"):
            value = getattr(self, name)
            check_field(value is None or value >= 0, name, value, "give a number of at least 0")
        check_field(not (self.exact and (self.atol is not None or self.rtol is not None)), "exact", self.exact,
                    f"choose either {option_named('exact').flag_text()} or "
                    f"{option_named('atol').flag_text()}/{option_named('rtol').flag_text()}")
        check_field(self.input_shape is None or all(d >= 1 for d in self.input_shape),
                    "input_shape", self.input_shape, "sizes must be at least 1")
        for op in self.allow_ops:
            check_field(refusal_category(op) or op == "PrintV2", "allow_ops", (op,), "not an op batchcheck refuses "
                        "(it refuses file, Python and network ops such as ReadFile, WriteFile, PyFunc, and ONNX ops of "
                        "custom domains, named DOMAIN:OP)")
        check_field(self.timeout >= 0, "timeout", self.timeout, "give seconds, 0 for no limit")
        check_field(self.max_memory is None or self.max_memory >= 0, "max_memory", self.max_memory,
                    "give a size like 4G, 0 for no limit")


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


# How a field's value is spelled on the command line.
Spelling = Literal["value", "switch", "list", "repeat", "pairs"]


@dataclass(frozen=True)
class Option:
    """One check option: its flag (without dashes), the `CheckConfig` field it sets, its help group, how the
    value is spelled (one value, an on/off switch, a comma list, a repeated flag, repeated NAME=VALUE), the
    commands that honour it, and argparse's keywords."""
    flag: str
    field: str
    group: str
    spelling: Spelling
    commands: frozenset[str]
    kwargs: dict[str, Any]

    def dest(self, prefix: str = "") -> str:
        return f"{prefix}{self.flag}".replace("-", "_")

    def flag_text(self, prefix: str = "") -> str:
        return f"--{prefix}{self.flag}"

    def to_config(self, parsed: Any) -> Any:
        """The field's value from what the parser produced (None: the field's default)."""
        if self.spelling == "repeat":
            return tuple(parsed or ())
        if self.spelling == "pairs":
            return _unique_pairs(self, parsed or ())
        return parsed

    def to_args(self, value: Any, prefix: str = "") -> list[str]:
        """The command-line words that give the field `value`."""
        flag = self.flag_text(prefix)
        if self.spelling == "switch":
            return [flag] if value else []
        if self.spelling == "repeat":
            return [word for item in value for word in (flag, str(item))]
        if self.spelling == "pairs":
            return [word for name, raw in value.items() for word in (flag, f"{name}={raw}")]
        if self.spelling == "list":
            return [flag, ",".join(map(str, value))]
        return [flag, str(value)]

    def typed(self, value: Any) -> str:
        """`value` as the user would have typed it."""
        words = self.to_args(value)
        return " ".join(words[1:]) if len(words) > 1 else ""


def _unique_pairs(option: Option, pairs) -> dict[str, str]:
    values: dict[str, str] = {}
    for name, raw in pairs:
        if name in values and values[name] != raw:
            raise UsageError(f"{option.flag_text()} {name}=…: given twice ({values[name]} and {raw}); keep one")
        values[name] = raw
    return values


OPTIONS: tuple[Option, ...] = (
    Option("format", "format", "model", "value", EVERY_COMMAND, dict(
        choices=FORMAT_NAMES, default="auto",
        help="model format (default: from the path): frozen .pb/.pbtxt, SavedModel folder, Keras .keras/.h5, "
             "TF1 .meta, ONNX .onnx")),
    Option("signature", "signature", "model", "value", EVERY_COMMAND, dict(
        default="serving_default", metavar="NAME", help="SavedModel signature to check (default: serving_default)")),
    Option("checkpoint", "checkpoint", "model", "value", EVERY_COMMAND, dict(
        type=Path, metavar="PREFIX",
        help="checkpoint for a .meta graph, e.g. model-34000 (default: the one beside the .meta, else the latest)")),
    Option("input", "input", "model", "value", EVERY_COMMAND, dict(
        metavar="NAME", help="tensor to feed images into (default: the image placeholder); a Const or inner tensor works")),
    Option("output", "outputs", "model", "repeat", EVERY_COMMAND, dict(
        action="append", metavar="NAME", help="output to keep (repeatable; default: the sinks)")),
    Option("input-shape", "input_shape", "model", "list", EVERY_COMMAND, dict(
        type=parse_int_list, metavar="H,W,C",
        help="per-image input shape without the batch axis, in the model's own layout (3,224,224 for NCHW), for "
             "sizes the graph leaves unknown")),
    Option("feed", "feeds", "model", "pairs", EVERY_COMMAND, dict(
        action="append", type=parse_feed, metavar="NAME=VALUE",
        help="value for another placeholder, e.g. is_training=false (repeatable)")),
    Option("images", "images", "images", "value", RUNS_MODEL, dict(
        type=Path, metavar="DIR", help="folder of images (default: a seeded synthetic set)")),
    Option("preprocess", "preprocess", "images", "value", RUNS_MODEL, dict(
        choices=PREPROCESSING,
        help="pixel scaling for float inputs: raw 0..255, unit 0..1, symmetric -1..1 (default), caffe BGR-mean; "
             "uint8 inputs always get raw pixels")),
    Option("batch-sizes", "batch_sizes", "trials", "list", RUNS_TRIALS, dict(
        type=parse_int_list, metavar="N,N,…",
        help=f"batch sizes to try, each at least once (default: drawn from {','.join(map(str, DEFAULT_BATCH_SIZES))})")),
    Option("trials", "trials", "trials", "value", RUNS_TRIALS, dict(
        type=int, default=DEFAULT_TRIALS, metavar="N", help=f"number of batches to try (default {DEFAULT_TRIALS})")),
    Option("seed", "seed", "trials", "value", RUNS_MODEL, dict(
        type=int, default=0, metavar="N", help="seed for images, batch sizes, positions and mates (default 0)")),
    Option("atol", "atol", "tolerance", "value", RUNS_MODEL, dict(
        type=float, metavar="X", help="absolute tolerance (default 1e-6)")),
    Option("rtol", "rtol", "tolerance", "value", RUNS_MODEL, dict(
        type=float, metavar="X",
        help="relative tolerance, of the tensor's max |value| (default: 10x the measured noise floor, at least 1e-6; "
             "explain and lint --confirm: 1e-4)")),
    Option("exact", "exact", "tolerance", "switch", RUNS_MODEL, dict(
        action="store_true", help="no tolerance: any difference counts")),
    Option("skip-bad-images", "skip_bad_images", "images", "switch", RUNS_MODEL, dict(
        action="store_true",
        help="skip unreadable --images (and fix's --calibrate) files with one warning line instead of stopping")),
    Option("allow-op", "allow_ops", "safety", "repeat", EVERY_COMMAND, dict(
        action="append", metavar="OP",
        help="run a graph holding OP, a file, Python or network op batchcheck refuses (repeatable). RISK: the "
             "graph may then read, write or send data as you; only for a graph you have read")),
    Option("timeout", "timeout", "safety", "value", RUNS_MODEL, dict(
        type=parse_seconds, default=DEFAULT_TIMEOUT, metavar="SECONDS",
        help=f"stop a run of the model (check, explain, fix, lint --confirm) taking longer than this "
             f"(default {DEFAULT_TIMEOUT:g}; 0 = no limit)")),
    Option("max-memory", "max_memory", "safety", "value", RUNS_MODEL, dict(
        type=parse_size, metavar="SIZE",
        help="stop a run of the model using more memory than this, e.g. 4G or 50%% (default 80%% of the machine's "
             "memory; 0 = no limit)")),
)
OPTION_FLAGS = re.compile(r"--(" + "|".join(re.escape(o.flag) for o in OPTIONS) + r")\b")


def option_named(config_field: str) -> Option:
    """The option that sets `CheckConfig` field `config_field`."""
    return next(o for o in OPTIONS if o.field == config_field)


def add_check_options(addoption: Callable[..., Any], prefix: str = "", *, command: str,
                      group: Callable[[str], Callable[..., Any]] | None = None) -> None:
    """Add the options `command` honours as `--{prefix}{flag}` through `addoption` (argparse or pytest); with
    `group(title)` giving an `addoption` per help group, each option goes into its group."""
    for option in (o for o in OPTIONS if command in o.commands):
        add = group(option.group) if group else addoption
        add(option.flag_text(prefix), dest=option.dest(prefix), **option.kwargs)


def argparse_groups(parser: argparse.ArgumentParser) -> Callable[[str], Callable[..., Any]]:
    """`group(title)` for `add_check_options`: one argparse argument group per title, made once."""
    groups: dict[str, Any] = {}

    def group(title: str) -> Callable[..., Any]:
        if title not in groups:
            groups[title] = parser.add_argument_group(title)
        return groups[title].add_argument
    return group


def config_from_options(get: Callable[[str], Any], prefix: str = "") -> CheckConfig:
    """Build a `CheckConfig` from parsed options (`get(dest)` reads one value); an invalid value is a
    `UsageError` naming the flag as the user spells it (`--graph-trials 0: …` under pytest)."""
    values = {o.field: o.to_config(get(o.dest(prefix))) for o in OPTIONS}
    try:
        return CheckConfig(**{name: value for name, value in values.items() if value is not None})
    except InvalidOption as exc:
        option = option_named(exc.field)
        spelled = " ".join(filter(None, (option.flag_text(), option.typed(exc.value))))
        raise UsageError(with_prefix(f"{spelled}: {exc.reason}", prefix)) from None


def option_args(config: CheckConfig, prefix: str = "") -> list[str]:
    """The command-line words that give `config` (defaults left out, the seed always given)."""
    default = CheckConfig()
    words: list[str] = []
    for option in OPTIONS:
        value = getattr(config, option.field)
        if value != getattr(default, option.field) or option.field == "seed":
            words += option.to_args(value, prefix)
    return words


def with_prefix(text: str, prefix: str) -> str:
    """`text` with the CLI's flags (`--feed`) spelled as under `prefix` (`--graph-feed`)."""
    return OPTION_FLAGS.sub(lambda m: f"--{prefix}{m.group(1)}", text) if prefix else text


assert {o.field for o in OPTIONS} == {f.name for f in fields(CheckConfig)}, "every CheckConfig field has an option"
