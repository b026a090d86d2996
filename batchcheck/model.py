"""A model as batchcheck holds it: loaded into its backend's representation (a frozen GraphDef, an ONNX
ModelProto), and prepared to run (the input and its per-image shape, the outputs, the feeds) with its neutral
graph view. Values only; `load/open.py` opens them."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .result import PlaceholderInfo
from .safety.scan import Finding as Flagged
from .safety.scan import ScanReport

if TYPE_CHECKING:
    from .graph.index import GraphIndex


@dataclass
class LoadedModel:
    """A model in its backend's representation (`graph`), with what its format says about inputs and outputs."""
    path: Path
    format: str
    graph: Any
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what loading had to work around, for the report
    scan: ScanReport = field(default_factory=ScanReport)  # what the op scan flagged in the final graph
    backend: str = "tf"


@dataclass(frozen=True)
class InputSpec:
    """The tensor fed with images: per-image shape (no batch axis) and how the batch was found."""
    node: str
    dtype: str
    per_image_shape: tuple[int, ...]
    shipped_batch: int | None  # the batch size the graph fixed, None if free
    layout: str = "NHWC"  # NCHW: an image's channels come first in `per_image_shape`

    @property
    def tensor(self) -> str:
        return f"{self.node}:0"

    @property
    def image_shape(self) -> tuple[int, ...]:
        """The per-image shape with the channels last, as images are read and made."""
        shape = self.per_image_shape
        return (*shape[1:], shape[0]) if self.layout == "NCHW" else tuple(shape)

    @property
    def numpy_dtype(self) -> np.dtype:
        """The dtype images are fed in (bfloat16 inputs are fed float32)."""
        return np.dtype(self.dtype) if self.dtype != "bfloat16" else np.dtype(np.float32)


@dataclass
class PreparedModel:
    """A model ready to run: relaxed input, pruned to the outputs, feeds resolved, and its neutral graph view."""
    path: Path
    format: str
    graph: Any
    input: InputSpec
    outputs: list[str]
    index: GraphIndex
    placeholders: list[PlaceholderInfo] = field(default_factory=list)
    feeds: dict[str, np.ndarray] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what was inferred or worked around, for the report
    outputs_chosen: str = ""  # how the outputs were chosen: given, declared by the format, or found (and why)
    flagged: list[Flagged] = field(default_factory=list)  # the op scan's flagged constructs
    backend: str = "tf"
