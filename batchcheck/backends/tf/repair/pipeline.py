"""`fix()`: rewrite a batch-dependent graph for inference, optionally fold its BatchNorm, write it, prove it."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ....errors import UsageError, check_argument, did_you_mean
from ....graph.batchnorm import BatchNorm
from ....load.images import input_pool
from ....model import LoadedModel, PreparedModel
from ....options import CheckConfig
from ....repair.result import Repaired, Rewrite, StatisticsSource
from ....safety.supervise import stage
from ..graph import PLACEHOLDER_OPS, graph_index
from ..prepare import image_input, prepare
from .calibrate import recalibrate
from .fold import fold_batchnorms
from .graphdef import copy_graph_def, prune_unused
from .prove import TFRepairRuns, batchnorm_overrides, dropout_override
from .rewrite import (
    batchnorm_scope,
    batchnorms_to_inference,
    constant_flags,
    dropout_to_identity,
    training_batchnorms,
)
from .statistics import cond_branch_sources, known_statistics


def fix(loaded: LoadedModel, out: Path, config: CheckConfig, *, calibrate: Path | None, fold_bn: bool) -> Repaired:
    """Rewrite `loaded` for inference into `out` (a frozen GraphDef), with the runs that prove it; `UsageError`
    when it cannot be fixed. `config` holds the model options (input, outputs, feeds, images, check trials…)."""
    rewritten = _rewritten(loaded, config)
    prepared, spec = rewritten.prepared, rewritten.prepared.input
    batchnorms = training_batchnorms(graph_index(prepared.graph))
    statistics, sources, calibration_images = _statistics(loaded, rewritten, batchnorms, config, calibrate)
    fixed, bn_rewrites = batchnorms_to_inference(copy_graph_def(prepared.graph), batchnorms, statistics)
    rewrites = rewritten.rewrites + bn_rewrites
    protected = [spec.node, *(t.split(":")[0] for t in prepared.outputs), *(p.name for p in prepared.placeholders)]
    fixed = prune_unused(fixed, protected)
    if fold_bn:
        fixed, fold_rewrites = fold_batchnorms(fixed, protected)
        rewrites += fold_rewrites
    reference_feeds = {**config.feeds, **{flag: str(value).lower() for flag, value in rewritten.flags.items()},
                       **_dropout_off_values(loaded.graph, prepared.graph, config.feeds)}
    reference = prepare(loaded, input_name=spec.node, outputs=prepared.outputs, input_shape=spec.per_image_shape,
                        feeds=reference_feeds)
    out.write_bytes(fixed.SerializeToString())
    overrides = ([dropout_override(mask, unscaled) for mask, unscaled in rewritten.masks.items()]
                 + [o for bn in batchnorms for o in batchnorm_overrides(bn, *statistics[bn.name])])
    position = graph_index(reference.graph).position
    overrides.sort(key=lambda override: position[override.tensor.split(":")[0]])
    present = {n.name for n in fixed.node}
    shipped = (spec.shipped_batch,) if (spec.shipped_batch or 1) > 1 else config.batch_sizes  # it may run only there
    recheck = dataclasses.replace(
        config, format="pb", checkpoint=None, input=spec.node, outputs=tuple(prepared.outputs),
        input_shape=spec.per_image_shape, feeds={k: v for k, v in config.feeds.items() if k.split(":")[0] in present},
        batch_sizes=shipped)
    runs = TFRepairRuns(fixed, reference.graph, spec.tensor, prepared.outputs,
                        {k: v for k, v in prepared.feeds.items() if k.split(":")[0] in present}, reference.feeds,
                        overrides)
    return Repaired(out, spec.tensor, prepared.outputs, rewrites, sources, calibration_images,
                    _reference_text(rewritten.flags, rewritten.masks, sources, calibration_images > 0), recheck, runs)


@dataclass
class _Rewritten:
    """The graph after the rewrites that need no statistics (flags, conds, dropout), prepared."""
    prepared: PreparedModel
    rewrites: list[Rewrite]
    flags: dict[str, bool]   # flag placeholder → the constant it became
    masks: dict[str, str]    # dropout mask node → the unscaled tensor it now forwards


def _rewritten(loaded, config: CheckConfig) -> _Rewritten:
    keep = _kept_nodes(loaded, config)
    graph_def, rewrites, flags = constant_flags(copy_graph_def(loaded.graph), config.feeds)
    graph_def, dropout_rewrites, masks = dropout_to_identity(graph_def, _data_sources(loaded, config))
    remaining = {n.name for n in graph_def.node}
    graph_def = prune_unused(graph_def, [name for name in keep if name in remaining])
    present = {n.name for n in graph_def.node}
    feeds = {k: v for k, v in config.feeds.items() if k.split(":")[0] in present}
    prepared = prepare(dataclasses.replace(loaded, graph=graph_def), input_name=config.input,
                       outputs=list(config.outputs), input_shape=config.input_shape, feeds=feeds)
    return _Rewritten(prepared, rewrites + dropout_rewrites, flags, masks)


def _statistics(loaded, rewritten: _Rewritten, batchnorms: list[BatchNorm], config: CheckConfig,
                calibrate: Path | None) -> tuple[dict, list[StatisticsSource], int]:
    """Each training BN's statistics (graph, checkpoint, Keras file, else recalibration), their sources,
    and how many images recalibration used."""
    statistics, sources = known_statistics(batchnorms, loaded.graph, loaded.format, loaded.path,
                                           config.checkpoint)
    sources += cond_branch_sources(loaded.graph, {n.name for n in rewritten.prepared.graph.node}, rewritten.flags)
    missing = [bn for bn in batchnorms if bn.name not in statistics]
    if not missing:
        return statistics, sources, 0
    if calibrate is None:
        raise UsageError(f"model `{loaded.path}`: {len(missing)} BatchNorm(s) in training mode (e.g. "
                         f"`{missing[0].name}`) and no moving statistics in the graph"
                         f"{' or checkpoint' if loaded.format == 'meta-checkpoint' else ''}; pass --calibrate DIR "
                         f"(representative images) to recompute them")
    statistics, count = _calibrated(rewritten.prepared, batchnorms, missing, statistics, calibrate, config)
    sources += [StatisticsSource(bn.name, batchnorm_scope(bn), "calibration",
                                 f"population mean/variance over {count} images in `{calibrate}`, "
                                 f"earlier BatchNorms in inference mode") for bn in missing]
    return statistics, sources, count


def _kept_nodes(loaded, config: CheckConfig) -> list[str]:
    """The nodes the fixed graph must keep: the outputs given or declared, else the original's sinks."""
    named = list(config.outputs) or loaded.outputs
    present = {node.name for node in loaded.graph.node}
    for name in config.outputs:  # checked here: the rewrites below prune what they do not keep
        check_argument(name.split(":")[0] in present, "--output `{}`: no such node in `{}`{}", name, loaded.path,
                       did_you_mean(name.split(":")[0], present))
    if named:
        return [name.split(":")[0] for name in named]
    index = graph_index(loaded.graph)
    return [name for name in index.order if not index.nodes[name].consumers
            and index.nodes[name].op not in ("NoOp", "Assert", "Const")]


def _data_sources(loaded: LoadedModel, config: CheckConfig) -> list[str]:
    """Where the images enter: --input, else the input `check` would feed and the placeholders with a known shape
    of rank 1 or more (a flag, `rate` or `keep_prob` is a scalar or has no shape), else every placeholder."""
    if config.input:
        return [config.input.split(":")[0]]
    placeholders = [n for n in loaded.graph.node if n.op in PLACEHOLDER_OPS]
    shaped = [n.name for n in placeholders if "shape" in n.attr and not n.attr["shape"].shape.unknown_rank
              and len(n.attr["shape"].shape.dim) >= 1]
    found = image_input(loaded, config.input_shape)
    return list(dict.fromkeys([*([found] if found else []), *shaped])) or [n.name for n in placeholders]


def _dropout_off_values(graph_def, fixed_graph_def, feeds: dict[str, str]) -> dict[str, str]:
    """Values for required placeholders that only dropout used (`keep_prob` 1, `rate` 0), so that the
    original runs for the reference and the latency figures."""
    present = {n.name for n in fixed_graph_def.node}
    return {n.name: "1" if "keep" in n.name.lower() else "0" for n in graph_def.node
            if n.op in ("Placeholder", "PlaceholderV2") and n.name not in present and n.name not in feeds
            and n.attr["dtype"].type in (1, 2)}  # float32, float64


def _calibrated(prepared, batchnorms: list[BatchNorm], missing: list[BatchNorm], statistics: dict,
                directory: Path, config: CheckConfig) -> tuple[dict, int]:
    """Statistics of the `missing` BNs recomputed over the images in `directory`, layer by layer."""
    spec = prepared.input
    try:
        pool = input_pool(spec, config, Path(directory))
    except UsageError as exc:  # its messages name --images, the check's option for the same kind of folder
        raise UsageError(str(exc).replace("--images", "--calibrate")) from None
    placeholders = {bn.name: (np.zeros(_channels(bn), np.float32), np.ones(_channels(bn), np.float32))
                    for bn in missing}
    graph_def, _ = batchnorms_to_inference(copy_graph_def(prepared.graph), batchnorms,
                                           {**statistics, **placeholders})
    stage("the recalibration of BatchNorm statistics")
    return recalibrate(graph_def, spec.tensor, prepared.feeds, missing, pool.array, statistics)


def _channels(bn: BatchNorm) -> int:
    for parameter in (bn.gamma, bn.beta):
        if parameter.value is not None and parameter.value.size:
            return int(parameter.value.size)
    raise UsageError(f"BatchNorm `{bn.name}`: its channel count is unknown (no constant gamma or beta); "
                     f"it cannot be recalibrated")


def _reference_text(flags: dict[str, bool], masks: dict[str, str], sources: list[StatisticsSource],
                    calibrated: bool) -> str:
    """What the outputs are compared with, in words."""
    parts = [f"{flag}={str(value).lower()}" for flag, value in flags.items()]
    parts += ["dropout off"] if masks else []
    origins = sorted({s.source for s in sources})
    parts += [f"BatchNorm statistics from {' and '.join(origins)}"] if origins else []
    what = "the calibrated reference: the original graph" if calibrated else "the original graph"
    return what + (f" with {', '.join(parts)}" if parts else "")
