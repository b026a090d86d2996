"""Static analysis of a GraphDef: index, value kinds, batch-axis helpers, BatchNorm findings."""
