"""onnxruntime sessions as batchcheck runs them: quiet, on the CPU, with the ONNX semantics of a Dropout left in
training mode (onnxruntime's optimiser would remove it unless its output leaves the graph), and its errors turned
into `NodeFailed` (a node that fails on a batch), `OutOfMemory`, or one line."""
from __future__ import annotations

import re
from enum import Enum
from pathlib import Path

import numpy as np
from google.protobuf.message import EncodeError

from ...errors import NodeFailed, OutOfMemory, UsageError, first_line
from ...safety.supervise import OOM_MARKERS, memory_error, out_of_memory_at
from . import lite
from .env import import_ort

NODE_ERROR = re.compile(r"running (\w+) node\. Name:'([^']*)'")
PREAMBLE = re.compile(r"^\[ONNXRuntimeError\] : \d+ : \w+ : |Non-zero status code returned while running (\w+) node\. "
                      r"Name:'[^']*' Status Message: ")
MEMORY_MARKERS = (*OOM_MARKERS, "bad allocation", "Failed to allocate", "std::bad_alloc")
KEPT_NODES = ["EliminateDropout"]  # the ONNX spec applies a training-mode Dropout; so does every session here
FIRST_REGION = 1 << 29  # bytes the shared arena reserves at first
SHARED_BYTES = 1 << 12  # initializers from this size on are shared by the sessions of a model, not copied into each


class Level(Enum):
    """How far onnxruntime may rewrite the graph."""
    NONE = "none"    # as written: a node that fails is the node that fails (analysis, fetches)
    ALL = "all"      # every fusion and the blocked layouts (comparisons, forward passes)


_SHARED_ARENA: list[bool] = []


def _shared_arena(ort) -> None:
    """One memory arena for every session of this process (registered once): the sessions of a check run one
    after the other, so they reuse each other's blocks instead of each keeping its own batch's worth. It starts
    with one large region (reserved, touched only as used): grown from 1 MB in doubling regions, whose free blocks
    cannot serve each other, it held 580 MB for MobileNetV2's check at 224 px instead of 450."""
    if not _SHARED_ARENA:
        memory = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
        ort.create_and_register_allocator(memory, ort.OrtArenaCfg(0, -1, _first_region(), -1))
        _SHARED_ARENA.append(True)


def _first_region() -> int:
    """FIRST_REGION bytes, or an eighth of the data-segment cap (`--max-memory` in a supervised child) when that
    is less: the cap counts reserved memory."""
    try:
        import resource
    except ImportError:  # no rlimits here
        return FIRST_REGION
    cap = resource.getrlimit(resource.RLIMIT_DATA)[0]
    return FIRST_REGION if cap == resource.RLIM_INFINITY else min(FIRST_REGION, cap // 8)


def shared_weights(model, path: Path) -> dict[str, object]:
    """The larger initializers of `model` (a ModelProto) as onnxruntime values over one copy of their bytes: each
    session of a model made with them as headers (`sub_model(..., shared=...)`) is handed these instead of
    parsing and keeping a copy of its own."""
    ort = import_ort(path)
    return {t.name: ort.OrtValue.ortvalue_from_numpy(lite.to_array(t)) for t in model.graph.initializer
            if lite.raw(t) and t.ByteSize() >= SHARED_BYTES}


def session(model, path: Path, level: Level, weights: dict[str, object] | None = None):
    """An onnxruntime session of `model` (a ModelProto), handed the `weights` its initializer headers name;
    `UsageError` with one line when it cannot be made."""
    ort = import_ort(path)
    _shared_arena(ort)
    options = ort.SessionOptions()
    shared = [t.name for t in model.graph.initializer if t.data_location == lite.EXTERNAL]
    if shared:
        options.add_external_initializers(shared, [weights[name] for name in shared])
    options.log_severity_level = 4  # errors reach batchcheck as exceptions, not coloured lines on stderr
    options.add_session_config_entry("session.use_env_allocators", "1")
    # each node as soon as its inputs are ready: a tensor is released once what reads it (a Shape, a comparison's
    # Gather of a few rows) has run, instead of every activation living until the appended nodes run at the end
    options.execution_order = ort.ExecutionOrder.PRIORITY_BASED
    options.enable_mem_pattern = False  # its one block per batch size bypasses the shared arena: faults every run
    options.graph_optimization_level = {Level.NONE: ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
                                        Level.ALL: ort.GraphOptimizationLevel.ORT_ENABLE_ALL}[level]
    try:
        data = model.SerializeToString()
    except ValueError as exc:  # over protobuf's 2 GB
        raise UsageError(f"model `{path}`: too large to hand to onnxruntime in one piece ({first_line(exc)})") from None
    except (MemoryError, EncodeError):  # protobuf could not allocate the bytes (under --max-memory)
        raise UsageError(f"model `{path}`: {memory_error()}") from None
    try:
        return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"], disabled_optimizers=KEPT_NODES)
    except MemoryError:
        raise UsageError(f"model `{path}`: {memory_error()}") from None
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises Fail, InvalidGraph… for models it rejects
        text = error_text(exc)
        if any(marker in text for marker in MEMORY_MARKERS):
            raise OutOfMemory(out_of_memory_at(path, None, 0, text).replace(" on a batch of 0", "")) from None
        import onnxruntime

        raise UsageError(f"model `{path}`: onnxruntime {onnxruntime.__version__} cannot run it ({text}); check that "
                         f"it runs in onnxruntime, or re-export it") from None


def run(sess, outputs: list[str], feeds: dict[str, np.ndarray], path: Path, batch: int) -> list[np.ndarray]:
    """`outputs` of `sess` on `feeds`; a node that fails raises `NodeFailed` (out of memory: `OutOfMemory`)."""
    try:
        return sess.run(outputs, feeds)
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - onnxruntime's error classes share no base but Exception
        text, match = error_text(exc), NODE_ERROR.search(str(exc))
        node = match[2] if match and match[2] else None
        if any(marker in text for marker in MEMORY_MARKERS):
            raise OutOfMemory(out_of_memory_at(path, node, batch, text)) from None
        raise NodeFailed(node, text) from None


def error_text(exc: BaseException) -> str:
    """onnxruntime's message without its preamble: `Gemm: GEMM: Dimension mismatch…`."""
    raw = " ".join(str(exc).split()) or type(exc).__name__
    match = NODE_ERROR.search(raw)
    text = PREAMBLE.sub("", raw)
    return (f"{match[1]}: {text}" if match else text)[:200]
