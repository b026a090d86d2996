"""`lint`: a static audit of a model's BatchNorm, dropout, flags and batch-axis arithmetic (no images).

Loads and prepares the model as `check` does, then reads the graph: live cond branches (flags resolved
from --feed or their defaults), BatchNorms and their constants, random ops that reach the data, nodes
that mix rows (found from TensorFlow's shape inference), training flags and the meta graph's update ops.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from .graph.batch_rules import BatchMixing, batch_mixing, static_shapes
from .graph.batchnorm import BatchNorm, find_batchnorms
from .graph.findings import (
    SEVERITY_ORDER,
    LintFinding,
    constant_findings,
    foldable_findings,
    make_finding,
    training_findings,
)
from .graph.index import (
    PLACEHOLDER_OPS,
    RANDOM_OPS,
    SWITCH_OPS,
    GraphIndex,
    dead_nodes,
    value_kinds,
)
from .graph.values import constant_value, flag_of, placeholder_default
from .judge.causes import EXPLANATIONS
from .load.formats import LoadedModel, load_model
from .load.prepare import PreparedModel, prepare
from .options import CheckConfig
from .result import _jsonable, finite_for_json, versions
from .safety.supervise import stage

FLAG_NAMES = re.compile(r"(?i)(is_?train|training|learning_phase|phase|train_?mode|keep_?prob|dropout|(^|/|_)rate$)")
KEEP_NAMES = re.compile(r"(?i)keep")
RATE_NAMES = re.compile(r"(?i)(rate|drop)")
STATIC_KINDS = ("stale_statistics", "tiny_variance", "no_scale")


@dataclass
class LintResult:
    """Lint's findings; `bool(result)` is True when no finding is an error."""
    findings: list[LintFinding]
    model: dict
    versions: dict = field(default_factory=dict)

    def __bool__(self) -> bool:
        return not self.errors

    @property
    def errors(self) -> list[LintFinding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def exit_code(self) -> int:
        return 0 if self else 1

    def to_dict(self) -> dict:
        return {"verdict": "clean" if self else "errors", "findings": [f.to_dict() for f in self.findings],
                "model": self.model, "versions": self.versions}

    def to_json(self) -> str:
        return json.dumps(finite_for_json(self.to_dict()), indent=2, default=_jsonable, allow_nan=False) + "\n"


@dataclass
class GraphFacts:
    """What lint and explain read from a prepared graph: live nodes, value kinds, shapes, BatchNorms."""
    prepared: PreparedModel
    index: GraphIndex
    live: set[str]
    kinds: dict[str, str]
    shapes: dict
    norms: list[BatchNorm]
    flag_values: dict[str, str]


def load(path: Path | str, config: CheckConfig) -> tuple[LoadedModel, PreparedModel]:
    """Load and prepare `path` exactly as `check` does."""
    stage("loading")
    loaded = load_model(Path(path), config.format, signature=config.signature, checkpoint=config.checkpoint,
                        outputs=list(config.outputs), allowed_ops=config.allow_ops)
    prepared = prepare(loaded, input_name=config.input, outputs=list(config.outputs),
                       input_shape=config.input_shape, feeds=config.feeds)
    return loaded, prepared


def graph_facts(prepared: PreparedModel, feeds: dict[str, str]) -> GraphFacts:
    """Resolve flags, dead branches and live nodes, infer shapes and find the BatchNorms."""
    index = prepared.index or GraphIndex(prepared.graph_def)
    flag_values = _flag_values(index, {name.split(":")[0]: value for name, value in feeds.items()})
    taken = {}
    for switch, info in index.nodes.items():
        if info.op in SWITCH_OPS and len(info.data_inputs) == 2:
            value = _predicate_value(index, info.data_inputs[1][0], flag_values)
            if value is not None:
                taken[switch] = value
    dead = dead_nodes(index, taken)
    live = index.ancestors(t.split(":")[0] for t in prepared.outputs) - dead
    return GraphFacts(prepared, index, live, value_kinds(index, prepared.input.node),
                      static_shapes(prepared.graph_def), find_batchnorms(index, flag_values), flag_values)


def lint(path: Path | str, config: CheckConfig | None = None, confirm: bool = False) -> LintResult:
    """Lint `path`; with `confirm`, run each runtime-confirmable finding once on a batch of two images."""
    config = config or CheckConfig()
    loaded, prepared = load(path, config)
    facts = graph_facts(prepared, config.feeds)
    index = facts.index
    findings = training_findings(index, facts.norms, facts.live)
    findings += _random_findings(facts)
    reported = {f.node for f in findings} | {n for bn in facts.norms if bn.batch_statistics for n in bn.nodes}
    findings += [_mixing_finding(index, m) for m in batch_mixing(index, facts.shapes, facts.kinds, facts.live)
                 if m.node not in reported]
    live_norms = [bn for bn in facts.norms if bn.name in facts.live]
    findings += constant_findings(index, live_norms, STATIC_KINDS)
    findings += foldable_findings(index, facts.norms, facts.live, facts.shapes)
    findings += _flag_findings(loaded, facts)
    findings += _update_ops_findings(loaded, prepared)
    if confirm:
        from .explain import confirm_findings

        findings = confirm_findings(facts, findings, config)
    findings.sort(key=lambda f: (SEVERITY_ORDER[f.severity], index.position.get(f.node, -1)))
    spec = prepared.input
    model = {"path": str(prepared.path), "format": prepared.format, "input": spec.tensor, "input_dtype": spec.dtype,
             "per_image_shape": list(spec.per_image_shape), "outputs": prepared.outputs,
             "nodes": len(index.nodes), "batchnorms": len(facts.norms),
             "flags": dict(facts.flag_values)}
    return LintResult(findings, model, versions())


# -- flags and branches ------------------------------------------------------------------------


def _flag_values(index: GraphIndex, feeds: dict[str, str]) -> dict[str, str]:
    """Placeholder → the value it takes: the --feed, else a PlaceholderWithDefault's default."""
    values = {name: feeds.get(name, placeholder_default(index, name)) for name, info in index.nodes.items()
              if info.op in PLACEHOLDER_OPS}
    return {name: value for name, value in values.items() if value is not None}


def _predicate_value(index: GraphIndex, predicate: str, flag_values: dict[str, str]) -> bool | None:
    """A cond predicate's value when it is a constant or a flag with a known value."""
    value = constant_value(index, predicate)
    if value is not None and value.size == 1:
        return bool(value.reshape(-1)[0])
    flag = flag_of(index, predicate)
    negated = flag is not None and any(index.nodes[n].op == "LogicalNot" for n in index.ancestors([predicate]))
    if flag is None or flag not in flag_values or negated:
        return None
    return flag_values[flag].strip().lower() in ("true", "1", "1.0")


def _training_nodes(facts: GraphFacts) -> set[str]:
    """BatchNorms with batch statistics and random ops: what a training flag switches on."""
    return ({bn.name for bn in facts.norms if bn.batch_statistics}
            | {n for n, info in facts.index.nodes.items() if info.op in RANDOM_OPS})


def _flag_findings(loaded: LoadedModel, facts: GraphFacts) -> list[LintFinding]:
    index, findings = facts.index, []
    training = _training_nodes(facts)
    switches_by_flag: dict[str, list[str]] = {}
    for switch, info in index.nodes.items():
        if info.op in SWITCH_OPS and len(info.data_inputs) == 2:
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
    for node in loaded.graph_def.node:
        if (node.op in PLACEHOLDER_OPS and node.name not in kept and node.name != facts.prepared.input.node
                and FLAG_NAMES.search(node.name)):
            findings.append(LintFinding(
                "unused_flag", "warning", node.name, node.op, node.name,
                f"placeholder `{node.name}` looks like a training flag but nothing the outputs need reads it: "
                f"feeding it changes nothing (the mode is fixed in the graph, e.g. FusedBatchNorm's is_training "
                f"attribute)", "export the graph again with the mode you want; do not rely on this placeholder"))
    return findings


def _default_text(facts: GraphFacts, flag: str) -> str | None:
    return facts.flag_values.get(flag) if facts.index.nodes[flag].op == "PlaceholderWithDefault" else None


# -- random ops --------------------------------------------------------------------------------


def _random_findings(facts: GraphFacts) -> list[LintFinding]:
    index, kinds, findings = facts.index, facts.kinds, []
    for name in index.order:
        if name not in facts.live or index.nodes[name].op not in RANDOM_OPS:
            continue
        downstream = index.descendants([name]) & facts.live
        reaches = [n for n in index.order if n in downstream and kinds.get(n) == "data"
                   and any(kinds.get(s) == "random" for s, _ in index.nodes[n].data_inputs)]
        if not reaches:
            continue
        random_part = {n for n in downstream if kinds.get(n) == "random"}
        flags = sorted(n for n in index.ancestors(random_part | {name})
                       if index.nodes[n].op in PLACEHOLDER_OPS and n != facts.prepared.input.node)
        if any(_neutral(flag, facts.flag_values.get(flag)) for flag in flags):
            continue
        off = [f"--feed {flag}={_off_value(index, flag)}" for flag in flags]
        fix = (f"{' or '.join(off)} turns it off" if off else
               "export with is_training=False / training=False, or remove the dropout for inference")
        findings.append(make_finding(index, "random_op", name,
                                     f"random op {index.nodes[name].op} reaches the data at `{reaches[0]}` "
                                     f"(dropout left on?)", fix, reaches=reaches[0], flags=flags))
    return findings


def _off_value(index: GraphIndex, flag: str) -> str:
    """The value that turns dropout off through `flag`: false for a bool flag, 1.0 for keep_prob, else 0."""
    if index.defs[flag].attr["dtype"].type == 10:  # DT_BOOL
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


# -- meta graph update ops ---------------------------------------------------------------------


def _update_ops_findings(loaded: LoadedModel, prepared: PreparedModel) -> list[LintFinding]:
    """`update_ops_not_run` when a meta graph's train op does not depend on its UPDATE_OPS collection."""
    if loaded.format != "meta-checkpoint":
        return []
    from tensorflow.core.protobuf import meta_graph_pb2

    meta = meta_graph_pb2.MetaGraphDef()
    meta.ParseFromString(Path(loaded.path).read_bytes())
    update_ops = [n.split(":")[0] for n in meta.collection_def["update_ops"].node_list.value]
    if not update_ops:
        return []
    index = GraphIndex(meta.graph_def)
    train_ops = [n.split(":")[0] for n in meta.collection_def["train_op"].node_list.value]
    train_ops = train_ops or [n for n, info in index.nodes.items()
                              if info.op.startswith(("Apply", "ResourceApply")) and not info.consumers]
    train_ops = [t for t in train_ops if t in index]
    missing = {t: sorted(set(update_ops) - index.ancestors([t])) for t in train_ops}
    skipping = [t for t, ops in missing.items() if ops]
    if not skipping:
        return []
    train_op = skipping[0]
    return [LintFinding(
        "update_ops_not_run", "error", train_op, index.nodes[train_op].op, train_op,
        f"the train op `{train_op}` does not run the {len(missing[train_op])} UPDATE_OPS (e.g. "
        f"`{missing[train_op][0]}`): the moving mean/variance are never updated during training",
        "build the train op under tf.control_dependencies(tf.compat.v1.get_collection(tf.GraphKeys.UPDATE_OPS)) "
        "(slim: create_train_op does it), train again and export",
        evidence={"update_ops": len(update_ops), "not_run": missing[train_op][:8], "train_ops": train_ops})]
