"""What each cause means in an ONNX model and how to fix it where the model came from (PyTorch's
`torch.onnx.export`, onnxruntime's quantization), for check's hints, lint's findings and explain's conclusions."""
from __future__ import annotations

from dataclasses import replace

from ...graph.findings import LintFinding
from ...graph.index import GraphIndex

EXPORT_EVAL = ("call model.eval() before torch.onnx.export (or export with training=torch.onnx.TrainingMode.EVAL)")
# cause -> (what the node does, how to fix it)
EXPLANATIONS = {
    "batchnorm_training": ("BatchNormalization in training mode (training_mode=1, or its training outputs asked "
                           "for: a model exported from train() mode), normalises with the batch's statistics",
                           f"{EXPORT_EVAL}, so that BatchNormalization uses its running mean and variance"),
    "random_op": ("a random op is active at inference (Dropout with training_mode=True, or a Random* op)",
                  f"{EXPORT_EVAL}, so that Dropout is the identity; leave noise layers out of the exported model"),
    "batch_reduction": ("reduces or normalises across the batch axis",
                        "reduce over per-image dims only (e.g. x.mean(dim=(2, 3)) for spatial pooling, softmax "
                        "over dim=1), then export again"),
    "batch_size": ("uses the batch size (x.size(0) or x.shape[0], exported as Shape → Gather(0)) as a value",
                   "compute it from per-image quantities instead"),
    "position": ("uses the image's row index in the batch (a Range over the batch, torch.arange(x.size(0))) as a "
                 "value", "remove the range over the batch axis from the computation"),
    "row_selection": ("keeps fixed rows of the batch (e.g. out = probs[0], a Gather of index 0 on axis 0): one "
                      "image's result per run, so in a batch every other image silently gets no answer",
                      "return the whole batch (drop the [0]); meanwhile --output can name the value before the "
                      "Gather to test the rest"),
}
# (op, cause) -> what that op does, how to fix it
BY_OP = {
    ("DynamicQuantizeLinear", "batch_reduction"): (
        "dynamic quantization (onnxruntime.quantization.quantize_dynamic): DynamicQuantizeLinear takes the "
        "quantisation range from the min/max of the whole batch, so each image's values depend on its batch-mates",
        "quantize statically with calibration data (onnxruntime.quantization.quantize_static with a "
        "CalibrationDataReader over representative images): fixed scales are batch-invariant; or keep this layer "
        "in float"),
    ("InstanceNormalization", "batch_reduction"): (
        "normalises a tensor whose batch was folded into another axis (a Reshape to a hard-coded [1, C, 1, -1], "
        "as a model traced at batch 1 writes it): each image is normalised with its batch-mates' values",
        "keep the batch when reshaping (x.view(x.size(0), C, 1, -1) instead of a constant 1), or use "
        "nn.InstanceNorm2d / nn.GroupNorm on the 4-D tensor, then export again"),
}
BY_OP[("LayerNormalization", "batch_reduction")] = BY_OP[("InstanceNormalization", "batch_reduction")]
FINDING_TEXT = {
    "stale_statistics": ("running mean 0 and variance 1, their initial values: the model was exported before "
                         "training updated them", "export the trained model, or recompute the statistics on "
                         "training images (a forward pass in train() mode over them), then model.eval() and export"),
    "foldable_batchnorm": (None, "onnxruntime folds them into the Conv when it loads the model; to fold them in "
                                 "the file, run onnxoptimizer's fuse_bn_into_conv pass"),
}


def explanation(index: GraphIndex, node: str, cause: str) -> tuple[str, str]:
    """(what `node` does, how to fix it) for `cause`."""
    from ...judge.causes import EXPLANATIONS as NEUTRAL

    op = index.nodes[node].op if node in index else ""
    return BY_OP.get((op, cause)) or EXPLANATIONS.get(cause) or NEUTRAL[cause]


def reworded(index: GraphIndex, finding: LintFinding) -> LintFinding:
    """A lint finding in ONNX and PyTorch terms."""
    op = index.nodes[finding.node].op if finding.node in index else finding.op
    if finding.kind == "batchnorm_training":
        what, fix = explanation(index, finding.node, finding.kind)
        return replace(finding, message=what, fix=fix)
    if finding.kind == "random_op":
        how = "with training_mode=True (exported from train() mode)" if op == "Dropout" else "is random"
        where = finding.evidence.get("reaches")
        reaches = f", and reaches the data at `{where}`" if where and where != finding.node else ""
        return replace(finding, message=f"{op} {how}: its values change on every run{reaches}",
                       fix=explanation(index, finding.node, finding.kind)[1])
    if (op, finding.kind) in BY_OP:
        what, fix = BY_OP[(op, finding.kind)]
        return replace(finding, message=f"{op}: {what}", fix=fix)
    if finding.kind in EXPLANATIONS:
        return replace(finding, fix=EXPLANATIONS[finding.kind][1])
    if finding.kind in FINDING_TEXT:
        message, fix = FINDING_TEXT[finding.kind]
        message = (message or finding.message).replace("Conv2D/DepthwiseConv2dNative/MatMul", "Conv")
        return replace(finding, message=message, fix=fix)
    return finding
