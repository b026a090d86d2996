"""Roots and causes: which nodes start a divergence, why, and how to fix it."""
from __future__ import annotations

from ..graph import kinds
from ..graph.batch_rules import BatchMixing, batch_mixing, reduced_axes
from ..graph.index import GraphIndex
from ..graph.values import branch_flags

# cause -> (what the node does, how to fix it)
EXPLANATIONS = {
    "batchnorm_training": ("BatchNorm in training mode, uses batch statistics",
                           "export for inference: is_training=False (slim), training=False (Keras), or "
                           "FusedBatchNorm is_training=false with the moving mean/variance"),
    "random_op": ("a random op (dropout?) is active at inference",
                  "export with is_training=False (slim) or training=False (Keras), or feed keep_prob=1.0 / rate=0 "
                  "with --feed NAME=VALUE"),
    "batch_reduction": ("reduces or normalises across the batch axis",
                        "reduce over per-image axes only (e.g. axis=[1, 2] for spatial pooling)"),
    "batch_size": ("uses the batch size (tf.shape(x)[0]) as a value",
                   "compute it from per-image quantities instead"),
    "position": ("uses the image's row index in the batch as a value",
                 "remove the range over the batch axis from the computation"),
    "row_selection": ("keeps fixed rows of the batch (e.g. out = softmax[0]): the graph returns one image's "
                      "result per run, so in a batch every other image silently gets no answer",
                      "return the whole batch (drop the [0] or the Gather of fixed rows, as Keras-to-TensorFlow "
                      "converters write it); meanwhile --output can name the tensor before the slice to test the rest"),
    "unknown": ("mixes rows of the batch in a way batchcheck does not recognise",
                "inspect this node and its inputs"),
}


def find_roots(index: GraphIndex, divergent: set[str], compared: set[str]) -> list[str]:
    """Nodes with a divergent output whose data inputs all agree, in topological order. An input that was
    not compared (a Switch's output, say) agrees only when everything it comes from agrees."""
    memo: dict[str, bool] = {}

    def diverges(tensor: str) -> bool:
        if tensor in compared:
            return tensor in divergent
        if tensor not in memo:
            memo[tensor] = False  # cycles (loop back edges) end here
            source = tensor.rsplit(":", 1)[0]
            memo[tensor] = source in index and any(
                diverges(f"{s}:{o}") for s, o in index.nodes[source].data_inputs)
        return memo[tensor]

    nodes = {tensor.rsplit(":", 1)[0] for tensor in divergent}
    roots = [node for node in nodes
             if not any(diverges(f"{source}:{output}") for source, output in index.nodes[node].data_inputs)]
    return sorted(roots, key=index.position.__getitem__)


def classify_cause(index: GraphIndex, node: str, values: dict[str, str], axes: dict[str, int | None],
                   ranks: dict[str, int], folded: dict[str, set[int]], batch_norms: set[str]) -> str:
    """Why `node` makes its output depend on the batch: a key of `EXPLANATIONS`.

    `values` is graph.value_kinds; `axes` maps compared tensors to their batch axis (None: none);
    `ranks` maps compared tensors to their rank; `folded` maps tensors whose shape mixes the batch with other
    axes to those axes (a Reshape to [-1] before a Min/Max over the flattened batch); `batch_norms` names the
    BatchNorms that normalise with the batch's statistics (`graph.batchnorm`: the fused node, or the moments' Mean).
    """
    info = index.nodes[node]
    if info.kind in kinds.RANDOMS:
        return "random_op"
    if info.kind == kinds.BATCH_NORM and info.attrs["training"]:
        return "batchnorm_training"
    sizes = info.attrs.get("size_inputs", ())  # a shape or size the op takes (a Reshape's target) is no value
    shape_inputs = [source for slot, (source, _) in enumerate(info.data_inputs)
                    if values.get(source) == "shape" and slot not in sizes]
    if shape_inputs:
        if any(index.nodes[a].kind == kinds.RANGE for a in index.ancestors(shape_inputs)):
            return "position"
        return "batch_size"
    for source, output in info.data_inputs[:1]:
        mixed = folded.get(f"{source}:{output}", set())
        if mixed and info.kind == kinds.REDUCE and mixed & reduced_axes(info, ranks.get(f"{source}:{output}", 0)):
            return "batch_reduction"
    batch_inputs = {f"{s}:{o}": axes[f"{s}:{o}"] for s, o in info.data_inputs
                    if axes.get(f"{s}:{o}") is not None}
    if not batch_inputs:
        return "unknown"
    first, axis = next(iter(batch_inputs.items()))
    reduced = False
    if info.kind == kinds.REDUCE:
        reduced = axis in reduced_axes(info, ranks.get(first, 0))
    elif info.kind == kinds.ALONG_AXIS:
        rank = ranks.get(first, 0)
        reduced = bool(rank) and axis == info.attrs["axis"] % rank
    outputs_lose_batch = all(axes.get(f"{node}:{k}", None) is None for k in range(len(index.output_dtypes(node)) or 1))
    if info.kind in kinds.ROW_SELECTION and outputs_lose_batch and not reduced:
        return "row_selection"
    if reduced or outputs_lose_batch:
        return "batchnorm_training" if node in batch_norms else "batch_reduction"
    return "unknown"


def hidden_mixer(index: GraphIndex, node: str, compared: set[str], values: dict[str, str]) -> BatchMixing | None:
    """The node that mixes rows of the batch, found statically, among the uncompared nodes `node`'s data comes
    through (a Reshape folding the batch into another axis leaves the normalisation after it no per-image row to
    compare: the change shows only where the batch comes back), or None."""
    gap: set[str] = set()
    stack = [s for s, o in index.nodes[node].data_inputs if f"{s}:{o}" not in compared]
    while stack:
        name = stack.pop()
        if name not in gap and name in index:
            gap.add(name)
            stack += [s for s, o in index.nodes[name].data_inputs if f"{s}:{o}" not in compared]
    found = batch_mixing(index, index.source.static_shapes(), values, gap)
    return found[0] if found else None


def hint_for(index: GraphIndex, node: str, cause: str, input_node: str,
             explained: tuple[str, str] | None = None) -> str:
    """The fix hint for `cause` (`explained`: the backend's own words for it), plus the training flag that picks
    this branch when there is one."""
    explanation, fix = explained or EXPLANATIONS[cause]
    hint = f"{explanation}; fix: {fix}"
    flags = branch_flags(index, node, input_node)
    if flags:
        hint += f"; this branch is chosen by `{flags[0]}`: try --feed {flags[0]}=false"
    return hint
