"""The op scan: refuse a graph that would act (files, processes, network, Python) before TensorFlow imports it.

A model is a program. Before any import, every node is looked at: the top-level graph, every function of the
library (and the functions they call or name in attributes such as `f`, `then_branch`, `body`), and the parts of
a SavedModel or meta graph that loading runs. Broken structure (a node input naming a missing node, two nodes of
one name, a cycle, a function calling itself) is refused too. Constructs that are legal but can hang or hold
state (queues, while loops, variables, hash tables, `Assert`) are flagged and still run. No TensorFlow import here.
"""
from __future__ import annotations

import re
from collections import deque
from pathlib import Path
from typing import Iterable

from ...errors import UsageError, one_line
from ...safety.scan import (
    CHECKPOINT_OPS,
    CONSOLE_STREAMS,
    FLAGGED,
    PRINT_OPS,
    TRACED_SAVER,
    Finding,
    ScanReport,
    refusal_category,
)

PLACEHOLDER_OPS = frozenset({"Placeholder", "PlaceholderV2", "PlaceholderWithDefault"})
BACK_EDGE_OPS = frozenset({"NextIteration", "RefNextIteration"})
NODE_NAME = re.compile(r"[A-Za-z0-9.][A-Za-z0-9_.\-/>]*\Z")  # TensorFlow's rule for node names
MAX_WHERE = 160  # characters of "where" kept in a message


def scan_graph_def(graph_def, path: Path, allowed_ops: Iterable[str] = (), *,
                   saver_roots: Iterable[str] | None = None) -> ScanReport:
    """Refuse `graph_def` (UsageError, one line) if it is broken or holds a refused op outside `allowed_ops`;
    return what it flags. `saver_roots` (SavedModels and meta graphs) name the saver's nodes: checkpoint I/O is
    allowed in what they reach, and in TF2's own save/restore functions when nothing else calls them."""
    _check_structure(graph_def, path)
    functions = {f.signature.name: f for f in graph_def.library.function}
    callers = _function_callers(graph_def, functions)
    calls = {name: {n for node in f.node_def for n in _referenced_functions(node, functions)}
             for name, f in functions.items()}
    _refuse_recursion(calls, path)
    saver_nodes = _ancestors(graph_def, saver_roots or ())
    saver_functions = _reached_from(calls, (name for node in graph_def.node if node.name in saver_nodes
                                            for name in _referenced_functions(node, functions)))
    if saver_roots is not None:
        saver_functions |= {name for name in functions if name not in callers and TRACED_SAVER.match(name)}
    _check_dtypes(graph_def, path)
    report = ScanReport()
    allowed = frozenset(allowed_ops)
    for node in graph_def.node:
        _scan_node(node, "at top level", path, allowed, node.name in saver_nodes, report)
    for name, function in functions.items():
        where = f"in function `{name}`, {callers.get(name, 'in the library, not called')}"
        for node in function.node_def:
            _scan_node(node, where, path, allowed, name in saver_functions, report)
    return report


def scan_meta_graph(meta_graph, path: Path, allowed_ops: Iterable[str] = ()) -> ScanReport:
    """Scan a MetaGraphDef's graph; its saver (checkpoint save/restore) may hold checkpoint I/O."""
    saver = meta_graph.saver_def
    roots = [name.split(":")[0] for name in (saver.filename_tensor_name, saver.save_tensor_name,
                                            saver.restore_op_name) if name]
    return scan_graph_def(meta_graph.graph_def, path, allowed_ops, saver_roots=roots)


def scan_saved_model(saved_model, path: Path, allowed_ops: Iterable[str] = ()) -> ScanReport:
    """Scan every meta graph of a SavedModel proto."""
    report = ScanReport()
    for meta_graph in saved_model.meta_graphs:
        report.flagged += scan_meta_graph(meta_graph, path, allowed_ops).flagged
    return report


def _scan_node(node, where: str, path: Path, allowed: frozenset, in_saver: bool, report: ScanReport) -> None:
    category = refusal_category(node.op)
    if node.op in PRINT_OPS:
        stream = node.attr["output_stream"].s.decode("utf-8", "replace") if "output_stream" in node.attr else ""
        category = None if not stream or stream in CONSOLE_STREAMS else "file"
    if category and node.op not in allowed and not (in_saver and node.op in CHECKPOINT_OPS):
        raise UsageError(
            f"model `{path}`: refused to run {category} op {node.op} (node `{node.name}`, {_short(where)}): "
            f"a model must not touch files, processes, the network or Python; if you have read the graph "
            f"and trust it, pass --allow-op {node.op}")
    for pattern, kind in FLAGGED:
        if pattern.search(node.op):
            report.flagged.append(Finding(node.op, node.name, where, kind))
            break


def _short(where: str) -> str:
    return where if len(where) <= MAX_WHERE else where[:MAX_WHERE - 1] + "…"


def _referenced_functions(node, functions: dict) -> list[str]:
    """Functions `node` calls: by op type, or named in a func attribute (`f`, `then_branch`, `body`…)."""
    names = [node.op] if node.op in functions else []
    for value in node.attr.values():
        if value.HasField("func"):
            names.append(value.func.name)
        names += [f.name for f in value.list.func]
    return [n for n in names if n in functions]


def _function_callers(graph_def, functions: dict) -> dict[str, str]:
    """For each function reachable from the top level, 'called from `node`' with the chain of calls."""
    callers: dict[str, str] = {}
    queue = deque((node, "") for node in graph_def.node)
    while queue:
        node, within = queue.popleft()
        for name in _referenced_functions(node, functions):
            if name not in callers:
                callers[name] = f"called from `{node.name}`{within}"
                chain = f" in function `{name}`, {callers[name]}" if not within else f" in `{name}`{within}"
                queue.extend((inner, chain) for inner in functions[name].node_def)
    return callers


def _refuse_recursion(calls: dict[str, set[str]], path: Path) -> None:
    """A function that calls itself, directly or through others, cannot be inlined or bounded: refuse it."""
    for name in calls:
        if name in _reached_from(calls, calls[name]):
            raise UsageError(f"model `{path}`: function `{name}` calls itself (recursion), which cannot be "
                             f"inlined or bounded; export the model without recursive functions")


def _reached_from(calls: dict[str, set[str]], start: Iterable[str]) -> set[str]:
    """`start` and everything reached from it through `calls` (function calls, or a node's inputs)."""
    seen: set[str] = set()
    stack = list(start)
    while stack:
        name = stack.pop()
        if name not in seen:
            seen.add(name)
            stack += calls.get(name, ())
    return seen


def _source(name: str) -> str:
    return name.lstrip("^").split(":")[0]


def _check_structure(graph_def, path: Path) -> None:
    """Refuse duplicate node names, inputs naming missing nodes and cycles (loops' back edges aside)."""
    ops: dict[str, str] = {}
    for node in graph_def.node:
        if not NODE_NAME.match(node.name):
            raise UsageError(f"model `{path}`: node name `{one_line(node.name)}` ({node.op}) is not a valid TensorFlow "
                             f"name; the graph is broken, re-export it")
        if node.name in ops:
            raise UsageError(f"model `{path}`: two nodes are named `{node.name}` ({ops[node.name]} and {node.op}); "
                             f"the graph is broken, re-export it")
        ops[node.name] = node.op
    for node in graph_def.node:
        for raw in node.input:
            if _source(raw) not in ops:
                raise UsageError(f"model `{path}`: node `{node.name}` takes input `{raw}`, which does not exist; "
                                 f"the graph is broken, re-export it")
    pending = {node.name: sum(1 for raw in node.input if ops[_source(raw)] not in BACK_EDGE_OPS)
               for node in graph_def.node}
    consumers: dict[str, list[str]] = {name: [] for name in ops}
    for node in graph_def.node:
        for raw in node.input:
            if ops[_source(raw)] not in BACK_EDGE_OPS:
                consumers[_source(raw)].append(node.name)
    ready = deque(name for name, count in pending.items() if count == 0)
    while ready:
        for consumer in consumers[ready.popleft()]:
            pending[consumer] -= 1
            if pending[consumer] == 0:
                ready.append(consumer)
    stuck = [name for name, count in pending.items() if count > 0]
    if stuck:
        raise UsageError(f"model `{path}`: the graph has a cycle through `{stuck[0]}` (not a while loop); "
                         f"it cannot run, re-export it")


def _check_dtypes(graph_def, path: Path) -> None:
    """Refuse a dtype attribute (or Const value) holding no valid TensorFlow DataType."""
    from tensorflow.core.framework import (
        types_pb2,  # the graph was parsed, so TensorFlow is already loaded
    )

    valid = set(types_pb2.DataType.values()) - {types_pb2.DT_INVALID}
    for node in [*graph_def.node, *(n for f in graph_def.library.function for n in f.node_def)]:
        if node.op in PLACEHOLDER_OPS and "dtype" not in node.attr:
            raise UsageError(f"model `{path}`: placeholder `{node.name}` ({node.op}) has no dtype; the graph is broken, "
                             f"re-export it")
        for key, value in node.attr.items():
            kind = value.WhichOneof("value")
            dtypes = ([value.type] if kind == "type" else list(value.list.type) if kind == "list"
                      else [value.tensor.dtype] if kind == "tensor" else [])
            bad = [d for d in dtypes if d not in valid]
            if bad:
                raise UsageError(f"model `{path}`: node `{node.name}` ({node.op}) has an invalid dtype {bad[0]} in "
                                 f"attribute `{key}`; the graph is broken, re-export it")


def _ancestors(graph_def, roots: Iterable[str]) -> set[str]:
    """`roots` (those in the graph) and every node they depend on."""
    inputs = {node.name: {_source(raw) for raw in node.input} for node in graph_def.node}
    return _reached_from(inputs, (r for r in roots if r in inputs))
