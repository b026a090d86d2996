"""The neutral op vocabulary: what the rules need to know of a node, whatever runtime it comes from.

A backend maps each of its op types to one kind (`OTHER` where no rule cares) and decodes the attributes the
rules read into `Node.attrs`, plain Python values under the names below. The rules (`graph/`, `judge/`, lint,
explain) compare kinds and read these attributes; they never compare a runtime's op names.

Attributes a backend sets where it can (absent: unknown):
- every node: `dtypes` (tuple of its outputs' dtype names, `float32`, `uint8`, `bool`, `string`, `resource`…)
- INPUT / INPUT_WITH_DEFAULT: `dtype`, `shape` (tuple with None for unknown sizes, None for unknown rank)
- BATCH_NORM: `training` (bool), `epsilon`, `data_format` (`NHWC`, `NCHW`); inputs x, scale, offset, mean, variance
- REDUCE: `reduce` (`mean`, `sum`, `max`, `min`, `prod`, `all`, `any`, `norm`, `argmax`, `argmin`), `axes`
  (tuple, None: every axis or not known statically), `keep_dims`
- ALONG_AXIS (softmax, top-k, LRN…): `axis`
- SLICE: `first_axis` = (begin, end or None, shrink) of the slice along axis 0, when static
- GATHER: `axis`, `indices` (tuple, when constant); UNPACK / UNSTACK: `axis`
- SQUEEZE: `axes` (empty: every axis of size 1)
- SHAPE: `shape_vector` (True: the whole shape vector; else a size or rank, a scalar)
- any node taking a shape or size as an input: `size_inputs` (the input slots that are sizes, not values)
- CONV / MATMUL: `data_format`, `transpose_a`, `transpose_b`, `foldable` (its weights, input 1, can absorb a
  following BatchNorm's scale per output channel)
"""
from __future__ import annotations

# sources of values
INPUT = "input"                              # a placeholder that must be fed
INPUT_WITH_DEFAULT = "input_with_default"    # a placeholder with a default value (its input 0)
CONSTANT = "constant"
VARIABLE = "variable"                        # state without its value: the graph is not frozen
RANDOM = "random"                            # differs on every run
STATELESS_RANDOM = "stateless_random"        # drawn from a seed: the same on every run, but for the whole batch
SHAPE = "shape"                              # the shape, size or rank of its input
RANGE = "range"

# TF1 control flow
SWITCH = "switch"
MERGE = "merge"
ENTER = "enter"
EXIT = "exit"
NEXT_ITERATION = "next_iteration"

# network layers
CONV = "conv"
MATMUL = "matmul"
BATCH_NORM = "batch_norm"

# arithmetic the BatchNorm and batch-size rules follow
ADD = "add"
SUB = "sub"
MUL = "mul"
DIV = "div"
NEG = "neg"
RSQRT = "rsqrt"
CAST = "cast"
BIAS_ADD = "bias_add"
LOGICAL_NOT = "logical_not"
ELEMENTWISE = "elementwise"                  # any other op whose inputs are all values, used per element

# along axes
REDUCE = "reduce"
ALONG_AXIS = "along_axis"                    # softmax, log-softmax, top-k, LRN: mixes values along `axis`
SLICE = "slice"
GATHER = "gather"
UNPACK = "unpack"
UNSTACK = "unstack"                          # one image taken out of the batch into a list (TensorArray)

# moving values around
IDENTITY = "identity"
RESHAPE = "reshape"
SQUEEZE = "squeeze"
EXPAND_DIMS = "expand_dims"
PACK = "pack"
CONCAT = "concat"
BATCH_TO_SPACE = "batch_to_space"            # the end of an atrous conv's block folding
SPACE_TO_BATCH = "space_to_batch"

# no value
NO_OP = "no_op"
ASSERT = "assert"
PRINT = "print"

OTHER = "other"

PLACEHOLDERS = frozenset({INPUT, INPUT_WITH_DEFAULT})
RANDOMS = frozenset({RANDOM, STATELESS_RANDOM})
NETWORK = frozenset({CONV, MATMUL, BATCH_NORM})
ROW_SELECTION = frozenset({SLICE, GATHER, UNPACK})
# values used as numbers by every input: a shape-derived input is the batch size used as a value
VALUE_KINDS = frozenset({ADD, SUB, MUL, DIV, NEG, RSQRT, BIAS_ADD, ELEMENTWISE, MATMUL})
# nodes whose outputs are bookkeeping, not values worth comparing
NOT_COMPARED = frozenset({CONSTANT, NO_OP, ASSERT, PRINT, INPUT})
