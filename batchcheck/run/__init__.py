"""The runner: the imported graph, live branches, batch limits, and in-graph comparisons."""
