"""`lint`: a static audit of a model's BatchNorm, dropout, flags and batch-axis arithmetic (no images).

Loads and prepares the model as `check` does, then reads the graph: live cond branches (flags resolved
from --feed or their defaults), BatchNorms and their constants, random ops that reach the data, nodes
that mix rows (found from TensorFlow's shape inference), training flags and the meta graph's update ops.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from .graph import kinds
from .graph.batch_rules import BatchMixing, batch_mixing
from .graph.findings import (
    SEVERITY_ORDER,
    LintFinding,
    constant_findings,
    foldable_findings,
    make_finding,
    training_findings,
)
from .graph.index import GraphIndex, dead_nodes
from .graph.values import branch_flags, flag_of
from .judge.causes import EXPLANATIONS
from .load.open import backend_for, open_model, whole_graph
from .model import LoadedModel
from .options import CheckConfig
from .probe import GraphFacts, Probe, graph_facts
from .result import versions
from .safety.supervise import stage
from .serial import Report

FLAG_NAMES = re.compile(r"(?i)(is_?train|training|learning_phase|phase|train_?mode|keep_?prob|dropout|(^|/|_)rate$)")
KEEP_NAMES = re.compile(r"(?i)keep")
RATE_NAMES = re.compile(r"(?i)(rate|drop)")
STATIC_KINDS = ("stale_statistics", "tiny_variance", "no_scale")
ROW_KINDS = ("batchnorm_training", "batch_reduction", "batch_size", "position", "row_selection")


@dataclass(frozen=True, kw_only=True)
class LintedModel:
    """What lint read: the model, its input and outputs, its size, and the flag values it resolved."""
    path: str
    format: str
    input: str
    input_dtype: str
    per_image_shape: list[int]
    outputs: list[str]
    nodes: int
    batchnorms: int
    flags: dict[str, str]


@dataclass(kw_only=True)
class LintResult(Report):
    """Lint's findings; `bool(result)` is True when no finding is an error."""
    findings: list[LintFinding]
    model: LintedModel
    versions: dict[str, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return not self.errors

    @property
    def errors(self) -> list[LintFinding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def exit_code(self) -> int:
        return 0 if self else 1

    def report_keys(self) -> dict:
        return {"verdict": "clean" if self else "errors"}


def lint(path: Path | str, config: CheckConfig | None = None, confirm: bool = False) -> LintResult:
    """Lint `path`; with `confirm`, run each runtime-confirmable finding once on a batch of two images."""
    config = config or CheckConfig()
    loaded, prepared = open_model(path, config)
    facts = graph_facts(prepared, config.feeds)
    index = facts.index
    findings = training_findings(index, facts.norms, facts.live)
    findings += _random_findings(facts)
    reported = {f.node for f in findings} | {n for bn in facts.norms if bn.batch_statistics for n in bn.nodes}
    findings += [_mixing_finding(index, m) for m in batch_mixing(index, facts.shapes, facts.values, facts.live)
                 if m.node not in reported]
    live_norms = [bn for bn in facts.norms if bn.name in facts.live]
    findings += constant_findings(index, live_norms, STATIC_KINDS)
    findings += foldable_findings(index, facts.norms, facts.live, facts.shapes)
    findings += _flag_findings(loaded, facts)
    findings += backend_for(loaded).lint_findings(loaded)
    findings = [backend_for(loaded).reworded(index, f) for f in findings]
    if confirm:
        findings = confirm_findings(facts, findings, config)
    findings.sort(key=lambda f: (SEVERITY_ORDER[f.severity], index.position.get(f.node, -1)))
    spec = prepared.input
    model = LintedModel(path=str(prepared.path), format=prepared.format, input=spec.tensor, input_dtype=spec.dtype,
                        per_image_shape=list(spec.per_image_shape), outputs=prepared.outputs, nodes=len(index.nodes),
                        batchnorms=len(facts.norms), flags=dict(facts.flag_values))
    return LintResult(findings=findings, model=model, versions=versions(backend_for(loaded).versions()))


def confirm_findings(facts: GraphFacts, findings: list[LintFinding], config: CheckConfig) -> list[LintFinding]:
    """Run each runtime-confirmable finding once: rows mixed, or the random value differing run to run."""
    stage("the confirmation runs")
    probe = Probe(facts, config)
    try:
        row_tensors = {f.node: f.evidence.get("output", f"{f.node}:0") for f in findings if f.kind in ROW_KINDS}
        measured = probe.mixes_rows(sorted(set(row_tensors.values()))) if row_tensors else {}
        confirmed = []
        for finding in findings:
            if finding.kind in ROW_KINDS:
                figures = measured[row_tensors[finding.node]]
                finding = finding.confirm(figures["mixes_rows"], measured=figures)
            elif finding.kind == "random_op":
                reached = f"{finding.evidence['reaches']}:0"
                figures = probe.varies_between_runs(reached)
                if not figures["differs_between_runs"]:  # a stateless mask: the same every run, but per batch
                    figures.update(probe.mixes_rows([reached])[reached])
                finding = finding.confirm(figures["differs_between_runs"] or figures.get("mixes_rows", False),
                                          measured=figures)
            confirmed.append(finding)
        return confirmed
    finally:
        probe.close()


# -- flags and branches ------------------------------------------------------------------------


def _training_nodes(facts: GraphFacts) -> set[str]:
    """BatchNorms with batch statistics and random ops: what a training flag switches on."""
    return ({bn.name for bn in facts.norms if bn.batch_statistics}
            | {n for n, info in facts.index.nodes.items() if info.kind in kinds.RANDOMS})


def _flag_findings(loaded: LoadedModel, facts: GraphFacts) -> list[LintFinding]:
    index, findings = facts.index, []
    training = _training_nodes(facts)
    switches_by_flag: dict[str, list[str]] = {}
    for switch, info in index.nodes.items():
        if info.kind == kinds.SWITCH and len(info.data_inputs) == 2:
            flag = flag_of(index, info.data_inputs[1][0])
            if flag and flag != facts.prepared.input.node:
                switches_by_flag.setdefault(flag, []).append(switch)
    for flag, switches in sorted(switches_by_flag.items()):
        live_if = {value: training - dead_nodes(index, {s: value for s in switches}) for value in (True, False)}
        if live_if[True] == live_if[False]:
            continue
        inference = "false" if len(live_if[False]) < len(live_if[True]) else "true"
        training_value = "true" if inference == "false" else "false"
        switched = sorted(live_if[training_value == "true"] - live_if[inference == "true"])
        current = facts.flag_values.get(flag)
        state = "" if current is None else f"; it is {current} here ({'inference' if current == inference else 'training'})"
        findings.append(make_finding(
            index, "training_flag", flag,
            f"placeholder `{flag}` selects training behaviour through tf.cond: {len(switched)} training-mode "
            f"BatchNorm or random node(s) run when it is {training_value}{state}",
            f"--feed {flag}={inference} selects inference; or export with the flag removed",
            default=_default_text(facts, flag), inference_value=inference, training_nodes=switched[:8]))
    kept = set(index.nodes)
    for node in whole_graph(loaded).nodes.values():
        if (node.kind in kinds.PLACEHOLDERS and node.name not in kept and node.name != facts.prepared.input.node
                and FLAG_NAMES.search(node.name)):
            findings.append(LintFinding(
                "unused_flag", "warning", node.name, node.op, node.name,
                f"placeholder `{node.name}` looks like a training flag but nothing the outputs need reads it: "
                f"feeding it changes nothing (the mode is fixed in the graph, e.g. FusedBatchNorm's is_training "
                f"attribute)", "export the graph again with the mode you want; do not rely on this placeholder"))
    return findings


def _default_text(facts: GraphFacts, flag: str) -> str | None:
    return facts.flag_values.get(flag) if facts.index.nodes[flag].kind == kinds.INPUT_WITH_DEFAULT else None


# -- random ops --------------------------------------------------------------------------------


def _random_findings(facts: GraphFacts) -> list[LintFinding]:
    index, values, findings = facts.index, facts.values, []
    for name in index.order:
        if name not in facts.live or index.nodes[name].kind not in kinds.RANDOMS:
            continue
        downstream = index.descendants([name]) & facts.live
        # the first data value it reaches: itself when it takes the data in (an ONNX Dropout)
        reaches = [n for n in index.order if n in downstream and values.get(n) == "data"
                   and (n == name or any(values.get(s) == "random" for s, _ in index.nodes[n].data_inputs))]
        if not reaches:
            continue
        random_part = _random_chain(facts, name)
        rates = sorted(n for n in _mask_sources(facts, random_part)
                       if index.nodes[n].kind in kinds.PLACEHOLDERS and n != facts.prepared.input.node)
        if any(_neutral(flag, facts.flag_values.get(flag)) for flag in rates):
            continue
        flags = rates + [flag for flag in branch_flags(index, name, facts.prepared.input.node) if flag not in rates]
        off = [f"--feed {flag}={_off_value(index, flag)}" for flag in flags]
        fix = (f"{' or '.join(off)} turns it off" if off else
               "export with is_training=False / training=False, or remove the dropout for inference")
        findings.append(make_finding(index, "random_op", name,
                                     f"random op {index.nodes[name].op} reaches the data at `{reaches[0]}` "
                                     f"(dropout left on?)", fix, reaches=reaches[0], flags=flags))
    return findings


def _random_chain(facts: GraphFacts, name: str) -> set[str]:
    """`name` and what is computed from it through random values alone (its dropout mask), not through the data
    (a later dropout whose shape comes from data this one changed)."""
    chain, stack = set(), [name]
    while stack:
        node = stack.pop()
        if node not in chain:
            chain.add(node)
            stack += [c for c in facts.index.nodes[node].consumers if facts.values.get(c) == "random"]
    return chain


def _mask_sources(facts: GraphFacts, mask: set[str]) -> set[str]:
    """What a random mask's values come from: its ancestors through constants and randomness, not through the data
    or its shape (a `keep_prob` that scales another dropout upstream does not set this one's rate)."""
    index, seen, stack = facts.index, set(), list(mask)
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        stack.extend(s for s, _ in index.nodes[name].data_inputs
                     if facts.values.get(s) in ("random", "const") and index.nodes[s].kind != kinds.SHAPE)
    return seen


def _off_value(index: GraphIndex, flag: str) -> str:
    """The value that turns dropout off through `flag`: false for a bool flag, 1.0 for keep_prob, else 0."""
    if index.nodes[flag].attrs.get("dtype") == "bool":
        return "false"
    return "1.0" if KEEP_NAMES.search(flag) else "0"


def _neutral(flag: str, value: str | None) -> bool:
    """A keep_prob fed 1 or a dropout rate fed 0: the random mask is all ones."""
    try:
        number = float(value) if value is not None else None
    except ValueError:
        return False
    if number is None:
        return False
    return (number == 1.0 and bool(KEEP_NAMES.search(flag))) or (number == 0.0 and bool(RATE_NAMES.search(flag)))


# -- rows of the batch -------------------------------------------------------------------------


def _mixing_finding(index: GraphIndex, mixing: BatchMixing) -> LintFinding:
    explanation, fix = EXPLANATIONS[mixing.cause]
    return make_finding(index, mixing.cause, mixing.node, f"{mixing.op}: {explanation}", fix, **mixing.evidence)
