"""Findings: what lint reports about a node, and the BatchNorm ones read from the graph's constants
(training mode, statistics never updated, tiny variances, no learnt scale, foldable into a conv)."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from ..result import Finding
from .batchnorm import BatchNorm, find_batchnorms
from .index import GraphIndex, layer_of

SEVERITY = {
    "batchnorm_training": "error", "random_op": "error", "batch_reduction": "error", "batch_size": "error",
    "position": "error", "row_selection": "error", "stale_statistics": "error", "update_ops_not_run": "error",
    "training_flag": "warning", "unused_flag": "warning", "tiny_variance": "warning",
    "no_scale": "info", "foldable_batchnorm": "info",
}
SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}
# kind -> (what is wrong, what to do)
TEXT = {
    "stale_statistics": ("moving mean 0 and variance 1, their initial values: training never updated them "
                         "(run tf.GraphKeys.UPDATE_OPS with the train op, e.g. under tf.control_dependencies)",
                         "train with the update ops run (slim: create_train_op; TF1: control_dependencies on "
                         "UPDATE_OPS), or recompute the statistics on training images, then export again"),
    "no_scale": ("no learnt scale, gamma fixed to 1 (slim scale=False): expected if intended, and why the "
                 "checkpoint has no gamma for it", "nothing to fix; gamma is 1"),
    "tiny_variance": ("moving variance far below epsilon in some channels: epsilon, not the data, sets their scale",
                      "check that these channels are dead or that the statistics were computed on real data"),
}
TINY_VARIANCE_RATIO = 0.01  # variance below this fraction of epsilon counts as tiny
CHECK_KINDS = ("stale_statistics", "no_scale")  # what `check` has always reported in its `findings`


@dataclass(frozen=True)
class LintFinding:
    """One thing lint found at a node; `confirmed` is set by a runtime confirmation (None: not run)."""
    kind: str
    severity: str
    node: str
    op: str
    layer: str
    message: str
    fix: str
    confirmed: bool | None = None
    evidence: dict = field(default_factory=dict)

    def confirm(self, value: bool | None, **evidence) -> "LintFinding":
        return replace(self, confirmed=value, evidence={**self.evidence, **evidence})

    def for_check(self) -> Finding:
        return Finding(self.kind, self.node, self.layer, self.message)


def make_finding(index: GraphIndex, kind: str, node: str, message: str | None = None, fix: str | None = None,
                 **evidence) -> LintFinding:
    """A finding of `kind` at `node`, with the standard text unless `message`/`fix` are given."""
    standard_message, standard_fix = TEXT.get(kind, ("", ""))
    return LintFinding(kind, SEVERITY[kind], node, index.nodes[node].op if node in index else "", layer_of(node),
                   message or standard_message, fix or standard_fix, None, evidence)


def batchnorm_findings(index: GraphIndex) -> list[Finding]:
    """The BatchNorm pitfalls `check` reports (CHECK_KINDS), in topological order."""
    return [f.for_check() for f in constant_findings(index, find_batchnorms(index), CHECK_KINDS)]


def constant_findings(index: GraphIndex, norms: list[BatchNorm],
                      kinds: tuple[str, ...] = CHECK_KINDS) -> list[LintFinding]:
    """Findings of `kinds` read from inference BatchNorms' constants, in the order of `norms`."""
    findings = []
    for bn in norms:
        if bn.training.training or bn.per_sample:
            continue
        mean, variance = bn.mean.value, bn.variance.value
        if "stale_statistics" in kinds and _stale(mean, variance):
            findings.append(make_finding(index, "stale_statistics", bn.name, channels=int(mean.size)))
        if "tiny_variance" in kinds and variance is not None and bn.epsilon and variance.size:
            tiny = np.flatnonzero(variance < TINY_VARIANCE_RATIO * bn.epsilon)
            if tiny.size:
                findings.append(make_finding(
                    index, "tiny_variance", bn.name,
                    f"moving variance below {TINY_VARIANCE_RATIO:g} × epsilon ({bn.epsilon:.1e}) in {tiny.size} of "
                    f"{variance.size} channels (min {float(variance.min()):.1e}): epsilon, not the data, sets "
                    f"their scale", channels=tiny[:16].tolist(), count=int(tiny.size),
                    min_variance=float(variance.min()), epsilon=bn.epsilon))
        if "no_scale" in kinds and bn.gamma.absent:
            findings.append(make_finding(index, "no_scale", bn.name))
    return findings


def training_findings(index: GraphIndex, norms: list[BatchNorm], live: set[str]) -> list[LintFinding]:
    """`batchnorm_training` for each live BN that normalises with the batch's statistics."""
    findings = []
    for bn in norms:
        if not bn.batch_statistics or bn.name not in live:
            continue
        if bn.kind == "decomposed":
            how = f"tf.nn.moments over axes {list(bn.axes or ())}, including the batch axis"
        elif bn.training.flag:
            how = f"FusedBatchNorm {bn.training.describe()}"
        else:
            how = "FusedBatchNorm is_training=true, a constant attribute: feeding a placeholder cannot change it"
        fix = ("export for inference: is_training=False (slim), training=False (Keras), or FusedBatchNorm "
               "is_training=false with the moving mean/variance")
        if bn.training.flag:
            fix = f"--feed {bn.training.flag}=false (it selects this branch), or {fix}"
        findings.append(make_finding(index, "batchnorm_training", bn.name,
                                     f"BatchNorm in training mode, uses the batch's statistics: {how}", fix,
                                     form=bn.kind, source=bn.training.describe(), output=bn.output))
    return findings


def foldable_findings(index: GraphIndex, norms: list[BatchNorm], live: set[str], shapes: dict) -> list[LintFinding]:
    """One `foldable_batchnorm` finding for the inference BNs right after a conv/matmul they alone read."""
    foldable = [bn for bn in norms if bn.name in live and bn.producer and not bn.training.training
                and not bn.per_sample and len(index.nodes[bn.producer].consumers) == 1]
    if not foldable:
        return []
    ops_removed = sum(len(bn.nodes) for bn in foldable)
    per_image = sum(_elements(shapes.get(bn.output)) for bn in foldable)
    saving = f"{ops_removed} ops" + (f" and {2 * per_image:,} multiply/adds per image" if per_image else "")
    return [make_finding(
        index, "foldable_batchnorm", foldable[0].name,
        f"{len(foldable)} inference BatchNorm(s) directly after Conv2D/DepthwiseConv2dNative/MatMul could be "
        f"folded into the weights (saving {saving})",
        "fold them (scale the weights by gamma/sqrt(variance+eps), add the shift as a bias), e.g. with "
        "`batchcheck fix` or TF's fold_batch_norms transform",
        count=len(foldable), nodes=[bn.name for bn in foldable], producers=[bn.producer for bn in foldable],
        ops_removed=ops_removed, multiply_adds_per_image=2 * per_image)]


def _stale(mean: np.ndarray | None, variance: np.ndarray | None) -> bool:
    return (mean is not None and variance is not None and mean.size > 0
            and not mean.any() and bool(np.all(variance == 1)))


def _elements(shape) -> int:
    """Elements of one image's slice of a tensor shape (batch axis dropped); 0 when not fully known."""
    if not shape or sum(d is None for d in shape) != 1:
        return 0
    return int(np.prod([d for d in shape if d is not None]))
