"""Runner: import the prepared graph once and compare activations inside TensorFlow.

The probe's solo activations are fetched once (its rows of every watched tensor, one image's worth) and
fed back; a batched run then slices the probe's row out of every watched tensor and reduces
|row - solo| to one number per tensor in-graph, so only a vector of maxima leaves the session.

Two watch sets share one import: `detail` (every comparable tensor) and `screen` (fusion boundaries
only, so grappler still fuses Conv+BN+activation and a trial costs little more than the forward pass).
A screened divergence is localised by re-running the same batch in detail. Each watch set compiles one
callable, run both on the probe alone (fetching its rows) and on batches. Screened runs are compiled
with grappler; analysis and detail runs without it (every tensor is consumed there, so grappler could
fuse nothing, and its compile time grows faster than the graph).
"""
from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from ..errors import BatchcheckBug, OutOfMemory, UsageError, first_line, op_error_text
from ..graph.index import (
    SKIPPED_OPS,
    GraphIndex,
    dead_nodes,
    is_fusion_boundary,
    loop_frame_nodes,
    switch_predicates,
    value_kinds,
)
from ..load.prepare import PreparedModel
from ..result import Mode
from ..safety.supervise import out_of_memory_at
from ..tfenv import import_tf
from .compare import CHUNK_TENSORS, CHUNK_VALUES, Chunk, RowStamps, build_chunk, comparison_dtype

# How many leading outputs of these ops carry values worth comparing: FusedBatchNorm outputs past
# y/batch_mean/batch_variance are kernel scratch space; a Switch only forwards its input (and one of
# its outputs is always dead); Merge's second output is the branch index.
COMPARED_OUTPUTS = {"FusedBatchNorm": 3, "FusedBatchNormV2": 3, "FusedBatchNormV3": 3,
                    "Switch": 0, "RefSwitch": 0, "Merge": 1, "RefMerge": 1}
MAX_LIMIT_SEARCH = 32


@dataclass(frozen=True)
class Target:
    """One tensor the runner compares."""
    tensor: str
    node: str
    op: str
    batch_axis: int | None  # None: compared as a whole (no batch axis)
    boundary: bool          # watched on screened trials too
    blocks: int = 0         # > 0: the batch is folded with this many spatial blocks (SpaceToBatchND)


@dataclass(frozen=True)
class SoloRun:
    """The probe known as `key` run alone as `mode` runs it: its rows per chunk and each watched tensor's scale."""
    key: object
    mode: Mode
    rows: list[np.ndarray]
    scales: np.ndarray  # max |value| over the finite values, in watched order


@dataclass(frozen=True)
class BatchLimit:
    """A node that cannot run with a batch (e.g. a Reshape to a hard-coded [1, N]): nothing after it is tested."""
    node: str
    op: str
    reason: str
    tensors_beyond: int


class GraphRunner:
    """One imported graph and session; compares tensors between a solo and a batched run."""

    def __init__(self, prepared: PreparedModel) -> None:
        tf = self.tf = import_tf()
        self.prepared = prepared
        self.index: GraphIndex = prepared.index or GraphIndex(prepared.graph_def)
        self.graph = tf.Graph()
        with self.graph.as_default():
            try:
                tf.graph_util.import_graph_def(prepared.graph_def, name="")
            except (ValueError, tf.errors.OpError) as exc:
                shape = ",".join(map(str, prepared.input.per_image_shape))
                raise UsageError(f"model `{prepared.path}`: TensorFlow cannot import the graph with input "
                                 f"`{prepared.input.node}` of per-image shape {shape} ({first_line(exc)}); "
                                 f"check --input-shape") from None
        # Grappler in one pass, without its memory optimizer (GPU swapping and gradient recomputation) and,
        # with no GPU, without its layout optimizer (it converts layouts for GPUs): the same fused kernels,
        # in less than half the compile time (10k-node chain: 2.1 s -> 0.7 s).
        optimised = tf.compat.v1.ConfigProto()
        rewrites = optimised.graph_options.rewrite_options
        rewrites.meta_optimizer_iterations = rewrites.ONE
        rewrites.memory_optimization = rewrites.NO_MEM_OPT
        if not tf.config.list_physical_devices("GPU"):
            rewrites.layout_optimizer = rewrites.OFF
        self.session = tf.compat.v1.Session(graph=self.graph, config=optimised)
        # Analysis runs the graph as written: grappler would fold shapes (and may drop a Reshape that
        # hard-codes the batch), hiding batch limits that the graph itself has.
        literal = tf.compat.v1.ConfigProto()
        literal.graph_options.rewrite_options.disable_meta_optimizer = True
        self.literal_session = tf.compat.v1.Session(graph=self.graph, config=literal)
        self.input = self.graph.get_tensor_by_name(prepared.input.tensor)
        self.feeds = {self.graph.get_tensor_by_name(n): v for n, v in prepared.feeds.items()}
        with self.graph.as_default():
            self.positions = tf.compat.v1.placeholder(tf.int32, [None], name=self._scope("positions"))
            # the rows a run returns: [0] for the probe alone, none for a batch (whose rows then need not
            # outlive their comparison)
            self.kept = tf.compat.v1.placeholder(tf.int32, [None], name=self._scope("kept"))
        self._callables: dict[object, object] = {}  # per key (a mode, or what a run fetches), its compiled run
        self._shape_of: dict[str, object] = {}  # tensor name -> its Shape op's output
        self.targets: list[Target] = []
        self.limits: list[BatchLimit] = []
        self.excluded: dict[str, str] = {}  # tensor -> why it is not compared
        self.dead: set[str] = set()
        self._chunks: dict[Mode, list[Chunk]] = {}  # per watch set, the chunks compared
        self.ranks: dict[str, int] = {}
        self.watched: dict[str, list[int]] = {}  # per mode, the targets compare() answers for
        self._order: dict[str, np.ndarray] = {}  # per mode, fetched values -> watched order
        self.cached: SoloRun | None = None  # the probe run alone that compares are against
        self.fixed_batch: int | None = None  # the one batch size the graph runs at, when nothing runs alone

    # -- running ---------------------------------------------------------------------------------

    def _scope(self, name: str) -> str:
        return self.graph.unique_name(f"batchcheck/{name}", mark_as_used=False)

    def _run(self, key: object, fetches, batch: np.ndarray, positions=(0,), literal: bool = False, fed=(),
             trace=None):
        """Run `fetches`, compiled once per `key`, on `batch`, feeding the pairs `fed` too; `literal` runs
        without grappler; `trace` (a RunMetadata) gets the run's step stats. A graph that runs at one batch
        size only gets `batch` filled up with copies of the probe (the first position)."""
        if self.fixed_batch and len(batch) < self.fixed_batch:
            probe = batch[positions[0]:positions[0] + 1]
            batch = np.concatenate([batch, np.repeat(probe, self.fixed_batch - len(batch), axis=0)])
        if key not in self._callables:
            session = self.literal_session if literal else self.session
            feed_list = [self.input, self.positions, *self.feeds, *(tensor for tensor, _ in fed)]
            self._callables[key] = session.make_callable(fetches, feed_list=feed_list, accept_options=trace is not None)
        values = (batch, positions, *self.feeds.values(), *(value for _, value in fed))
        if trace is None:
            return self._callables[key](*values)
        options = self.tf.compat.v1.RunOptions(trace_level=self.tf.compat.v1.RunOptions.SOFTWARE_TRACE)
        return self._callables[key](*values, options=options, run_metadata=trace)

    def _run_checked(self, key: object, fetches, batch: np.ndarray, positions=(0,), literal: bool = False, fed=()):
        """`_run`, a failure reported as the model failing on this batch."""
        try:
            return self._run(key, fetches, batch, positions, literal, fed)
        except self.tf.errors.ResourceExhaustedError as exc:  # out of memory: fatal, whatever the batch
            raise OutOfMemory(out_of_memory_at(self.prepared.path, self._failing_node(exc), len(batch),
                                               op_error_text(exc))) from None
        except self.tf.errors.OpError as exc:
            node = self._failing_node(exc)
            raise UsageError(f"model `{self.prepared.path}`: fails on a batch of {len(batch)}"
                             f"{f' at node `{node}`' if node else ''} ({op_error_text(exc)}); "
                             f"check --input-shape and --feed, or name an earlier --output") from None

    def forward(self, batch: np.ndarray, outputs: list[str]) -> list[np.ndarray]:
        """The tensors `outputs` for `batch` (a plain forward pass)."""
        tensors = [self.graph.get_tensor_by_name(name) for name in outputs]
        return self._run_checked(f"forward:{','.join(outputs)}", tensors, batch)

    def close(self) -> None:
        """Release the session: the imported graph and the cached activations."""
        self.session.close()
        self.literal_session.close()

    # -- analysis --------------------------------------------------------------------------------

    def analyse(self, one: np.ndarray, two: np.ndarray) -> None:
        """Find live branches, batch limits and each tensor's batch axis, then build the comparisons.

        `one` is a batch of one image, `two` a batch of two different images.
        """
        self.dead = self._dead_branches(one)
        candidates = self._candidates()
        # A node failing alone (a Reshape to a hard-coded batch of 12) is a batch limit like one failing
        # in a batch: what runs before it is compared.
        solo_shapes = self._shapes(candidates, one)
        shipped = self.prepared.input.shipped_batch
        if not solo_shapes and self.limits and shipped and shipped > 1:
            self._fix_batch(shipped)
            solo_shapes = self._shapes(candidates, one)
        pair_shapes = solo_shapes if self.fixed_batch else self._shapes(list(solo_shapes), two)
        in_blocks = self.index.descendants(n for n, info in self.index.nodes.items() if info.op == "SpaceToBatchND")
        for tensor in pair_shapes:
            solo, pair = solo_shapes[tensor], pair_shapes[tensor]
            axis, blocks = _batch_axis(solo, pair) if not self.fixed_batch else _fixed_axis(solo, shipped), 0
            node = tensor.split(":")[0]
            if not np.prod(solo):
                self.excluded[tensor] = f"holds no values: shape {list(solo)} alone"
                continue
            if axis == "folded" and node in in_blocks and solo[1:] == pair[1:] and pair[0] == 2 * solo[0]:
                axis, blocks = 0, solo[0]  # row b * batch + n holds block b of image n
            elif axis == "folded":  # the batch mixed with other axes some other way; what unfolds it is compared
                self.excluded[tensor] = (f"shape mixes the batch with other axes: {list(pair)} in a batch of "
                                         f"{self.fixed_batch}" if self.fixed_batch else
                                         f"shape mixes the batch with other axes: {list(solo)} "
                                         f"alone, {list(pair)} in a batch of 2")
                continue
            boundary = (is_fusion_boundary(self.index, node, int(tensor.split(":")[1]))
                        or tensor in self.prepared.outputs)
            self.targets.append(Target(tensor, node, self.index.nodes[node].op, axis, boundary, blocks))
        if not self.targets:
            raise UsageError(f"model `{self.prepared.path}`: nothing beyond input `{self.prepared.input.node}` "
                             f"runs with a batch ({self._limit_summary()}); batch invariance cannot be tested")
        self.ranks = {t.tensor: len(solo_shapes[t.tensor]) for t in self.targets}
        # the probe's own row is cached: one image's worth even when its reference is a batch of copies
        self._build_comparisons({t.tensor: (1, *solo_shapes[t.tensor][1:]) if t.batch_axis == 0 and not t.blocks
                                 else solo_shapes[t.tensor] for t in self.targets})
        self._compile(one)

    def _compile(self, one: np.ndarray) -> None:
        """Compile both watch sets' callables at once: each runs `one` alone (keeping nothing) in a thread
        of its own. TF compiles outside the GIL, so grappler's compile of the screen overlaps the
        literal compile of the detail (10k-node chain: 2.9 s -> 2.0 s)."""
        with ThreadPoolExecutor(len(Mode)) as pool:
            list(pool.map(lambda mode: self._run_mode(mode, one, [0], [], self._zeros(mode)), Mode))

    def _fix_batch(self, size: int) -> None:
        """Nothing runs alone but the graph ships a batch of `size`: batches of that size are tested, the
        probe's reference being a batch of its own copies; the failures alone are no batch limits then."""
        node = self.limits[0].node
        self.fixed_batch = size
        self.limits.clear()
        self.excluded = {t: why for t, why in self.excluded.items() if not why.startswith("beyond batch limit")}
        self.prepared.notes.append(f"the graph runs only at its batch of {size} (`{node}` fails on one image): "
                                   f"each probe's reference is a batch of {size} copies of itself, every trial "
                                   f"a batch of {size}")

    def _limit_summary(self) -> str:
        return "; ".join(f"`{limit.node}` {limit.reason}" for limit in self.limits[:2]) or "no comparable tensor"

    def _dead_branches(self, one: np.ndarray) -> set[str]:
        """Nodes in untaken TF1 cond branches, from the predicates' values on one image."""
        predicates = switch_predicates(self.index)
        taken: dict[str, bool] = {}
        while True:
            dead = dead_nodes(self.index, taken)
            unresolved = [s for s in predicates if s not in taken and s not in dead]
            downstream = self.index.descendants(unresolved) - set(unresolved)
            ready = [s for s in unresolved if predicates[s].split(":")[0] not in downstream | dead]
            if not ready:
                return dead
            tensors = [self.graph.get_tensor_by_name(predicates[s]) for s in ready]
            values = self._run(f"predicates-{len(taken)}", tensors, one, literal=True)
            taken.update({s: bool(np.all(v)) for s, v in zip(ready, values)})

    def _candidates(self) -> list[str]:
        """Tensors worth comparing: they depend on the input's values or on randomness, are live,
        fetchable, and hold numbers."""
        kinds = value_kinds(self.index, self.prepared.input.node)
        in_loops = loop_frame_nodes(self.index)
        candidates = []
        for name in self.index.order:
            op = self.graph.get_operation_by_name(name)
            if (kinds[name] not in ("data", "random") or name == self.prepared.input.node or op.type in SKIPPED_OPS
                    or name in self.dead):
                continue
            for output in op.outputs[:COMPARED_OUTPUTS.get(op.type)]:
                if comparison_dtype(output.dtype) is None:
                    if output.dtype.is_complex:  # numbers, but not compared: say so (strings and handles are no data)
                        self.excluded[output.name] = f"{output.dtype.name} values are not compared"
                    continue
                if name in in_loops:
                    self.excluded[output.name] = ("inside a while loop's frame, not fetchable from outside it "
                                                  "(the loop's Exit outputs and what follows are compared)")
                else:
                    candidates.append(output.name)
        return candidates

    def _shapes(self, candidates: list[str], batch: np.ndarray) -> dict[str, tuple[int, ...]]:
        """Each candidate's shape on `batch`. Nodes that fail (e.g. a Reshape to a hard-coded batch of 1)
        become batch limits and are dropped with everything after them."""
        tf = self.tf
        alive = list(candidates)
        for attempt in range(MAX_LIMIT_SEARCH):
            try:
                return self._traced_shapes(alive, batch)
            except tf.errors.ResourceExhaustedError as exc:  # out of memory is no batch limit: fatal
                raise OutOfMemory(out_of_memory_at(self.prepared.path, self._failing_node(exc), len(batch),
                                                   op_error_text(exc))) from None
            except tf.errors.OpError as exc:
                node = self._failing_node(exc)
                if node is None:
                    raise UsageError(f"model `{self.prepared.path}`: fails on a batch of {len(batch)}"
                                     f"{f' at node `{node}`' if node else ''} ({op_error_text(exc)}); "
                                     f"check --input, --input-shape and --feed") from None
                beyond = self.index.descendants([node])
                lost = [t for t in alive if t.split(":")[0] in beyond]
                for tensor in lost:
                    self.excluded[tensor] = f"beyond batch limit `{node}`"
                alive = [t for t in alive if t not in set(lost)]
                self.limits.append(BatchLimit(node, self.index.nodes[node].op,
                                              f"fails on a batch of {len(batch)}: {op_error_text(exc)}",
                                              len(lost)))
        raise BatchcheckBug(f"more than {MAX_LIMIT_SEARCH} batch limits; giving up the search")

    def _traced_shapes(self, tensors: list[str], batch: np.ndarray) -> dict[str, tuple[int, ...]]:
        """Each tensor's shape on `batch`, from the step stats of one traced run of their ops (they record
        every output's shape: no op is added per tensor). A tensor that the trace misses (e.g. merged into
        an identical one by TF's common subexpression elimination) gets a Shape op."""
        ops = list(dict.fromkeys(t.split(":")[0] for t in tensors))
        trace = self.tf.compat.v1.RunMetadata()
        self._run(("traced", *ops), [self.graph.get_operation_by_name(n) for n in ops], batch, literal=True,
                  trace=trace)
        shapes = {f"{node.node_name}:{output.slot}": tuple(d.size for d in output.tensor_description.shape.dim)
                  for device in trace.step_stats.dev_stats for node in device.node_stats for output in node.output}
        missing = [t for t in tensors if t not in shapes]
        if missing:
            values = self._run(("shapes", *missing), self._shape_tensors(missing), batch, literal=True)
            shapes.update((t, tuple(int(d) for d in v)) for t, v in zip(missing, values))
        return {t: shapes[t] for t in tensors}

    def _shape_tensors(self, tensors: list[str]) -> list:
        """A Shape op per tensor, made once (stamped as NodeDefs and imported at once: thousands of ops
        created from Python would cost seconds)."""
        tf = self.tf
        missing = [t for t in tensors if t not in self._shape_of]
        if missing:
            graph_def = tf.compat.v1.GraphDef()
            for index, tensor in enumerate(missing):
                node = graph_def.node.add(name=f"{index}", op="Shape", input=[f"value_{index}"])
                node.attr["T"].type = self.graph.get_tensor_by_name(tensor).dtype.as_datatype_enum
                node.attr["out_type"].type = tf.int64.as_datatype_enum
            inputs = {f"value_{i}:0": self.graph.get_tensor_by_name(t) for i, t in enumerate(missing)}
            with self.graph.as_default():
                shapes = tf.graph_util.import_graph_def(graph_def, input_map=inputs, name=self._scope("shapes"),
                                                        return_elements=[f"{i}:0" for i in range(len(missing))])
            self._shape_of.update(zip(missing, shapes))
        return [self._shape_of[t] for t in tensors]

    def _failing_node(self, exc) -> str | None:
        """The graph node an OpError names, mapping grappler's renamed nodes back to ours."""
        names = [exc.op.name] if getattr(exc, "op", None) is not None else []
        names += re.findall(r"\{\{node ([^}]+)\}\}", exc.message)
        for name in names:
            while name:
                if name in self.index:
                    return name
                name = name.rpartition("/")[0] if "/" in name else name.rpartition("_")[0]
        return None

    # -- in-graph comparisons ----------------------------------------------------------------------

    def _build_comparisons(self, solo_shapes: dict[str, tuple[int, ...]]) -> None:
        """Per target, its probe rows flattened (`RowStamps`, imported at once: creating thousands of ops
        from Python would cost seconds on a big graph); then chunks of them compared as vectors (see
        `compare.py`). Boundary tensors get chunks of their own, so that a screened run computes only theirs."""
        tf = self.tf
        stamps = RowStamps()
        input_map = {"positions:0": self.positions}
        sizes = [int(np.prod(solo_shapes[t.tensor])) for t in self.targets]
        for index, target in enumerate(self.targets):
            tensor = self.graph.get_tensor_by_name(target.tensor)
            stamps.add(index, (tensor.dtype, self.ranks[target.tensor], target.batch_axis, target.blocks), sizes[index])
            input_map[f"{index}/value:0"] = tensor
        with self.graph.as_default():
            rows = tf.graph_util.import_graph_def(stamps.graph_def, input_map=input_map, name=self._scope("rows"),
                                                  return_elements=[f"{i}/rows:0" for i in range(len(self.targets))])
            chunks: dict[bool, list] = {True: [], False: []}
            with tf.name_scope(self._scope("compare")):
                for boundary in chunks:
                    watched = [i for i, t in enumerate(self.targets) if t.boundary == boundary]
                    for group in _chunked(watched, sizes, [r.dtype for r in rows]):
                        chunks[boundary].append(build_chunk([rows[i] for i in group], [sizes[i] for i in group],
                                                            group, self.kept,
                                                            f"chunk_{len(chunks[True]) + len(chunks[False])}"))
        self._chunks = {Mode.SCREEN: chunks[True] or chunks[False], Mode.DETAIL: chunks[True] + chunks[False]}
        # compare() answers in watched order: the screen's targets, then all targets, in graph order
        fetched = {mode: [i for c in chunks for i in c.targets] for mode, chunks in self._chunks.items()}
        self.watched = {mode: sorted(order) for mode, order in fetched.items()}
        self._order = {mode: np.argsort(order) for mode, order in fetched.items()}

    def cache_solo(self, one: np.ndarray, key: object, mode: Mode = Mode.DETAIL) -> np.ndarray:
        """Run the probe alone as `mode` runs it (unless the probe known as `key` is cached for `mode`
        already) and keep its rows; return each watched tensor's max |value| over its finite values, in
        `watched[mode]` order. The mode's own callable runs, with the solo rows fed a zero, so no other
        callable is compiled and the rows come from the kernels that the batches will run."""
        if not self.solo_cached(key, mode):
            chunks = self._chunks[mode]
            self.cached = None  # one probe's rows at a time
            scales, rows = self._run_mode(mode, one, [0], [0], self._zeros(mode))
            scales = np.concatenate([c.finite_scales(s, r) for c, s, r in zip(chunks, scales, rows)])
            self.cached = SoloRun(key, mode, rows, scales[self._order[mode]])
        return self.cached.scales

    def solo_cached(self, key: object, mode: Mode) -> bool:
        """Whether `mode`'s compares are against the probe known as `key`."""
        return self.cached is not None and (self.cached.key, self.cached.mode) == (key, mode)

    def compare(self, mode: Mode, batch: np.ndarray, positions: list[int]) -> np.ndarray:
        """max |row - solo| per watched tensor (in `watched[mode]` order) over the rows at `positions` of
        `batch`, against the probe cached for `mode` (`cache_solo`). Where a NaN or infinity makes the
        quick maxima unsure, the batch runs again NaN-aware."""
        if self.cached is None or self.cached.mode != mode:
            raise BatchcheckBug(f"compare({mode}) without the probe run alone in that mode")
        chunks = self._chunks[mode]
        fed = [(c.solo, row) for c, row in zip(chunks, self.cached.rows)]
        diffs = np.concatenate(self._run_mode(mode, batch, positions, [], fed)[0])
        if np.isnan(diffs).any():
            diffs = np.concatenate(self._run_checked((mode, "exact"), [c.exact_diffs() for c in chunks], batch,
                                                     positions, literal=mode == Mode.DETAIL, fed=fed))
        return diffs[self._order[mode]]

    def _zeros(self, mode: Mode) -> list:
        """`mode`'s solo rows fed a zero: its maxima are then each tensor's max |value|."""
        return [(c.solo, np.zeros((1, 1), c.solo.dtype.as_numpy_dtype)) for c in self._chunks[mode]]

    def _run_mode(self, mode: Mode, batch: np.ndarray, positions: list[int], kept: list[int], fed):
        """Run `mode`'s callable (detail without grappler): per chunk, the maxima and the `kept` rows."""
        chunks = self._chunks[mode]
        return self._run_checked(mode, ([c.diffs for c in chunks], [c.kept for c in chunks]), batch, positions,
                                 literal=mode == Mode.DETAIL, fed=[(self.kept, np.array(kept, np.int32)), *fed])


def _chunked(watched: list[int], sizes: list[int], dtypes: list) -> list[list[int]]:
    """`watched` split into runs of one comparison dtype holding at most CHUNK_TENSORS tensors and
    CHUNK_VALUES values (a bigger tensor is a chunk of its own)."""
    runs: dict[object, list[list[int]]] = {}
    filled: dict[object, int] = {}
    for index in watched:
        dtype = dtypes[index]
        if (dtype not in runs or filled[dtype] + sizes[index] > CHUNK_VALUES
                or len(runs[dtype][-1]) == CHUNK_TENSORS):
            runs.setdefault(dtype, []).append([])
            filled[dtype] = 0
        runs[dtype][-1].append(index)
        filled[dtype] += sizes[index]
    return [run for dtype_runs in runs.values() for run in dtype_runs]


def _fixed_axis(shape: tuple[int, ...], size: int):
    """At a fixed batch `size`: axis 0 when it has that size, 'folded' when a multiple, else None."""
    if shape and shape[0] == size:
        return 0
    return "folded" if shape and shape[0] > size and shape[0] % size == 0 else None


def _batch_axis(solo: tuple[int, ...], pair: tuple[int, ...]):
    """The axis that is 1 alone and 2 in a batch of two; None when the shape ignores the batch;
    'folded' when the batch changes the shape some other way."""
    if solo == pair:
        return None
    if len(solo) == len(pair):
        differing = [i for i, (a, b) in enumerate(zip(solo, pair)) if a != b]
        if len(differing) == 1 and solo[differing[0]] == 1 and pair[differing[0]] == 2:
            return differing[0]
    return "folded"
