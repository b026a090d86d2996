"""The scan of an ONNX model before onnxruntime sees it. An ONNX file is data plus operator domains: ops of the
standard domains run inside onnxruntime; an op of any other domain is code from outside the model (a custom-op
library) and is refused, as is any op that touches files, unless `--allow-op` names it. Model-local functions are
data too (their bodies are scanned), but not when they call themselves. The graph must be whole: every value
produced once, every input produced, no cycle, an opset this onnx knows."""
from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Iterable, Iterator

from ...errors import UsageError, one_line
from ...safety.scan import Finding, ScanReport, refusal_category
from .lite import newest_opset, version
from .protos import graph_attributes

STANDARD_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml", "com.microsoft", "ai.onnx.preview.training"})
FLAGGED = {"Loop": "while loop", "Scan": "scan loop"}  # can run long: they run under the limits
MAX_DEPTH = 64  # subgraphs nested deeper than this are refused (parsers stop well before)


def scan_model(model, path: Path, allowed_ops: Iterable[str] = ()) -> ScanReport:
    """Refuse `model` (UsageError, one line) when it is broken or holds a refused op outside `allowed_ops`;
    return what it flags."""
    _check_opset(model, path)
    functions = {(f.domain, f.name): f for f in model.functions}
    _refuse_recursion(functions, path)
    report, allowed = ScanReport(), frozenset(allowed_ops)
    for node, where in _walk(model.graph.node, "at top level", path):
        _scan_node(node, where, path, allowed, functions, report)
    for (domain, name), function in functions.items():
        for node, where in _walk(function.node, f"in function `{domain}:{name}`", path):
            _scan_node(node, where, path, allowed, functions, report)
    _check_structure(model.graph, path)
    return report


def qualified(node) -> str:
    """`OP` for an op of the standard ONNX domain, `DOMAIN:OP` for any other (as --allow-op names it)."""
    return node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}:{node.op_type}"


def _walk(nodes, where: str, path: Path, depth: int = 0) -> Iterator[tuple[object, str]]:
    """Every node of `nodes` and of the subgraphs they hold, with where it is."""
    if depth > MAX_DEPTH:
        raise UsageError(f"model `{path}`: subgraphs nested more than {MAX_DEPTH} deep ({_short(where)}); "
                         f"refused, re-export the model with flatter control flow")
    for node in nodes:
        yield node, where
        for graph in graph_attributes(node):
            yield from _walk(graph.node, f"in a subgraph of `{node.name}`, {where}", path, depth + 1)


def _scan_node(node, where: str, path: Path, allowed: frozenset, functions: dict, report: ScanReport) -> None:
    op, name = node.op_type, one_line(node.name)
    category = refusal_category(op)
    if category and op not in allowed and qualified(node) not in allowed:
        domain = f", domain {node.domain}" if node.domain else ""
        raise UsageError(f"model `{path}`: refused to run {category} op {op} (node `{name}`{domain}, {_short(where)}): "
                         f"a model must not touch files, processes, the network or Python; if you have read the "
                         f"graph and trust it, pass --allow-op {op}")
    if (node.domain not in STANDARD_DOMAINS and (node.domain, op) not in functions
            and qualified(node) not in allowed):
        raise UsageError(f"model `{path}`: refused to run op {op} of the custom domain {one_line(node.domain)} (node "
                         f"`{name}`, {_short(where)}): it is not ONNX but code from a custom-op library outside the "
                         f"model; if you have read the graph and trust it, pass --allow-op {qualified(node)}")
    if op in FLAGGED and node.domain in ("", "ai.onnx"):
        report.flagged.append(Finding(op, node.name, where, FLAGGED[op]))


def _short(where: str, most: int = 160) -> str:
    return where if len(where) <= most else where[:most - 1] + "…"


def _check_opset(model, path: Path) -> None:
    newest = newest_opset(path)
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx") and opset.version > newest:
            raise UsageError(f"model `{path}`: imports ONNX opset {opset.version}, newer than onnx {version()} "
                             f"knows (up to {newest}); re-export it with an older opset or upgrade onnx and "
                             f"onnxruntime")


def _refuse_recursion(functions: dict, path: Path) -> None:
    """A model-local function that calls itself, directly or through others, cannot be inlined: refuse it."""
    calls = {key: {(n.domain, n.op_type) for n, _ in _walk(f.node, "", path) if (n.domain, n.op_type) in functions}
             for key, f in functions.items()}
    for key in calls:
        seen, stack = set(), list(calls[key])
        while stack:
            callee = stack.pop()
            if callee == key:
                raise UsageError(f"model `{path}`: function `{key[1]}` (domain {key[0]}) is recursive, it calls "
                                 f"itself, so it cannot be inlined or bounded; export the model without recursive "
                                 f"functions")
            if callee not in seen:
                seen.add(callee)
                stack += calls[callee]


def _check_structure(graph, path: Path) -> None:
    """Refuse values produced twice, inputs nothing produces, outputs nothing produces, and cycles."""
    producers = {value.name: "a graph input" for value in graph.input}
    producers.update((tensor.name, "an initializer") for tensor in graph.initializer)
    for node in graph.node:
        for value in node.output:
            if value and value in producers:
                raise UsageError(f"model `{path}`: value `{one_line(value)}` is produced twice ({producers[value]} "
                                 f"and node `{one_line(node.name)}`); the graph is broken, re-export it")
            if value:
                producers[value] = f"node `{one_line(node.name)}`"
    for node in graph.node:
        for value in node.input:
            if value and value not in producers:
                raise UsageError(f"model `{path}`: node `{one_line(node.name)}` ({node.op_type}) takes value "
                                 f"`{one_line(value)}`, which no node, input or initializer produces; the graph is "
                                 f"broken, re-export it")
    for value in graph.output:
        if value.name not in producers:
            raise UsageError(f"model `{path}`: output `{one_line(value.name)}` is produced by nothing; the graph is "
                             f"broken, re-export it")
    _check_acyclic(graph, path)


def _check_acyclic(graph, path: Path) -> None:
    made_by = {value: index for index, node in enumerate(graph.node) for value in node.output if value}
    waiting = [sum(1 for v in set(node.input) if v in made_by) for node in graph.node]
    consumers: dict[int, list[int]] = {}
    for index, node in enumerate(graph.node):
        for value in set(node.input):
            if value in made_by:
                consumers.setdefault(made_by[value], []).append(index)
    ready = deque(i for i, count in enumerate(waiting) if count == 0)
    while ready:
        for consumer in consumers.get(ready.popleft(), ()):
            waiting[consumer] -= 1
            if waiting[consumer] == 0:
                ready.append(consumer)
    stuck = [graph.node[i].name for i, count in enumerate(waiting) if count > 0]
    if stuck:
        raise UsageError(f"model `{path}`: the graph has a cycle through `{one_line(stuck[0])}`; it cannot run, "
                         f"re-export it")
