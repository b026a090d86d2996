"""Tolerance: a tensor diverges when it differs by more than rounding, measured as a noise floor."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Rounding differences (GEMV at batch 1 vs GEMM, oneDNN blocking) stay far below this fraction of a
# tensor's magnitude; a batch of copies of the probe that differs more than this is not rounding.
PLAUSIBLE_ROUNDING = 1e-4
NOISE_FACTOR = 10.0
MIN_RTOL = 1e-6
DEFAULT_ATOL = 1e-6

@dataclass(frozen=True)
class Tolerance:
    """A tensor diverges when max |row - solo| > atol + rtol * max |solo|."""
    atol: float
    rtol: float
    source: str               # "measured" | "user" | "exact" | "default" (explain's fixed one)
    noise_floor: float | None  # largest relative rounding seen in a batch of copies, when measured

    def allowed(self, scales: np.ndarray) -> np.ndarray:
        return self.atol + self.rtol * scales

    def describe(self) -> str:
        return f"atol {self.atol:.1e} + rtol {self.rtol:.1e} × max|solo|"


def user_tolerance(atol: float | None, rtol: float | None, exact: bool) -> Tolerance | None:
    """The tolerance the user fixed, or None to measure one."""
    if exact:
        return Tolerance(0.0, 0.0, "exact", None)
    if atol is not None or rtol is not None:
        return Tolerance(atol or 0.0, rtol or 0.0, "user", None)
    return None


def measured_tolerance(relative_noise: np.ndarray) -> Tolerance:
    """Tolerance from the relative differences between the probe alone and a batch of its copies:
    the plausible-rounding ones set the floor, with a safety factor."""
    plausible = relative_noise[np.isfinite(relative_noise) & (relative_noise <= PLAUSIBLE_ROUNDING)]
    floor = float(plausible.max()) if plausible.size else 0.0
    return Tolerance(DEFAULT_ATOL, max(MIN_RTOL, NOISE_FACTOR * floor), "measured", floor)


def relative_diff(diffs: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """|diff| / max|solo|; 0 where both are 0, inf where only the solo tensor is all zeros."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(diffs == 0, 0.0, diffs / scales)
