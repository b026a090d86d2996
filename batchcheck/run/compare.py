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

from ..tfenv import import_tf

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
    stamped per tensor, so a row whose size differs from the probe's solo size fails at run time instead
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


def stamp(graph_def, template: list, index: int, values: int) -> None:
    """Add `template`'s nodes to `graph_def` for target `index` (prefixed `index/`) whose probe has
    `values` values; the shared `positions` input stays as it is."""
    tf = import_tf()
    flat = tf.make_tensor_proto([-1, values], tf.int32)
    for node in template:
        if node.name == "positions":
            continue
        copy = graph_def.node.add()
        copy.CopyFrom(node)
        copy.name = f"{index}/{node.name}"
        copy.input[:] = [_stamped(name, index) for name in node.input]
        if node.name == "flat":
            copy.attr["value"].tensor.CopyFrom(flat)


def _stamped(name: str, index: int) -> str:
    control = name.startswith("^")
    bare = name.lstrip("^")
    renamed = bare if bare.split(":")[0] == "positions" else f"{index}/{bare}"
    return f"^{renamed}" if control else renamed


@dataclass
class Chunk:
    """Consecutive compared tensors of one comparison dtype, compared as one vector.

    From a run of the probe alone (one position): `rows`, their probe rows joined (what `solo` is fed with
    later), and `scales`, each tensor's max |value|. From a batch: `diffs`, each tensor's max |rows - solo|
    over `positions`. Both take two passes over the values and give NaN where a NaN or an infinity makes
    them unsure; `exact_diffs()` and `finite_scales()` then settle it: equal infinities and NaN pairs count
    as equal, a NaN against a number as infinitely far, and scales are taken over the finite values."""
    targets: list[int]
    sizes: list[int]
    rows: object
    solo: object
    scales: object
    diffs: object
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


def build_chunk(rows: list, sizes: list[int], targets: list[int], name: str) -> Chunk:
    """A chunk over the `rows` tensors (`[positions, sizes[i]]` each, none empty) of `targets`."""
    tf = import_tf()
    with tf.name_scope(name):
        joined = tf.concat(rows, axis=1) if len(rows) > 1 else rows[0]
        solo = tf.compat.v1.placeholder(joined.dtype, [1, int(sum(sizes))], name="solo")
        scales = _per_tensor_max(tf.reshape(tf.abs(joined), [-1]), sizes)
        diffs = _per_tensor_max(tf.reduce_max(tf.abs(joined - solo), axis=0), sizes)  # TF's max propagates NaN
    return Chunk(targets, sizes, joined, solo, scales, diffs)


def _per_tensor_max(values, sizes: list[int]):
    """max of each tensor's stretch of the vector `values` (`sizes` long each), as float64. A run of
    tensors of one size is reduced as a matrix, so a chain of equal layers costs one reduction (a
    segment-max would be single-threaded and several times slower)."""
    tf = import_tf()
    runs = [(size, len(list(group))) for size, group in itertools.groupby(sizes)]
    parts = tf.split(values, [size * count for size, count in runs]) if len(runs) > 1 else [values]
    maxima = [tf.reduce_max(tf.reshape(part, [count, size]), axis=1) for part, (size, count) in zip(parts, runs)]
    return tf.cast(tf.concat(maxima, axis=0) if len(maxima) > 1 else maxima[0], tf.float64)
