"""Which camera intrinsics to trust: implausible ones are refused, and a sudden jump is held until it repeats."""
from __future__ import annotations

import numpy as np

from .pinhole import valid_intrinsics

# Focal lengths as multiples of the image's longer side: 0.1 is a ~157 deg field of view, 50 about 1 deg.
FOCAL_RANGE = (0.1, 50.0)


def _normalised(K: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """(fx, fy, cx, cy) as fractions of the image's longer side (fx, fy) and of its width and height (cx, cy)."""
    h, w = hw
    side = max(h, w)
    return np.array([K[0, 0] / side, K[1, 1] / side, K[0, 2] / w, K[1, 2] / h])


def intrinsics_problem(K: np.ndarray, hw: tuple[int, int]) -> str | None:
    """Why K cannot be a real camera's for an image of size hw (H, W), or None when it can."""
    K = np.asarray(K, np.float64)
    if not valid_intrinsics(K):
        return "focal lengths must be finite and positive"
    fx, fy, cx, cy = _normalised(K, hw)
    low, high = FOCAL_RANGE
    if not (low <= fx <= high and low <= fy <= high):
        side = max(hw)
        return (f"focal lengths fx={K[0, 0]:.4g}, fy={K[1, 1]:.4g} are outside {low:g}-{high:g} x {side} px "
                f"(the image's longer side)")
    if not (-0.5 <= cx <= 1.5 and -0.5 <= cy <= 1.5):
        return f"principal point ({K[0, 2]:.4g}, {K[1, 2]:.4g}) lies far outside the {hw[1]}x{hw[0]} image"
    return None


class IntrinsicsGuard:
    """Accepts a stream of K's (one per frame): implausible ones never; one that differs from the last accepted
    by more than ``max_change`` (relative) only after ``confirm`` frames in a row agree on it (a re-calibrated
    or zoomed camera), so a single bad CameraInfo never reaches the depth or its scale."""

    def __init__(self, confirm: int = 3, max_change: float = 0.2) -> None:
        self.confirm, self.max_change = confirm, max_change
        self.good: np.ndarray | None = None       # last accepted, normalised (see _normalised)
        self._candidate: np.ndarray | None = None
        self._seen = 0

    def accept(self, K: np.ndarray, hw: tuple[int, int]) -> str | None:
        """None when K is accepted for this frame; otherwise why not (then keep using the last accepted K)."""
        problem = intrinsics_problem(K, hw)
        if problem:
            return problem
        new = _normalised(np.asarray(K, np.float64), hw)
        if self.good is None or _close(new, self.good, self.max_change):
            self.good, self._candidate = new, None
            return None
        if self._candidate is not None and _close(new, self._candidate, 0.01):
            self._seen += 1
        else:
            self._candidate, self._seen = new, 1
        if self._seen >= self.confirm:
            self.good, self._candidate = new, None
            return None
        return (f"K changed from fx={self.good[0] * max(hw):.4g} to fx={K[0, 0]:.4g} px at once; held until "
                f"{self.confirm} frames in a row agree on it")

    def last_good(self, hw: tuple[int, int]) -> np.ndarray | None:
        """The last accepted K at image size hw, or None."""
        if self.good is None:
            return None
        h, w = hw
        side = max(h, w)
        fx, fy, cx, cy = self.good
        return np.array([[fx * side, 0.0, cx * w], [0.0, fy * side, cy * h], [0.0, 0.0, 1.0]])


def _close(a: np.ndarray, b: np.ndarray, tolerance: float) -> bool:
    return bool(np.all(np.abs(a - b) <= tolerance * np.maximum(np.abs(b), 1e-6)))
