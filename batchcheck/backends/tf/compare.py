"""The in-graph comparison of watched tensors with the probe's cached solo values, vectorised.

Each compared tensor contributes a few stamped ops: its probe rows at `positions`, flattened to
`[positions, values]` in its comparison dtype (`rows_template`). Consecutive tensors of one dtype are then
joined into chunks of at most `CHUNK_TENSORS` tensors and `CHUNK_VALUES` values per image, each compared
as one vector (`Chunk`): the probe's solo values are fetched once and fed back, and |rows - solo| is
reduced per tensor (NaN-aware only where a NaN turns up). A graph of thousands of tensors thus costs
thousands of small ops, not tens of thousands, which keeps grappler's compile time and the executor's
per-run cost down.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from .env import import_tf

CHUNK_VALUES = 1 << 20  # values per image in one chunk: bounds the temporaries of its elementwise ops
CHUNK_TENSORS = 64  # tensors in one chunk: grappler's time grows faster than linearly with a Concat's inputs


def comparison_dtype(dtype):
    """The dtype a tensor is compared in (subtraction and max make sense, exactly enough), or None."""
    tf = import_tf()
    if dtype.is_complex or dtype == tf.string or not dtype.is_numpy_compatible:
        return None
    if dtype == tf.float64 or dtype.is_integer:
        return tf.float64
    return tf.float32  # float32, float16, bfloat16, bool


def rows_template(dtype, rank: int, axis: int | None, blocks: int = 0) -> list:
    """NodeDefs turning one tensor `value` into the probe's rows at `positions`, as `rows`
    `[len(positions), values per image]` in its comparison dtype. The `flat` Const (`[-1, values]`) is
    set per tensor, so a row whose size differs from the probe's solo size fails at run time instead
    of broadcasting. With `blocks` the batch is folded with that many spatial blocks (SpaceToBatchND): the
    probe's rows are b * batch + position for each block b."""
    tf = import_tf()
    graph = tf.Graph()
    with graph.as_default():
        value = tf.compat.v1.placeholder(dtype, [None] * rank, name="value")
        positions = tf.compat.v1.placeholder(tf.int32, [None], name="positions")
        flat = tf.constant([-1, 1], tf.int32, name="flat")
        if blocks:
            batch = tf.shape(value, out_type=tf.int32)[0] // blocks
            rows = tf.gather(value, positions[:, None] + batch * tf.range(blocks)[None, :], axis=0)
        elif axis is None:  # no batch axis: the whole tensor, once per position
            rows = tf.gather(tf.reshape(value, [1, -1]), tf.zeros_like(positions), axis=0)
        else:
            rows = tf.gather(value, positions, axis=axis)
            if axis:
                rows = tf.transpose(rows, [axis, *range(axis), *range(axis + 1, rank)])
        target = comparison_dtype(tf.as_dtype(dtype))
        if rows.dtype != target:
            rows = tf.cast(rows, target)
        tf.reshape(rows, flat, name="rows")
    return list(graph.as_graph_def().node)


class RowStamps:
    """Every target's rows as NodeDefs in one GraphDef, stamped from one template per (dtype, rank,
    axis, blocks) under `INDEX/`: only the ops are per target; Consts are shared (`flat` by size), which
    halves the nodes a common tensor costs (a gather and a reshape)."""

    def __init__(self) -> None:
        tf = import_tf()
        self.graph_def = tf.compat.v1.GraphDef()
        self._templates: dict[tuple, list] = {}
        self._made: set[str] = set()  # shared Consts already in graph_def

    def add(self, index: int, key: tuple, values: int) -> None:
        """Stamp target `index` (`key`: dtype, rank, batch axis, blocks) whose probe has `values` values:
        its rows `INDEX/rows` from the inputs `INDEX/value` and `positions` (not in the GraphDef: the
        import maps them onto graph tensors)."""
        tf = import_tf()
        if key not in self._templates:
            self._templates[key] = rows_template(*key)
        template = list(self._templates).index(key)
        names = {node.name: ("positions" if node.name == "positions" else
                             f"shared/flat_{values}" if node.name == "flat" else
                             f"shared/{template}/{node.name}" if node.op == "Const" else
                             f"{index}/{node.name}") for node in self._templates[key]}
        for node in self._templates[key]:
            name = names[node.name]
            if node.op == "Placeholder" or name in self._made:  # inputs are mapped at import, not made
                continue
            copy = self.graph_def.node.add()
            copy.CopyFrom(node)
            copy.name = name
            copy.input[:] = [_renamed(raw, names) for raw in node.input]
            if node.name == "flat":
                copy.attr["value"].tensor.CopyFrom(tf.make_tensor_proto([-1, values], tf.int32))
            if node.op == "Const":
                self._made.add(name)


def _renamed(raw: str, names: dict[str, str]) -> str:
    """A NodeDef input (`^node`, `node`, `node:1`) with its node renamed."""
    control, bare = raw.startswith("^"), raw.lstrip("^")
    node, colon, port = bare.partition(":")
    return f"{'^' if control else ''}{names[node]}{colon}{port}"


@dataclass
class Chunk:
    """Consecutive compared tensors of one comparison dtype, compared as one vector.

    `rows` are the tensors' rows at `positions`, joined; `diffs` each tensor's max |rows - solo| over them;
    `kept` the rows at the fed indices `kept` (none for a batch). The probe alone, with `solo` fed a zero
    (`[1, 1]`, broadcast) and its row kept, gives its rows (what `solo` is fed later) and, as `diffs`,
    each tensor's max |value|: one callable serves both runs.

    `diffs` give NaN where a NaN or an infinity makes them unsure; `exact_diffs()` and `finite_scales()`
    then settle it: equal infinities and NaN pairs count as equal, a NaN against a number as infinitely
    far, and scales are taken over the finite values."""
    targets: list[int]
    sizes: list[int]
    rows: object
    solo: object
    diffs: object
    kept: object
    _exact_diffs: object = None

    def finite_scales(self, scales: np.ndarray, solo: np.ndarray) -> np.ndarray:
        """`scales` with the unsure ones (not finite) taken again over the finite values of `solo`."""
        starts = np.cumsum([0, *self.sizes])
        for j in np.flatnonzero(~np.isfinite(scales)):
            values = np.abs(solo[0, starts[j]:starts[j + 1]].astype(np.float64))
            scales[j] = values[np.isfinite(values)].max(initial=0.0)
        return scales

    def exact_diffs(self):
        """The NaN-aware `diffs`, built into the graph the first time a NaN turns up."""
        if self._exact_diffs is None:
            tf = import_tf()
            joined, solo = self.rows, self.solo
            with joined.graph.as_default(), tf.name_scope(solo.op.name.rpartition("/")[0] + "/exact/"):
                diff = tf.abs(joined - solo)
                both_nan = tf.logical_and(tf.math.is_nan(joined), tf.math.is_nan(solo))
                diff = tf.where(tf.logical_or(tf.equal(joined, solo), both_nan), tf.zeros_like(diff), diff)
                diff = tf.where(tf.math.is_nan(diff), tf.fill(tf.shape(diff), tf.constant(np.inf, diff.dtype)), diff)
                self._exact_diffs = _per_tensor_max(tf.reduce_max(diff, axis=0), self.sizes)
        return self._exact_diffs


def build_chunk(rows: list, sizes: list[int], targets: list[int], kept, name: str) -> Chunk:
    """A chunk over the `rows` tensors (`[positions, sizes[i]]` each, none empty) of `targets`; `kept`
    is the shared placeholder of the row indices to return."""
    tf = import_tf()
    with tf.name_scope(name):
        joined = tf.concat(rows, axis=1) if len(rows) > 1 else rows[0]
        solo = tf.compat.v1.placeholder(joined.dtype, [1, None], name="solo")  # [1, 1]: zero, broadcast
        diffs = _per_tensor_max(tf.reduce_max(tf.abs(joined - solo), axis=0), sizes)  # TF's max propagates NaN
        return Chunk(targets, sizes, joined, solo, diffs, tf.gather(joined, kept))


def _per_tensor_max(values, sizes: list[int]):
    """max of each tensor's stretch of the vector `values` (`sizes` long each), as float64. A run of
    tensors of one size is reduced as a matrix, so a chain of equal layers costs one reduction (a
    segment-max would be single-threaded and several times slower)."""
    tf = import_tf()
    runs = [(size, len(list(group))) for size, group in itertools.groupby(sizes)]
    parts = tf.split(values, [size * count for size, count in runs]) if len(runs) > 1 else [values]
    maxima = [tf.reduce_max(tf.reshape(part, [count, size]), axis=1) for part, (size, count) in zip(parts, runs)]
    return tf.cast(tf.concat(maxima, axis=0) if len(maxima) > 1 else maxima[0], tf.float64)
