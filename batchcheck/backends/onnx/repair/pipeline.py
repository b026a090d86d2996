"""`fix()` for an ONNX model: Dropout and noise off, BatchNormalization in inference mode (recalibrated where its
running statistics are stale or absent), optionally folded into its Conv/Gemm; written as ONNX, with the runs that
prove it. Dynamic quantization is refused: no rewrite makes it batch-invariant."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from ....errors import BatchcheckBug, UsageError, check_argument, first_line
from ....graph.index import layer_of
from ....load.images import input_pool
from ....model import LoadedModel, PreparedModel
from ....options import CheckConfig
from ....repair.result import Repaired, StatisticsSource
from ....safety.supervise import stage
from ..prepare import prepare
from ..protos import Protos
from ..words import BY_OP
from .calibrate import recalibrate
from .fold import fold_norms
from .prove import OnnxRepairRuns, batchnorm_override, passthrough
from .rewrite import (
    TrainingNorm,
    copy_model,
    dropouts_to_identity,
    noise_to_identity,
    norms_to_inference,
    prune,
    select_outputs,
    training_norms,
)


def fix(loaded: LoadedModel, out: Path, config: CheckConfig, *, calibrate: Path | None, fold_bn: bool) -> Repaired:
    """Rewrite `loaded` for inference into `out` (an ONNX file), with the runs that prove it; `UsageError` when it
    cannot be fixed. `config` holds the model options (input, outputs, feeds, images, check trials…)."""
    check_argument(out.suffix.lower() == ".onnx", "-o {}: an ONNX model is written as ONNX; give a path ending in "
                   ".onnx", out)
    original = prepare(loaded, input_name=config.input, outputs=list(config.outputs), input_shape=config.input_shape,
                       feeds=config.feeds)
    _refuse_dynamic_quantization(loaded.path, original.graph)
    outputs = [Protos(original.graph).value(tensor) for tensor in original.outputs]
    model = copy_model(loaded.graph)
    if config.outputs:
        select_outputs(model, outputs)
    prune(model)
    rewrites, dropped = dropouts_to_identity(model)
    noise_rewrites, quieted = noise_to_identity(model, original.input.node)
    rewrites += noise_rewrites
    prune(model)
    norms = training_norms(model)
    statistics, sources, calibration_images = _statistics(model, loaded.path, original, norms, config, calibrate)
    rewrites += norms_to_inference(model, norms, {n.node: statistics[n.node] for n in norms if n.unusable})
    prune(model)
    if fold_bn:
        rewrites += fold_norms(model)
        prune(model)
    _check_valid(model, loaded)
    out.write_bytes(model.SerializeToString())
    recheck = dataclasses.replace(config, format="onnx", checkpoint=None,
                                  input=original.input.node if config.input else None,
                                  outputs=tuple(outputs) if config.outputs else ())
    fixed = prepare(LoadedModel(out, "onnx", model, backend="onnx"), input_name=recheck.input,
                    outputs=list(recheck.outputs), input_shape=config.input_shape, feeds=config.feeds)
    protos = Protos(loaded.graph)
    overrides = ([passthrough(value, source) for value, source in {**dropped, **quieted}.items()]
                 + [batchnorm_override(protos, n.node, *statistics[n.node]) for n in norms])
    runs = OnnxRepairRuns(fixed, original, overrides)
    return Repaired(out, original.input.tensor, fixed.outputs, rewrites, sources, calibration_images,
                    _reference_text(dropped, quieted, sources, calibration_images > 0), recheck, runs)


def _refuse_dynamic_quantization(path: Path, model) -> None:
    quantizers = [node.name for node in model.graph.node if node.op_type == "DynamicQuantizeLinear"]
    if quantizers:
        what, instead = BY_OP[("DynamicQuantizeLinear", "batch_reduction")]
        raise UsageError(f"model `{path}`: {len(quantizers)} DynamicQuantizeLinear node(s) (e.g. `{quantizers[0]}`), "
                         f"{what}; no rewrite makes that batch-invariant: {instead}")


def _statistics(model, path: Path, original: PreparedModel, norms: list[TrainingNorm], config: CheckConfig,
                calibrate: Path | None) -> tuple[dict, list[StatisticsSource], int]:
    """Each training BatchNorm's statistics (its running statistics, else recalibrated), their sources, and how
    many images recalibration used."""
    statistics = {n.node: n.running for n in norms if not n.unusable}
    sources = [StatisticsSource(n.node, layer_of(n.node), "graph",
                                f"running mean/variance `{n.names[0]}`, `{n.names[1]}`")
               for n in norms if not n.unusable]
    missing = [n for n in norms if n.unusable]
    if not missing:
        return statistics, sources, 0
    if calibrate is None:
        raise UsageError(f"model `{path}`: {len(missing)} BatchNormalization node(s) in training mode (e.g. "
                         f"`{missing[0].node}`) with {missing[0].unusable}; pass --calibrate DIR (representative "
                         f"images) to recompute them")
    unknown = next((n for n in missing if n.channels is None), None)
    if unknown is not None:
        raise UsageError(f"BatchNormalization `{unknown.node}`: its channel count is unknown (no constant scale or "
                         f"B); it cannot be recalibrated")
    try:
        pool = input_pool(original.input, config, Path(calibrate))
    except UsageError as exc:  # its messages name --images, the check's option for the same kind of folder
        raise UsageError(str(exc).replace("--images", "--calibrate")) from None
    stage("the recalibration of BatchNorm statistics")
    feeds = {name.rpartition(":")[0]: value for name, value in original.feeds.items()}
    statistics.update(recalibrate(model, path, original.input, feeds, norms, pool.array))
    sources += [StatisticsSource(n.node, layer_of(n.node), "calibration",
                                 f"{n.unusable}; population mean/variance over {len(pool.array)} images in "
                                 f"`{calibrate}`, earlier BatchNorms in inference mode") for n in missing]
    return statistics, sources, len(pool.array)


def _check_valid(model, loaded: LoadedModel) -> None:
    """The fixed model passes onnx.checker, unless the original did not either."""
    from onnx import checker

    try:
        checker.check_model(model)
    except checker.ValidationError as exc:
        try:
            checker.check_model(loaded.graph)
        except checker.ValidationError:
            return
        raise BatchcheckBug(f"the fixed model fails onnx.checker ({first_line(exc)})") from None


def _reference_text(dropped: dict, quieted: dict, sources: list[StatisticsSource], calibrated: bool) -> str:
    """What the outputs are compared with, in words."""
    parts = ["dropout off"] if dropped else []
    parts += ["noise off"] if quieted else []
    origins = sorted({"running statistics" if s.source == "graph" else s.source for s in sources})
    parts += [f"BatchNorm statistics from {' and '.join(origins)}"] if origins else []
    what = "the calibrated reference: the original model" if calibrated else "the original model"
    return what + (f" with {', '.join(parts)}" if parts else "")

