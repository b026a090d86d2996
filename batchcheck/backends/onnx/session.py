"""The onnxruntime session: the prepared model run in sessions built once each, its tensors compared inside
onnxruntime.

onnxruntime runs every node of a graph whether its outputs are needed or not, so each session holds only what its
outputs need (`prepare.sub_model`): the analysis measures the candidates' shapes on the model as written (no
optimisation: a node that fails is the node that fails), and what lies beyond a batch limit is never run again.
The comparisons (`compare.py`) are appended to the model once per watch set: the screen (the tensors a plain run
has as they are anyway, `fusion_boundary`, with every optimisation, so that onnxruntime still fuses
Conv+BatchNormalization+activation and keeps its blocked NCHWc layout) and the detail (every tensor: with each one
read by a comparison nothing fuses, but blocked convolutions, converted back where a comparison reads them, still run
faster than as written; a model without convolutions runs it as written, sparing the optimiser's time). All sessions
share one memory arena and are handed one copy of the weights (`runtime.py`). Only two vectors leave a batched run
(every tensor's maxima, each chunk's sum); the probe's rows leave its solo run once and are fed back.
"""
from __future__ import annotations

import numpy as np

from ...errors import BatchcheckBug, NodeFailed
from ...graph import kinds
from ...graph.index import GraphIndex, value_kinds
from ...model import PreparedModel
from ...result import Mode
from ...run.session import Candidates, Session, Target
from . import lite
from .compare import (
    FLOAT,
    Chunk,
    Outputs,
    Watched,
    chunked,
    comparison_model,
    comparison_type,
)
from .prepare import sub_model
from .runtime import Level, run, session, shared_weights

# Ops onnxruntime fuses into the node before them (Conv+BatchNormalization+Clip, MatMul+Add, Gemm+Relu…) or runs
# with a Conv before them in its blocked NCHWc layout: comparing a tensor that only these read would stop a fusion or
# add a conversion of the whole batch back to NCHW, so it is compared in detail only.
FUSED_OR_BLOCKED = frozenset({
    "BatchNormalization", "Relu", "Clip", "LeakyRelu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Elu", "Selu",
    "Softplus", "Add", "Sub", "Mul", "Div", "Sum", "Identity", "Cast", "Squeeze", "Unsqueeze", "Erf", "Sqrt", "Pow",
    "Conv", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "Concat", "Resize", "Upsample",
})
ORT_TYPES = {"float": "float32", "double": "float64", "float16": "float16", "bfloat16": "bfloat16", "bool": "bool",
             "string": "string", **{t: t for t in ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
                                                    "uint64", "complex64", "complex128")}}
NOT_TENSORS = ("sequence", "map", "optional", "sparse_tensor")
# A training-mode BatchNormalization's other outputs: the running statistics onnxruntime updates in place on every
# run (they differ run to run), and the batch's statistics Y was normalised with
TRAINING_STATISTICS = "a BatchNormalization's training statistics: its output Y is compared"


class OnnxSession(Session):
    """One prepared ModelProto and the onnxruntime sessions made of it, each built once."""

    def __init__(self, prepared: PreparedModel) -> None:
        self.prepared = prepared
        self.index: GraphIndex = prepared.index
        self.protos = self.index.source.protos
        self.model = prepared.graph
        self.path = prepared.path
        self.image = prepared.input.node
        self.feeds = {name.rpartition(":")[0]: value for name, value in prepared.feeds.items()}
        self.prefix = _unused_prefix(self.protos)
        self._convolutions = any(node.op_type == "Conv" for node in self.model.graph.node)
        self._sessions: dict[object, object] = {}
        self._weights: dict[str, object] | None = None  # the model's larger initializers, shared by its sessions
        self._dtypes: dict[str, str] = {}  # candidate tensor -> its dtype name
        self._outputs: dict[tuple, Outputs] = {}  # per (mode, exact), what its comparison model answers
        self._order: dict[Mode, np.ndarray] = {}
        self._plans: dict[Mode, list[list[int]]] = {}
        self._watched: list[Watched] = []
        self.watched: dict[Mode, list[int]] = {}

    def close(self) -> None:
        self._sessions.clear()
        self._weights = None

    # -- running ---------------------------------------------------------------------------------

    def _session(self, key: object, make, level: Level):
        """The session known as `key`, made once from the ModelProto `make()` returns."""
        if key not in self._sessions:
            self._sessions[key] = session(make(), self.path, level, self.weights)
        return self._sessions[key]

    @property
    def weights(self) -> dict[str, object]:
        """The model's larger initializers as onnxruntime values, handed to each session (made once)."""
        if self._weights is None:
            self._weights = shared_weights(self.model, self.path)
        return self._weights

    def _sub_model(self, values: list[str]):
        """The nodes `values` need, the shared initializers as headers."""
        return sub_model(self.model, values, shared=self.weights)

    def _run(self, key: object, outputs: list[str], batch: np.ndarray, extra: dict | None = None) -> list[np.ndarray]:
        feeds = {self.image: batch, **self.feeds, **(extra or {})}
        try:
            return run(self._sessions[key], outputs, feeds, self.path, len(batch))
        except NodeFailed as failure:  # a comparison node that fails is ours to explain, not a batch limit
            raise NodeFailed(failure.node if failure.node in self.index else None, failure.message) from None

    def _values(self, tensors: list[str]) -> list[str]:
        return [self.protos.value(t) for t in tensors]

    def fetch(self, tensors: list[str], batch: np.ndarray) -> list[np.ndarray]:
        values = self._values(tensors)
        key = ("fetch", *tensors)
        self._session(key, lambda: self._sub_model(values), Level.NONE)
        return self._run(key, values, batch)

    def forward(self, batch: np.ndarray, outputs: list[str]) -> list[np.ndarray]:
        values = self._values(outputs)
        key = ("forward", *outputs)
        self._session(key, lambda: self._sub_model(values), Level.ALL)
        return self._run(key, values, batch)

    # -- analysis --------------------------------------------------------------------------------

    def candidates(self, dead: set[str]) -> Candidates:
        values = value_kinds(self.index, self.image)
        found: list[tuple[str, str]] = []  # (tensor, dtype or "unknown")
        excluded: dict[str, str] = {}
        for name in self.index.order:
            info = self.index.nodes[name]
            if (values[name] not in ("data", "random") or name == self.image or info.kind in kinds.NOT_COMPARED
                    or name in dead or name not in self.protos.nodes):
                continue
            for port, value in enumerate(self.protos.nodes[name].output):
                if value and port and info.kind == kinds.BATCH_NORM:
                    excluded[f"{name}:{port}"] = TRAINING_STATISTICS
                elif value:
                    found.append((f"{name}:{port}", info.attrs["dtypes"][port]))
        unknown = [t for t, dtype in found if dtype == "unknown"]
        runtime = self._runtime_dtypes(unknown) if unknown else {}
        tensors = []
        for tensor, dtype in found:
            dtype = runtime.get(tensor, dtype)
            if comparison_type(dtype) is not None:
                tensors.append(tensor)
                self._dtypes[tensor] = dtype
            elif dtype.startswith("complex") or dtype in NOT_TENSORS:
                excluded[tensor] = f"{dtype} values are not compared"
        return Candidates(tensors, excluded)

    def _runtime_dtypes(self, tensors: list[str]) -> dict[str, str]:
        """The dtypes onnxruntime gives values that ONNX inference left untyped."""
        values = self._values(tensors)
        made = session(self._sub_model(values), self.path, Level.NONE, self.weights)
        types = {o.name: o.type for o in made.get_outputs()}
        found = {}
        for tensor, value in zip(tensors, values):
            text = types.get(value, "")
            inner = text[len("tensor("):-1] if text.startswith("tensor(") else ""
            found[tensor] = ORT_TYPES.get(inner, "sequence" if text.startswith("seq") else "unknown")
        return found

    def shapes(self, tensors: list[str], batch: np.ndarray) -> dict[str, tuple[int, ...]]:
        """Each tensor's shape on `batch`, from a Shape node per tensor appended to the nodes they need (the values
        themselves never leave onnxruntime)."""
        key = ("shapes", *tensors)
        names = [f"{self.prefix}shape_{i}" for i in range(len(tensors))]
        self._session(key, lambda: self._shape_model(tensors, names), Level.NONE)
        return {t: tuple(int(d) for d in shape) for t, shape in zip(tensors, self._run(key, names, batch))}

    def _shape_model(self, tensors: list[str], names: list[str]):
        values = self._values(tensors)
        model = self._sub_model(values)
        model.graph.node.extend(lite.node("Shape", [v], [n], name=n) for v, n in zip(values, names))
        del model.graph.output[:]
        model.graph.output.extend(lite.value_info(n) for n in names)
        return model

    def is_boundary(self, tensor: str) -> bool:
        return fusion_boundary(self.index, tensor)

    # -- in-graph comparisons ----------------------------------------------------------------------

    def build(self, targets: list[Target], ranks: dict[str, int], probe_shapes: dict[str, tuple[int, ...]]) -> None:
        """Chunks of the targets per watch set (boundary tensors in chunks of their own, so that a screened run
        computes only theirs); the models and sessions are made by `compile`."""
        if any(t.blocks for t in targets):
            raise BatchcheckBug("ONNX graphs have no SpaceToBatch: no target folds the batch into blocks")
        self._watched = [Watched(self.protos.value(t.tensor), self._dtypes[t.tensor], ranks[t.tensor], t.batch_axis,
                                 int(np.prod(probe_shapes[t.tensor]))) for t in targets]
        boundary = chunked([i for i, t in enumerate(targets) if t.boundary], self._watched)
        rest = chunked([i for i, t in enumerate(targets) if not t.boundary], self._watched)
        self._plans = {Mode.SCREEN: boundary or rest, Mode.DETAIL: boundary + rest}
        fetched = {mode: [i for chunk in chunks for i in chunk] for mode, chunks in self._plans.items()}
        self.watched = {mode: sorted(order) for mode, order in fetched.items()}
        self._order = {mode: np.argsort(order) for mode, order in fetched.items()}

    def _comparisons(self, mode: Mode, exact: bool = False):
        """The comparison model of `mode` (the nodes its tensors need, then their comparisons)."""
        chunks = self._plans[mode]
        base = self._sub_model(list(dict.fromkeys(self._watched[i].value for c in chunks for i in c)))
        model, self._outputs[(mode, exact)] = comparison_model(base, self._watched, chunks, self.prefix,
                                                               self.protos.opset, exact)
        return model

    def _mode_session(self, mode: Mode, exact: bool = False) -> tuple:
        key = (mode, exact)
        # the detail reads every tensor: only blocked convolutions make up for the time optimising it takes
        level = Level.ALL if mode == Mode.SCREEN or self._convolutions else Level.NONE
        self._session(key, lambda: self._comparisons(mode, exact), level)
        return key

    def compile(self, one: np.ndarray) -> None:
        """Release the analysis sessions (nothing measures shapes again), then make both watch sets' sessions, one
        after the other (in two threads they took as long and held both builds' memory at once); a session needs no
        first run, so `one` is not run."""
        for key in [k for k in self._sessions if isinstance(k, tuple) and k[0] == "shapes"]:
            del self._sessions[key]
        for mode in Mode:
            self._mode_session(mode)

    def solo(self, mode: Mode, one: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """The mode's own session runs with the solo rows fed a zero: its maxima are each tensor's max |value|
        (taken again over the finite values where a NaN or an infinity made them unsure), and the rows come from
        the kernels the batches will run."""
        key = self._mode_session(mode)
        chunks = self._outputs[key].chunks
        maxima, unsure, rows = self._run_chunks(key, one, [0], [0], [np.zeros((1, 1), _numpy(c)) for c in chunks])
        if not (np.all(np.isfinite(unsure)) and np.all(np.isfinite(maxima))):
            maxima = np.concatenate([chunk.finite_scales(kept) for chunk, kept in zip(chunks, rows)])
        return maxima[self._order[mode]], rows

    def diffs(self, mode: Mode, batch: np.ndarray, positions: list[int], rows: list[np.ndarray]) -> np.ndarray:
        """Where a NaN or an infinity makes the quick maxima unsure, the batch runs again NaN-aware."""
        key = self._mode_session(mode)
        maxima, unsure, _ = self._run_chunks(key, batch, positions, [], rows)
        if not np.all(np.isfinite(unsure)):
            exact = self._mode_session(mode, exact=True)
            outputs = self._outputs[exact]
            solos = {c.solo: row for c, row in zip(outputs.chunks, rows)}
            maxima = np.ravel(self._run(exact, [outputs.diffs], batch, {**self._positions(positions, []), **solos})[0])
        return maxima[self._order[mode]]

    def _positions(self, positions, kept) -> dict[str, np.ndarray]:
        return {f"{self.prefix}positions": np.asarray(positions, np.int64),
                f"{self.prefix}kept": np.asarray(kept, np.int64)}

    def _run_chunks(self, key, batch: np.ndarray, positions, kept, solos: list[np.ndarray]):
        """The session `key` on `batch`: every watched tensor's maxima, whether each chunk's are unsure, and (when
        rows are `kept`) each chunk's kept rows."""
        outputs = self._outputs[key]
        names = [outputs.diffs, outputs.unsure, *(c.kept for c in outputs.chunks if kept)]
        fed = {**self._positions(positions, kept), **{c.solo: row for c, row in zip(outputs.chunks, solos)}}
        maxima, unsure, *rows = self._run(key, names, batch, fed)
        return np.ravel(maxima), np.ravel(unsure), rows


def _numpy(chunk: Chunk) -> type:
    return np.float32 if chunk.compared_as == FLOAT else np.float64


def _unused_prefix(protos) -> str:
    """`batchcheck/`, or a variant no value or node of the model starts with."""
    names = [*protos.producer, *protos.nodes]
    prefix, number = "batchcheck/", 0
    while any(name.startswith(prefix) for name in names):
        number += 1
        prefix = f"batchcheck_{number}/"
    return prefix


def fusion_boundary(index: GraphIndex, tensor: str) -> bool:
    """True when a plain run of onnxruntime has `tensor` as it is anyway (something other than a fused or blocked
    op reads it, or nothing does): the tensors worth watching on every trial."""
    node, _, output = tensor.rpartition(":")
    readers = [index.nodes[c].op for c in index.nodes[node].consumers
               if (node, int(output)) in index.nodes[c].data_inputs]
    return not readers or any(op not in FUSED_OR_BLOCKED for op in readers)
