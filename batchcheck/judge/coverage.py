"""Coverage: how much of the network a check compared. A pass that compared too little is no pass."""
from __future__ import annotations

from dataclasses import dataclass

from ..graph.index import GraphIndex, loop_frame_nodes
from ..load.core import network_ops

MIN_NETWORK_SHARE = 0.5  # a pass must have compared at least this share of the conv/matmul/BN ops


@dataclass(frozen=True)
class Coverage:
    """Compared vs comparable tensors, and the share of the network's conv/matmul/BN ops compared;
    `bool(coverage)` is True when the share is enough for a pass to mean something."""
    compared_tensors: int
    comparable_tensors: int      # compared + not compared (beyond a batch limit, inside a loop…)
    network_ops: int             # conv/matmul/BN nodes downstream of the input
    network_ops_compared: int
    network_share: float
    limited_by: str              # what kept the rest from being compared ("" when nothing did)
    suggestion: str              # the --input/--output that would test more ("" when none)

    def __bool__(self) -> bool:
        return self.network_share >= MIN_NETWORK_SHARE

    def summary(self) -> str:
        ops = (f", {self.network_ops_compared} of {self.network_ops} conv/matmul/BN ops "
               f"({self.network_share:.0%})" if self.network_ops else "")
        return f"{self.compared_tensors} of {self.comparable_tensors} tensors{ops}"

    def message(self, path) -> str:
        """The one line of a pass that compared too little."""
        limited = f"; limited by {self.limited_by}" if self.limited_by else ""
        suggestion = f"; {self.suggestion}" if self.suggestion else ""
        return (f"model `{path}`: passed, but compared only {self.summary()}, less than "
                f"{MIN_NETWORK_SHARE:.0%} of the network{limited}{suggestion}")


def measure_coverage(index: GraphIndex, input_node: str, compared: list[str],
                     not_compared: dict[str, str], limits: list, dead: set[str]) -> Coverage:
    """Coverage of a check that compared the tensors `compared` and skipped `not_compared`
    (tensor -> why), with the runner's batch `limits`; `dead` nodes (untaken cond branches) do not count."""
    network = network_ops(index, input_node) - dead
    compared_nodes = {tensor.split(":")[0] for tensor in compared}
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
