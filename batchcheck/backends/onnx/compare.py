"""The in-graph comparison of watched tensors with the probe's cached solo rows, as ONNX nodes appended to a copy
of the model (the ONNX counterpart of `backends/tf/compare.py`).

Each watched tensor contributes a few nodes: its probe rows at the fed `positions` (a Gather on its batch axis; the
whole tensor once per position where it has none), cast to its comparison dtype, flattened to `[positions, values]`.
Consecutive small tensors of one comparison dtype are joined into chunks (a large one is a chunk of its own), each
compared as one vector: `rows - solo` (the probe's solo rows fed back; a zero when the probe itself runs, giving each
tensor's scale) reduced per tensor to the largest `|rows - solo|`, and the rows at the fed `kept` indices returned
(the probe's own, once). onnxruntime's ReduceMax does not always propagate a NaN, so each chunk also says whether a
NaN or an infinity made its maxima unsure; an exact, NaN-aware variant (`exact=True`) is built only when one turns up.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from . import lite

FLOAT, DOUBLE, INT64 = 1, 11, 7  # TensorProto data types
DOUBLE_DTYPES = frozenset({"float64", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"})
FLOAT_DTYPES = frozenset({"float32", "float16", "bfloat16", "bool"})
CHUNK_VALUES = 1 << 20  # values per image in one chunk: bounds the temporaries of its elementwise ops
CHUNK_TENSORS = 64
ALONE_VALUES = 1 << 16  # values per image from which a tensor is a chunk of its own


def comparison_type(dtype: str) -> int | None:
    """The TensorProto type a tensor of `dtype` is compared in (subtraction and max exact enough), or None."""
    return DOUBLE if dtype in DOUBLE_DTYPES else FLOAT if dtype in FLOAT_DTYPES else None


@dataclass(frozen=True)
class Watched:
    """One compared tensor as the comparison sees it: its ONNX value, dtype, rank, batch axis and probe size."""
    value: str
    dtype: str
    rank: int
    axis: int | None
    size: int


@dataclass
class Chunk:
    """Consecutive watched tensors of one comparison type: `targets` (indices into the runner's targets) with
    their probe sizes; the names of its solo input and of its kept rows."""
    targets: list[int]
    sizes: list[int]
    compared_as: int
    solo: str
    kept: str = ""

    def finite_scales(self, rows: np.ndarray) -> np.ndarray:
        """Each tensor's max |value| over its finite values, from the probe's `rows` ([1, values])."""
        starts = np.cumsum([0, *self.sizes])
        values = np.abs(rows[0].astype(np.float64)).reshape(-1)
        return np.array([values[a:b][np.isfinite(values[a:b])].max(initial=0.0)
                         for a, b in zip(starts[:-1], starts[1:])])


@dataclass(frozen=True)
class Outputs:
    """What a comparison model answers: `diffs`, every watched tensor's maxima chunk after chunk ([1, tensors],
    float64); `unsure`, per chunk a number that is not finite where a NaN or an infinity made its maxima unsure
    (none in the exact variant); and the chunks, with their solo inputs and kept rows."""
    chunks: list[Chunk]
    diffs: str
    unsure: str | None


def chunked(indices: list[int], watched: list[Watched]) -> list[list[int]]:
    """`indices` split into runs of one comparison type holding at most CHUNK_TENSORS tensors and CHUNK_VALUES
    values; a tensor of ALONE_VALUES values or more is a chunk of its own (its rows are compared where they are,
    not copied into a joined vector first)."""
    runs: dict[int, list[list[int]]] = {}
    filled: dict[int, int] = {}  # values in the open run of each type; CHUNK_VALUES when it is closed
    for index in indices:
        kind, size = comparison_type(watched[index].dtype), watched[index].size
        alone = size >= ALONE_VALUES
        full = kind in runs and (alone or filled[kind] + size > CHUNK_VALUES or len(runs[kind][-1]) == CHUNK_TENSORS)
        if kind not in runs or full:
            runs.setdefault(kind, []).append([])
            filled[kind] = 0
        runs[kind][-1].append(index)
        filled[kind] = CHUNK_VALUES if alone else filled[kind] + size
    return [run for kind_runs in runs.values() for run in kind_runs]


class Stamps:
    """Nodes and initializers appended to a model, named under `prefix` (a name no value of the model starts
    with); ops whose signature changed across opsets are written for the model's own opset."""

    def __init__(self, prefix: str, opset: int) -> None:
        self.prefix, self.opset = prefix, opset
        self.nodes: list = []
        self.initializers: list = []
        self.inputs: list = []
        self.outputs: list[str] = []
        self._constants: dict[tuple, str] = {}

    def op(self, op_type: str, inputs: list[str], outputs: int = 1, **attrs) -> str | list[str]:
        name = f"{self.prefix}{len(self.nodes)}/{op_type}"
        names = [name] if outputs == 1 else [f"{name}:{i}" for i in range(outputs)]
        self.nodes.append(lite.node(op_type, inputs, names, name=name, **attrs))
        return names[0] if outputs == 1 else names

    def constant(self, values, dtype=np.int64) -> str:
        """A shared initializer holding `values`."""
        array = np.asarray(values, dtype=dtype)
        key = (array.dtype.str, array.shape, array.tobytes())
        if key not in self._constants:
            name = f"{self.prefix}const_{len(self._constants)}"
            self.initializers.append(lite.tensor(array, name))
            self._constants[key] = name
        return self._constants[key]

    def input(self, name: str, elem_type: int, shape: list) -> str:
        self.inputs.append(lite.value_info(f"{self.prefix}{name}", elem_type, shape))
        return f"{self.prefix}{name}"

    def output(self, value: str) -> str:
        self.outputs.append(value)
        return value

    def reduce(self, op: str, x: str, axes: list[int], keep: bool = False) -> str:
        """`op` (ReduceMax, ReduceMin) over `axes` of `x`."""
        if self.opset >= 18:
            return self.op(op, [x, self.constant(axes)], keepdims=int(keep))
        return self.op(op, [x], axes=axes, keepdims=int(keep))

    def joined(self, values: list[str]) -> str:
        """`values` ([1, n] each) side by side."""
        return values[0] if len(values) == 1 else self.op("Concat", values, axis=1)

    def split(self, x: str, sizes: list[int], axis: int) -> list[str]:
        if self.opset >= 13:
            return self.op("Split", [x, self.constant(sizes)], outputs=len(sizes), axis=axis)
        return self.op("Split", [x], outputs=len(sizes), axis=axis, split=sizes)

    # -- comparisons ---------------------------------------------------------------------------------

    def rows(self, watched: Watched, positions: str, zeros: str) -> str:
        """The probe's rows of one tensor at `positions`, as `[positions, values]` in its comparison type."""
        if watched.axis is None:  # no batch axis: the whole tensor, once per position
            rows = self.op("Gather", [self.op("Reshape", [watched.value, self.constant([1, -1])]), zeros], axis=0)
        else:
            rows = self.op("Gather", [watched.value, positions], axis=watched.axis)
            if watched.axis:
                axes = range(watched.rank)
                rows = self.op("Transpose", [rows], perm=[watched.axis, *(a for a in axes if a != watched.axis)])
        kind = comparison_type(watched.dtype)
        if watched.dtype != ("float32" if kind == FLOAT else "float64"):
            rows = self.op("Cast", [rows], to=kind)
        return self.op("Reshape", [rows, self.constant([-1, watched.size])])

    def compare(self, chunk: Chunk, rows: list[str], kept: str, *, exact: bool) -> list[str]:
        """`chunk`'s comparison of its tensors' `rows` with its solo input, each part [1, n]: per tensor the largest
        and the smallest difference and the chunk's sum of differences (the exact variant: NaN-aware maxima only);
        the kept rows are an output of their own."""
        joined = rows[0] if len(rows) == 1 else self.op("Concat", rows, axis=1)
        solo = chunk.solo
        difference = self.op("Sub", [joined, solo])
        if exact:
            float_type = np.float32 if chunk.compared_as == FLOAT else np.float64
            nan_rows, nan_solo = self.op("IsNaN", [joined]), self.op("IsNaN", [solo])
            differ = self.op("Or", [self.op("Less", [joined, solo]), self.op("Greater", [joined, solo])])
            equal = self.op("Not", [self.op("Or", [differ, self.op("Or", [nan_rows, nan_solo])])])
            same = self.op("Or", [equal, self.op("And", [nan_rows, nan_solo])])
            diff = self.op("Where", [same, self.constant(0.0, float_type), self.op("Abs", [difference])])
            diff = self.op("Where", [self.op("IsNaN", [diff]), self.constant(np.inf, float_type), diff])
            return self._per_tensor(diff, chunk.sizes, ["ReduceMax"])
        chunk.kept = self.output(self.op("Gather", [joined, kept], axis=0))
        # max |difference| as max(max, -min): the difference is read twice instead of |difference| written and read;
        # a NaN or an infinity anywhere makes the sum so (the maxima may have skipped it)
        return [*self._per_tensor(difference, chunk.sizes, ["ReduceMax", "ReduceMin"]),
                self.op("ReduceSum", [difference], keepdims=1)]

    def _per_tensor(self, values: str, sizes: list[int], reductions: list[str]) -> list[str]:
        """Each of `reductions` over each tensor's stretch of `values` ([positions, sum of sizes]) and every
        position, as [1, tensors]: one tensor's whole; a run of tensors of one size as one [positions, count, size]
        block, so a chain of equal layers costs one reduction (over its last axis, then its first: onnxruntime
        reduces axes 0 and 2 at once several times slower)."""
        if len(sizes) == 1:
            return [self.op(op, [values], keepdims=1) for op in reductions]
        runs = [(size, len(list(group))) for size, group in itertools.groupby(sizes)]
        parts = self.split(values, [size * count for size, count in runs], 1) if len(runs) > 1 else [values]
        blocks = [self.op("Reshape", [part, self.constant([-1, count, size])])
                  for part, (size, count) in zip(parts, runs)]
        return [self.joined([self.reduce(op, self.reduce(op, block, [2]), [0], keep=True) for block in blocks])
                for op in reductions]


def comparison_model(base, watched: list[Watched], chunks: list[list[int]], prefix: str, opset: int,
                     exact: bool = False):
    """`base` (holding the nodes the watched values need) with the comparisons of `chunks` (lists of indices into
    `watched`) appended, the comparisons' outputs as its only outputs; and those `Outputs`."""
    stamps = Stamps(prefix, opset)
    positions = stamps.input("positions", INT64, ["positions"])
    kept = stamps.input("kept", INT64, ["kept"])
    zeros = stamps.op("Sub", [positions, positions])
    made, parts = [], []
    for number, members in enumerate(chunks):
        compared_as = comparison_type(watched[members[0]].dtype)
        chunk = Chunk(members, [watched[i].size for i in members], compared_as,
                      stamps.input(f"solo_{number}", compared_as, [1, f"values_{number}"]))
        parts.append(stamps.compare(chunk, [stamps.rows(watched[i], positions, zeros) for i in members], kept,
                                    exact=exact))
        made.append(chunk)
    diffs, unsure = [], []
    for _, group in itertools.groupby(zip(made, parts), key=lambda pair: pair[0].compared_as):
        columns = list(zip(*(part for _, part in group)))  # each part's pieces, side by side over the group
        if exact:
            diffs.append(stamps.op("Cast", [stamps.joined(list(columns[0]))], to=DOUBLE))
            continue
        largest, smallest, sums = (stamps.joined(list(column)) for column in columns)
        diffs.append(stamps.op("Cast", [stamps.op("Max", [largest, stamps.op("Neg", [smallest])])], to=DOUBLE))
        unsure.append(stamps.op("Cast", [sums], to=DOUBLE))
    outputs = Outputs(made, stamps.output(stamps.joined(diffs)),
                      stamps.output(stamps.joined(unsure)) if unsure else None)
    model = type(base)()
    model.CopyFrom(base)
    graph = model.graph
    graph.node.extend(stamps.nodes)
    graph.initializer.extend(stamps.initializers)
    graph.input.extend(stamps.inputs)
    del graph.output[:]
    graph.output.extend(lite.value_info(name) for name in stamps.outputs)
    if not any(o.domain in ("", "ai.onnx") for o in model.opset_import):
        model.opset_import.add(domain="", version=opset)
    return model, outputs
