"""The TensorFlow session: the prepared GraphDef imported once, its tensors compared inside TensorFlow.

The probe's solo activations are fetched once (its rows of every watched tensor, one image's worth) and fed
back; a batched run then slices the probe's row out of every watched tensor and reduces |row - solo| to one
number per tensor in-graph, so only a vector of maxima leaves the session (`compare.py`).

Each watch set compiles one callable, run both on the probe alone (fetching its rows) and on batches. Screened
runs are compiled with grappler; analysis and detail runs without it (every tensor is consumed there, so
grappler could fuse nothing, and its compile time grows faster than the graph; it could also fold away a
Reshape that hard-codes the batch, hiding a batch limit the graph has).
"""
from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ...errors import NodeFailed, OutOfMemory, UsageError, first_line
from ...graph import kinds
from ...graph.index import GraphIndex, loop_frame_nodes, value_kinds
from ...model import PreparedModel
from ...result import Mode
from ...run.session import Candidates, Session, Target
from ...safety.supervise import out_of_memory_at
from .compare import (
    CHUNK_TENSORS,
    CHUNK_VALUES,
    Chunk,
    RowStamps,
    build_chunk,
    comparison_dtype,
)
from .env import import_tf

# How many leading outputs of these ops carry values worth comparing: FusedBatchNorm outputs past
# y/batch_mean/batch_variance are kernel scratch space; a Switch only forwards its input (and one of
# its outputs is always dead); Merge's second output is the branch index.
COMPARED_OUTPUTS = {"FusedBatchNorm": 3, "FusedBatchNormV2": 3, "FusedBatchNormV3": 3,
                    "Switch": 0, "RefSwitch": 0, "Merge": 1, "RefMerge": 1}
# Ops after which grappler may fuse their input away (Conv+BiasAdd+Relu, Conv+BN+Relu, BN arithmetic):
# a tensor whose only consumer is one of these is not a fusion boundary.
FUSABLE_FOLLOWERS = frozenset({
    "BiasAdd", "BiasAddV1", "FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3",
    "Relu", "Relu6", "Elu", "Selu", "LeakyRelu", "Tanh", "Sigmoid", "Softplus", "Identity",
    "Add", "AddV2", "Sub", "Mul", "Maximum", "Minimum", "Cast", "Squeeze", "Rsqrt", "Neg",
})


class TFSession(Session):
    """One imported GraphDef with two sessions: grappler-optimised (screened runs) and literal (the rest)."""

    def __init__(self, prepared: PreparedModel) -> None:
        tf = self.tf = import_tf()
        self.prepared = prepared
        self.index = prepared.index
        self.graph = tf.Graph()
        with self.graph.as_default():
            try:
                tf.graph_util.import_graph_def(prepared.graph, name="")
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
        self._chunks: dict[Mode, list[Chunk]] = {}  # per watch set, the chunks compared
        self._order: dict[Mode, np.ndarray] = {}  # per mode, fetched values -> watched order
        self.watched: dict[Mode, list[int]] = {}

    def _scope(self, name: str) -> str:
        return self.graph.unique_name(f"batchcheck/{name}", mark_as_used=False)

    def close(self) -> None:
        self.session.close()
        self.literal_session.close()

    # -- running ---------------------------------------------------------------------------------

    def _run(self, key: object, fetches, batch: np.ndarray, positions=(0,), literal: bool = False, fed=(),
             trace=None):
        """Run `fetches`, compiled once per `key`, on `batch`, feeding the pairs `fed` too; `literal` runs
        without grappler; `trace` (a RunMetadata) gets the run's step stats. A failure raises `NodeFailed`
        (out of memory: `OutOfMemory`)."""
        tf = self.tf
        if key not in self._callables:
            session = self.literal_session if literal else self.session
            feed_list = [self.input, self.positions, *self.feeds, *(tensor for tensor, _ in fed)]
            self._callables[key] = session.make_callable(fetches, feed_list=feed_list, accept_options=trace is not None)
        values = (batch, positions, *self.feeds.values(), *(value for _, value in fed))
        try:
            if trace is None:
                return self._callables[key](*values)
            options = tf.compat.v1.RunOptions(trace_level=tf.compat.v1.RunOptions.SOFTWARE_TRACE)
            return self._callables[key](*values, options=options, run_metadata=trace)
        except tf.errors.ResourceExhaustedError as exc:  # out of memory is no batch limit: fatal
            raise OutOfMemory(out_of_memory_at(self.prepared.path, self._failing_node(exc), len(batch),
                                               op_error_text(exc))) from None
        except tf.errors.OpError as exc:
            raise NodeFailed(self._failing_node(exc), op_error_text(exc)) from None

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

    def fetch(self, tensors: list[str], batch: np.ndarray) -> list[np.ndarray]:
        return self._run(("fetch", *tensors), [self.graph.get_tensor_by_name(t) for t in tensors], batch,
                         literal=True)

    def forward(self, batch: np.ndarray, outputs: list[str]) -> list[np.ndarray]:
        tensors = [self.graph.get_tensor_by_name(name) for name in outputs]
        return self._run(f"forward:{','.join(outputs)}", tensors, batch)

    # -- analysis --------------------------------------------------------------------------------

    def candidates(self, dead: set[str]) -> Candidates:
        values = value_kinds(self.index, self.prepared.input.node)
        in_loops = loop_frame_nodes(self.index)
        tensors, excluded = [], {}
        for name in self.index.order:
            op = self.graph.get_operation_by_name(name)
            if (values[name] not in ("data", "random") or name == self.prepared.input.node
                    or self.index.nodes[name].kind in kinds.NOT_COMPARED or name in dead):
                continue
            for output in op.outputs[:COMPARED_OUTPUTS.get(op.type)]:
                if comparison_dtype(output.dtype) is None:
                    if output.dtype.is_complex:  # numbers, but not compared: say so (strings and handles are no data)
                        excluded[output.name] = f"{output.dtype.name} values are not compared"
                    continue
                if name in in_loops:
                    excluded[output.name] = ("inside a while loop's frame, not fetchable from outside it "
                                             "(the loop's Exit outputs and what follows are compared)")
                else:
                    tensors.append(output.name)
        return Candidates(tensors, excluded)

    def shapes(self, tensors: list[str], batch: np.ndarray) -> dict[str, tuple[int, ...]]:
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

    def is_boundary(self, tensor: str) -> bool:
        return fusion_boundary(self.index, tensor)

    # -- in-graph comparisons ----------------------------------------------------------------------

    def build(self, targets: list[Target], ranks: dict[str, int], probe_shapes: dict[str, tuple[int, ...]]) -> None:
        """Per target, its probe rows flattened (`RowStamps`, imported at once: creating thousands of ops
        from Python would cost seconds on a big graph); then chunks of them compared as vectors (see
        `compare.py`). Boundary tensors get chunks of their own, so that a screened run computes only theirs."""
        tf = self.tf
        stamps = RowStamps()
        input_map = {"positions:0": self.positions}
        sizes = [int(np.prod(probe_shapes[t.tensor])) for t in targets]
        for index, target in enumerate(targets):
            tensor = self.graph.get_tensor_by_name(target.tensor)
            stamps.add(index, (tensor.dtype, ranks[target.tensor], target.batch_axis, target.blocks), sizes[index])
            input_map[f"{index}/value:0"] = tensor
        with self.graph.as_default():
            rows = tf.graph_util.import_graph_def(stamps.graph_def, input_map=input_map, name=self._scope("rows"),
                                                  return_elements=[f"{i}/rows:0" for i in range(len(targets))])
            chunks: dict[bool, list] = {True: [], False: []}
            with tf.name_scope(self._scope("compare")):
                for boundary in chunks:
                    watched = [i for i, t in enumerate(targets) if t.boundary == boundary]
                    for group in _chunked(watched, sizes, [r.dtype for r in rows]):
                        chunks[boundary].append(build_chunk([rows[i] for i in group], [sizes[i] for i in group],
                                                            group, self.kept,
                                                            f"chunk_{len(chunks[True]) + len(chunks[False])}"))
        self._chunks = {Mode.SCREEN: chunks[True] or chunks[False], Mode.DETAIL: chunks[True] + chunks[False]}
        # compare() answers in watched order: the screen's targets, then all targets, in graph order
        fetched = {mode: [i for c in chunks for i in c.targets] for mode, chunks in self._chunks.items()}
        self.watched = {mode: sorted(order) for mode, order in fetched.items()}
        self._order = {mode: np.argsort(order) for mode, order in fetched.items()}

    def compile(self, one: np.ndarray) -> None:
        """Compile both watch sets' callables at once: each runs `one` alone (keeping nothing) in a thread
        of its own. TF compiles outside the GIL, so grappler's compile of the screen overlaps the
        literal compile of the detail (10k-node chain: 2.9 s -> 2.0 s)."""
        with ThreadPoolExecutor(len(Mode)) as pool:
            list(pool.map(lambda mode: self._run_mode(mode, one, [0], [], self._zeros(mode)), Mode))

    def solo(self, mode: Mode, one: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """The mode's own callable runs, with the solo rows fed a zero, so no other callable is compiled and
        the rows come from the kernels that the batches will run."""
        chunks = self._chunks[mode]
        scales, rows = self._run_mode(mode, one, [0], [0], self._zeros(mode))
        scales = np.concatenate([c.finite_scales(s, r) for c, s, r in zip(chunks, scales, rows)])
        return scales[self._order[mode]], rows

    def diffs(self, mode: Mode, batch: np.ndarray, positions: list[int], rows: list[np.ndarray]) -> np.ndarray:
        """Where a NaN or infinity makes the quick maxima unsure, the batch runs again NaN-aware."""
        chunks = self._chunks[mode]
        fed = [(c.solo, row) for c, row in zip(chunks, rows)]
        diffs = np.concatenate(self._run_mode(mode, batch, positions, [], fed)[0])
        if np.isnan(diffs).any():
            diffs = np.concatenate(self._run((mode, "exact"), [c.exact_diffs() for c in chunks], batch,
                                             positions, literal=mode == Mode.DETAIL, fed=fed))
        return diffs[self._order[mode]]

    def _zeros(self, mode: Mode) -> list:
        """`mode`'s solo rows fed a zero: its maxima are then each tensor's max |value|."""
        return [(c.solo, np.zeros((1, 1), c.solo.dtype.as_numpy_dtype)) for c in self._chunks[mode]]

    def _run_mode(self, mode: Mode, batch: np.ndarray, positions: list[int], kept: list[int], fed):
        """Run `mode`'s callable (detail without grappler): per chunk, the maxima and the `kept` rows."""
        chunks = self._chunks[mode]
        return self._run(mode, ([c.diffs for c in chunks], [c.kept for c in chunks]), batch, positions,
                         literal=mode == Mode.DETAIL, fed=[(self.kept, np.array(kept, np.int32)), *fed])


def op_error_text(exc: BaseException) -> str:
    """The line of a TensorFlow OpError that says what went wrong, without the graph-execution preamble."""
    lines = [line.strip() for line in getattr(exc, "message", str(exc)).splitlines()]
    useful = [line for line in lines if line and not line.startswith(
        ("Graph execution error", "Detected at node", "File ", "[[", "Node:", "Traceback", "Original stack"))
        and not line.endswith(":")]
    return (useful[0] if useful else first_line(exc))[:200]


def fusion_boundary(index: GraphIndex, tensor: str) -> bool:
    """True unless grappler may fuse `tensor` into its single consumer (so comparing it would stop the fusion):
    the tensors worth watching on every trial."""
    node, output = tensor.split(":")
    info = index.nodes[node]
    if info.data_consumers.get(int(output), 0) != 1 or len(info.consumers) != 1:
        return True
    (consumer,) = info.consumers
    return index.nodes[consumer].op not in FUSABLE_FOLLOWERS


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
