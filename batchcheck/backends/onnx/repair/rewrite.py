"""Rewrites of an ONNX ModelProto for inference, in place: a Dropout in training mode → Identity, a random op's noise
where it meets the data → the data, BatchNormalization in training mode → inference mode with its running statistics
(or recalibrated ones); and the pruning of what no output needs."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ....errors import UsageError
from ....graph import kinds
from ....graph.index import layer_of, value_kinds
from ....repair.result import Rewrite
from ..graph import OP_KINDS, graph_index
from ..prepare import needed_nodes
from ..protos import ORT_DOMAINS, Protos, training_dropout, training_norm

RANDOM_OPS = frozenset(op for op, kind in OP_KINDS.items() if kind == kinds.RANDOM)
ADDITIVE_OPS = frozenset({"Add", "Sub"})
TRAINING_MODE_ATTRIBUTE = 14  # BatchNormalization's `training_mode` from this opset on
IS_TEST_ATTRIBUTE = 7  # and its `is_test` before this one


@dataclass(frozen=True)
class TrainingNorm:
    """A BatchNormalization in training mode: its input, channels, and running statistics unless they cannot be used
    (`unusable` says why)."""
    node: str
    input: str
    channels: int | None
    running: tuple[np.ndarray, np.ndarray] | None  # mean, variance
    names: tuple[str, str]  # the values holding them
    unusable: str | None


def training_norms(model) -> list[TrainingNorm]:
    """Every BatchNormalization in training mode, in graph order; `UsageError` when one's training outputs are
    read (they have no inference value)."""
    p, found = Protos(model), []
    readers = value_readers(model)
    for node in model.graph.node:
        if node.op_type != "BatchNormalization" or node.domain not in ORT_DOMAINS or not training_norm(node, p.opset):
            continue
        for value in node.output[1:]:
            if value and value in readers:
                raise UsageError(f"BatchNormalization `{node.name}`: its training output `{value}` is read by "
                                 f"`{readers[value][0]}`, which has no inference value; export the model from eval() "
                                 f"mode")
        scale, bias, mean, variance = (p.constant_input(node, slot) for slot in (1, 2, 3, 4))
        channels = next((int(v.size) for v in (scale, bias) if v is not None and v.size), None)
        unusable = None
        if mean is None or variance is None or not mean.size or mean.size != variance.size:
            unusable = "running statistics absent (no constant running_mean/running_var)"
        elif not mean.any() and np.all(variance == 1):  # what lint calls stale_statistics
            unusable = "running statistics stale (running_mean 0 and running_var 1, their initial values: never updated)"
        running = None if unusable else (mean.astype(np.float32), variance.astype(np.float32))
        found.append(TrainingNorm(node.name, node.input[0], channels, running, (node.input[3], node.input[4]),
                                  unusable))
    return found


def norms_to_inference(model, norms: list[TrainingNorm],
                       statistics: dict[str, tuple[np.ndarray, np.ndarray]]) -> list[Rewrite]:
    """Each of `norms` in inference mode (its training outputs dropped) with the `statistics` given for it (new
    initializers), else with its running statistics."""
    nodes, opset = {n.name: n for n in model.graph.node}, Protos(model).opset
    rewrites = []
    for norm in norms:
        node = nodes[norm.node]
        _set_inference_mode(node, opset)
        what = "training_mode=0 with its running mean/variance"
        if norm.node in statistics:
            for slot, suffix, value in zip((3, 4), ("mean", "variance"), statistics[norm.node]):
                node.input[slot] = add_initializer(model, f"{norm.node}/calibrated_{suffix}", value)
            what = "training_mode=0 with recalibrated mean/variance"
        rewrites.append(Rewrite("bn_inference", [norm.node], f"`{layer_of(norm.node)}`: {what}"))
    return rewrites


def _set_inference_mode(node, opset: int) -> None:
    del node.output[1:]  # the training outputs; from opset 7 to 13 asking for them is what turns training on
    if opset >= TRAINING_MODE_ATTRIBUTE:
        set_attribute(node, "training_mode", 0)
    elif opset < IS_TEST_ATTRIBUTE:
        set_attribute(node, "is_test", 1)


def set_attribute(node, name: str, value) -> None:
    """Set (or replace) attribute `name` of `node`."""
    from onnx import helper

    kept = [a for a in node.attribute if a.name != name]
    del node.attribute[:]
    node.attribute.extend([*kept, helper.make_attribute(name, value)])


# -- dropout and noise ------------------------------------------------------------------------------------------

def dropouts_to_identity(model) -> tuple[list[Rewrite], dict[str, str]]:
    """Each Dropout in training mode becomes an Identity of its data (keeping its name and output); the rewrites and
    {output value: the data value it now forwards}."""
    p, readers = Protos(model), value_readers(model)
    rewrites, replaced = [], {}
    for node in model.graph.node:
        if node.op_type != "Dropout" or node.domain not in ORT_DOMAINS or not training_dropout(node, p):
            continue
        mask = next((v for v in node.output[1:] if v in readers), None)
        if mask is not None:
            raise UsageError(f"Dropout `{node.name}`: its mask `{mask}` is read by `{readers[mask][0]}`, which has no "
                             f"inference value; export the model from eval() mode")
        data, output = node.input[0], node.output[0]
        _make_identity(node, data)
        replaced[output] = data
        rewrites.append(Rewrite("dropout_identity", [node.name],
                                f"`{node.name}` (Dropout in training mode) → identity of `{data}`"))
    return rewrites, replaced


def noise_to_identity(model, image: str) -> tuple[list[Rewrite], dict[str, str]]:
    """Each Add (or Sub) that adds a random op's values to exactly one value computed from the image becomes an
    Identity of that value: noise off. A random mask (a Mul) is left as it is: what a hand-written dropout's
    inference value is, its scaling says, and the re-check fails on it. The rewrites and {output value: the data
    value it now forwards}."""
    p, index = Protos(model), graph_index(model)
    value_kind = value_kinds(index, p.producer[image][0])
    data = {value for value, (node, _) in p.producer.items() if value_kind.get(node) == "data"}
    noisy: set[str] = set()
    rewrites, replaced = [], {}
    for node in model.graph.node:
        inputs = p.inputs_of(node)
        if node.op_type not in RANDOM_OPS and not any(v in noisy for v in inputs):
            continue
        clean = [v for v in inputs if v in data and v not in noisy]
        if node.op_type not in ADDITIVE_OPS or len(clean) != 1 or node.op_type == "Sub" and node.input[0] != clean[0]:
            noisy.update(node.output)
            continue
        origin = index.ancestors([p.producer[v][0] for v in inputs if v in noisy])
        random_ops = sorted(n for n in origin if index.nodes[n].op in RANDOM_OPS)
        output, name, op = node.output[0], node.name, node.op_type
        _make_identity(node, clean[0])
        replaced[output] = clean[0]
        rewrites.append(Rewrite("dropout_identity", [name, *random_ops],
                                f"`{name}` ({op} of noise from {', '.join(random_ops)}) → identity of `{clean[0]}`"))
    return rewrites, replaced


def _make_identity(node, source: str) -> None:
    """Turn `node` into an Identity of `source`, keeping its name and first output (its readers are untouched)."""
    del node.input[:]
    node.input.append(source)
    del node.output[1:]
    del node.attribute[:]
    node.op_type, node.domain = "Identity", ""


# -- the model's values -----------------------------------------------------------------------------------------

def copy_model(model):
    copy = type(model)()
    copy.CopyFrom(model)
    return copy


def value_readers(model) -> dict[str, list[str]]:
    """Who reads each value: node names, and `graph output` for the model's outputs."""
    p, readers = Protos(model), {}
    for node in model.graph.node:
        for value in p.inputs_of(node):
            readers.setdefault(value, []).append(node.name)
    for output in model.graph.output:
        readers.setdefault(output.name, []).append("graph output")
    return readers


def add_initializer(model, wanted: str, value: np.ndarray) -> str:
    """Add an initializer holding `value` under `wanted` (made unique) and return its name."""
    from onnx import numpy_helper

    taken = {t.name for t in model.graph.initializer} | {i.name for i in model.graph.input}
    taken |= {v for node in model.graph.node for v in node.output}
    name, count = wanted, 1
    while name in taken:
        name, count = f"{wanted}_{count}", count + 1
    model.graph.initializer.append(numpy_helper.from_array(np.asarray(value), name))
    return name


def select_outputs(model, values: list[str]) -> None:
    """Make `values` the model's outputs, typed as declared or as ONNX infers them."""
    from onnx import helper

    types = Protos(model).types
    declared = {v.name: v for v in [*model.graph.output, *model.graph.value_info]}
    chosen = [declared[v] if v in declared else helper.make_value_info(v, types[v]) if v in types
              else helper.make_empty_tensor_value_info(v) for v in values]
    del model.graph.output[:]
    model.graph.output.extend(chosen)


def prune(model) -> None:
    """Keep only the nodes the model's outputs need, the initializers they read, and the shapes of their values."""
    p = Protos(model)
    outputs = [o.name for o in model.graph.output]
    needed = needed_nodes(p, outputs)
    nodes = [n for n in model.graph.node if n.name in needed]
    read = {v for n in nodes for v in p.inputs_of(n)} | set(outputs)
    produced = {v for n in nodes for v in n.output}
    unused = {t.name for t in model.graph.initializer if t.name not in read}
    for field, kept in ((model.graph.node, nodes),
                        (model.graph.initializer, [t for t in model.graph.initializer if t.name not in unused]),
                        (model.graph.input, [i for i in model.graph.input if i.name not in unused]),
                        (model.graph.value_info, [v for v in model.graph.value_info if v.name in produced])):
        kept = list(kept)
        del field[:]
        field.extend(kept)
