"""Generated hostile corpora (models and images) and a runner that feeds many files through the CLI per process."""
from __future__ import annotations

from pathlib import Path

from .models import Case, _body, _graph_def, _write, acting_cases, byte_cases
from .onnx_files import onnx_cases
from .structure import (
    allow_op_case,
    container_cases,
    flagged_cases,
    limit_cases,
    nesting_cases,
    structure_cases,
)


def build_model_corpus(root: Path) -> list[Case]:
    """Write the model corpus under `root/models/` (sentinels would appear in `root/sentinels/`); its cases."""
    (root / "models").mkdir(parents=True)
    (root / "sentinels").mkdir()
    cases = acting_cases(root)
    return [*cases, *byte_cases(root, _clean_base(root)), *structure_cases(root), *nesting_cases(root),
            *flagged_cases(root), *limit_cases(root), *container_cases(root), allow_op_case(root),
            *onnx_cases(root)]


def _clean_base(root: Path) -> bytes:
    """The base model, written as a case of its own (it must check clean) and returned as bytes."""
    return _write(root / "models" / "clean-base.pb", _graph_def(_body)).read_bytes()
