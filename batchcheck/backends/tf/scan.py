"""TensorFlow's op scan: refuse a graph that would act (files, processes, network, Python) before TensorFlow
imports it.

A model is a program. Before any import, every node is looked at: the top-level graph, every function of the
library (and the functions they call or name in attributes such as `f`, `then_branch`, `body`), and the parts of
a SavedModel or meta graph that loading runs. A meta graph's saver may read and write only the checkpoint the
loader gives it (its filename tensor); checkpoint ops an exporter left that nothing loading runs reaches are set
aside and said. Broken structure (a node input naming a missing node, two nodes of one name, a cycle, a function
calling itself) is refused too. Constructs that are legal but can hang or hold
state (queues, while loops, variables, hash tables, `Assert`) are flagged and still run. No TensorFlow import here.
"""
from __future__ import annotations

import re
from collections import deque
from pathlib import Path
from typing import Iterable

from ...errors import UsageError, names_list, one_line
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

# How a saver builds a checkpoint path from its filename: which inputs carry the path (the rest are suffixes, shard
# numbers). Identity passes it on, StringJoin appends to it, ShardedFilename numbers it, Pack lists the shards.
PATH_INPUTS = {"Identity": slice(0, 1), "StringJoin": slice(0, 1), "ShardedFilename": slice(0, 1),
               "Pack": slice(None)}
CHECKPOINT_PATH_INPUTS = {"MergeV2Checkpoints": slice(0, 2)}  # the others take the path as input 0
# A SavedModel's init op where the loaders look for it besides its signature (`__saved_model_init_op`), and the
# table initializers the default init op runs when there is none.
INIT_OP_COLLECTIONS = ("saved_model_main_op", "legacy_init_op", "table_initializer")
PLACEHOLDER_OPS = frozenset({"Placeholder", "PlaceholderV2", "PlaceholderWithDefault"})
BACK_EDGE_OPS = frozenset({"NextIteration", "RefNextIteration"})
NODE_NAME = re.compile(r"[A-Za-z0-9.][A-Za-z0-9_.\-/>]*\Z")  # TensorFlow's rule for node names
MAX_WHERE = 160  # characters of "where" kept in a message


def scan_graph_def(graph_def, path: Path, allowed_ops: Iterable[str] = (), *,
                   saver_roots: Iterable[str] | None = None, saver_file: str | None = None,
                   set_aside: Iterable[str] = ()) -> ScanReport:
    """Refuse `graph_def` (UsageError, one line) if it is broken or holds a refused op outside `allowed_ops`;
    return what it flags. `saver_roots` (SavedModels and meta graphs) name the saver's nodes: checkpoint I/O is
    allowed in what they reach, on the path the loader feeds to `saver_file` (the filename tensor's node), and in
    TF2's own save/restore functions when nothing else calls them. `set_aside` names top-level checkpoint ops that
    nothing loading runs reaches: not scanned."""
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
    nodes = {node.name: node for node in graph_def.node}
    skipped = frozenset(set_aside)
    for node in graph_def.node:
        if node.name not in skipped:
            in_saver = node.name in saver_nodes and _reads_saver_file(node, nodes, saver_file)
            _scan_node(node, "at top level", path, allowed, in_saver, report, nodes)
    for name, function in functions.items():
        where = f"in function `{name}`, {callers.get(name, 'in the library, not called')}"
        body = {node.name: node for node in function.node_def}
        for node in function.node_def:
            in_saver = name in saver_functions and _reads_arguments(node, body)
            _scan_node(node, where, path, allowed, in_saver, report, body)
    return report


def uncalled_functions(graph_def) -> list[str]:
    """The library functions no top-level node calls, directly or through the functions it calls."""
    functions = {f.signature.name: f for f in graph_def.library.function}
    called = _function_callers(graph_def, functions)
    return [name for name in functions if name not in called]


def scan_meta_graph(meta_graph, path: Path, allowed_ops: Iterable[str] = (), *,
                    runs: Iterable[str] | None = None) -> ScanReport:
    """Scan a MetaGraphDef's graph; its saver (checkpoint save/restore) may hold checkpoint I/O on the path the
    loader feeds it. `runs` names what loading and the check run besides the saver's restore (None: anything may
    run); checkpoint ops outside the saver that nothing of it reaches are set aside, and said in the notes."""
    saver = meta_graph.saver_def
    graph_def = meta_graph.graph_def
    roots = [_source(name) for name in (saver.filename_tensor_name, saver.save_tensor_name,
                                        saver.restore_op_name) if name]
    set_aside: list[str] = []
    if runs is not None:
        reached = _ancestors(graph_def, [*runs, _source(saver.restore_op_name)])
        saver_nodes = _ancestors(graph_def, roots)
        set_aside = [node.name for node in graph_def.node if node.op in CHECKPOINT_OPS
                     and node.name not in reached and node.name not in saver_nodes]
    report = scan_graph_def(graph_def, path, allowed_ops, saver_roots=roots,
                            saver_file=_source(saver.filename_tensor_name), set_aside=set_aside)
    if set_aside:
        report.notes.append(f"set aside {len(set_aside)} checkpoint op(s) the exporter left that nothing loading "
                            f"or the check runs ({names_list(set_aside)}): variables come only from the model's "
                            f"own checkpoint, through its saver")
    return report


def scan_saved_model(saved_model, path: Path, allowed_ops: Iterable[str] = ()) -> ScanReport:
    """Scan every meta graph of a SavedModel proto; what the loaders run there is its signatures and init op."""
    report = ScanReport()
    for meta_graph in saved_model.meta_graphs:
        scanned = scan_meta_graph(meta_graph, path, allowed_ops, runs=_loader_runs(meta_graph))
        report.flagged += scanned.flagged
        report.notes += [note for note in scanned.notes if note not in report.notes]
    return report


def _loader_runs(meta_graph) -> list[str]:
    """What the SavedModel loaders (and the check) run in `meta_graph` besides the saver's restore: every
    signature's tensors (the init op's signature too), the init op collections, local variables' initializers."""
    from tensorflow.core.framework import (
        variable_pb2,  # the SavedModel was parsed, so TensorFlow is loaded
    )

    names = [info.name for signature in meta_graph.signature_def.values()
             for info in [*signature.inputs.values(), *signature.outputs.values()]]
    for key, collection in meta_graph.collection_def.items():
        if key in INIT_OP_COLLECTIONS:
            names += collection.node_list.value
        elif key == "local_variables":
            names += [variable_pb2.VariableDef.FromString(raw).initializer_name for raw in collection.bytes_list.value]
    return [_source(name) for name in names if name]


def _scan_node(node, where: str, path: Path, allowed: frozenset, in_saver: bool, report: ScanReport,
               nodes: dict) -> None:
    category = refusal_category(node.op)
    if node.op in PRINT_OPS:
        stream = node.attr["output_stream"].s.decode("utf-8", "replace") if "output_stream" in node.attr else ""
        category = None if not stream or stream in CONSOLE_STREAMS else "file"
    if category and node.op not in allowed and not (in_saver and node.op in CHECKPOINT_OPS):
        raise UsageError(
            f"model `{path}`: refused to run {category} op {node.op} (node `{node.name}`, {_short(where)}"
            f"{_fixed_paths(node, nodes)}): a model must not touch files, processes, the network or Python; if "
            f"you have read the graph and trust it, pass --allow-op {node.op}")
    for pattern, kind in FLAGGED:
        if pattern.search(node.op):
            report.flagged.append(Finding(node.op, node.name, where, kind))
            break


def _path_sources(node, nodes: dict) -> set[str]:
    """Where a file op's path comes from: the node names (or function arguments, not in `nodes`) that its path
    inputs lead back to through the ops a saver builds paths with."""
    sources: set[str] = set()
    stack = [_source(raw) for raw in _data_inputs(node)[CHECKPOINT_PATH_INPUTS.get(node.op, slice(0, 1))]]
    seen: set[str] = set()
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        step = PATH_INPUTS.get(nodes[name].op) if name in nodes else None
        if step is None:
            sources.add(name)
        else:
            stack += [_source(raw) for raw in _data_inputs(nodes[name])[step]]
    return sources


def _data_inputs(node) -> list[str]:
    return [raw for raw in node.input if not raw.startswith("^")]


def _reads_saver_file(node, nodes: dict, saver_file: str | None) -> bool:
    """False for a top-level checkpoint op whose path is not built from the saver's filename tensor alone (what
    the loader feeds with the model's own checkpoint)."""
    return node.op not in CHECKPOINT_OPS or _path_sources(node, nodes) == {saver_file}


def _reads_arguments(node, body: dict) -> bool:
    """False for a checkpoint op in a saver function whose path is not built from the function's arguments alone
    (the filename its caller passes)."""
    return node.op not in CHECKPOINT_OPS or not any(source in body for source in _path_sources(node, body))


def _fixed_paths(node, nodes: dict) -> str:
    """', path `/some/path`' when a file op's path is a constant string in the graph, else ''."""
    if refusal_category(node.op) != "file" or not node.input:
        return ""
    paths = [value.decode("utf-8", "replace") for name in sorted(_path_sources(node, nodes))
             if name in nodes and nodes[name].op == "Const" for value in nodes[name].attr["value"].tensor.string_val]
    return f", path {names_list(paths, 2)}" if paths else ""


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
