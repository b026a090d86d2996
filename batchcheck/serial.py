"""One serialiser for every command's result: dataclass values to the JSON report, and back.

Every command's result (`check`, `lint`, `explain`, `inspect`, `fix`) is a dataclass deriving from `Report`:
`to_dict()` gives the report as plain values with `"schema"` first (enums as their strings, paths as text,
non-finite figures as the strings "inf", "-inf", "nan"); `to_json()` the strict JSON text; `from_dict()` the typed
value back from a report, so that pages, summaries and baselines read typed values. Keys are the contract users'
CI reads: they are only ever added; `SCHEMA` changes only when a key changes meaning.
"""
from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

SCHEMA = 1
T = TypeVar("T", bound="Report")


class Report:
    """The base of every command's result (a dataclass): one serialisation, and its inverse."""

    def report_keys(self) -> dict[str, Any]:
        """Keys the report has besides the fields (computed: e.g. lint's `verdict`)."""
        return {}

    def to_dict(self) -> dict[str, Any]:
        """The JSON report as plain values."""
        return {"schema": SCHEMA, **plain(self.report_keys()), **plain(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"

    def write_json(self, path: Path) -> None:
        Path(path).write_text(self.to_json())

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any]) -> T:
        """The typed result of a report (`to_dict()` or a saved `--json`); keys it does not know are ignored."""
        return typed(cls, data)


def plain(value: Any) -> Any:
    """`value` as JSON values: dataclasses as dicts, enums as their values, paths as text, numpy scalars and arrays
    as numbers and lists, non-finite floats as strings."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return plain(value.value)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):  # numpy scalars and arrays
        return plain(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def typed(hint: Any, value: Any) -> Any:
    """`value` (plain JSON) as the type `hint` says: dataclasses from dicts (by field name), enums, floats from
    "inf"/"nan" strings, lists, tuples and dicts of those."""
    if value is None:
        return None
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        return typed(options[0], value) if len(options) == 1 else value
    if dataclasses.is_dataclass(hint):
        hints = typing.get_type_hints(hint)
        known = {f.name for f in dataclasses.fields(hint) if f.init}
        return hint(**{name: typed(hints[name], v) for name, v in value.items() if name in known})
    if isinstance(hint, type) and issubclass(hint, Enum):
        return hint(value)
    if hint is float:
        return float(value)
    if origin in (list, set, frozenset):
        return origin(typed(args[0] if args else Any, v) for v in value)
    if origin is tuple:
        item = args[0] if args else Any
        return tuple(typed(item, v) for v in value)
    if origin is dict:
        key, item = args if args else (Any, Any)
        return {typed(key, k): typed(item, v) for k, v in value.items()}
    if hint is int and isinstance(value, str):
        return int(value)
    return value
