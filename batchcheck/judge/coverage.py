"""Coverage: how much of the network a check compared. A pass that compared too little is no pass."""
from __future__ import annotations

from ..graph.core import network_ops
from ..graph.index import GraphIndex, loop_frame_nodes
from ..result import Coverage


def measure_coverage(index: GraphIndex, input_node: str, compared: list[str],
                     not_compared: dict[str, str], limits: list, dead: set[str]) -> Coverage:
    """Coverage of a check that compared the tensors `compared` and skipped `not_compared`
    (tensor -> why), with the runner's batch `limits`; `dead` nodes (untaken cond branches) do not count."""
    network = network_ops(index, input_node) - dead
    compared_nodes = {tensor.rsplit(":", 1)[0] for tensor in compared}
    reached = network & compared_nodes
    share = len(reached) / len(network) if network else 1.0
    missed = sorted(network - reached - loop_frame_nodes(index), key=index.position.__getitem__)
    limited_by, suggestion = "", ""
    if limits:
        limited_by = f"batch limit `{limits[0].node}` ({limits[0].reason})"
    elif not_compared:
        tensor, why = next(iter(not_compared.items()))
        limited_by = f"{len(not_compared)} tensors not compared (e.g. `{tensor}`: {why})"
    if missed:
        first_input = index.nodes[missed[0]].data_inputs[0][0]
        suggestion = (f"try --input {first_input} (the input of `{missed[0]}`, the first conv/matmul/BN "
                      f"not compared)")
    return Coverage(len(compared), len(compared) + len(not_compared), len(network), len(reached),
                    round(share, 4), limited_by, suggestion)
