"""Image (+ intrinsics) -> depth in metres with the deployment policy applied: scale policy, valid range,
output size. One place for the node and ``spidepth predict``."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .inference.predictor import DepthResult, Predictor
from .pinhole import intrinsics_matrix, kitti_intrinsics
from .scale import ScaleEstimator


def fallback_intrinsics(hw: tuple[int, int], fx: float = 0.0, fy: float = 0.0, cx: float = 0.0,
                        cy: float = 0.0) -> np.ndarray:
    """K for an image of size hw when no calibration is known: the given values, and for those left at 0,
    KITTI's normalised intrinsics (fx 0.58 W, fy 1.92 H, principal point at the centre)."""
    d = kitti_intrinsics(*hw)
    return intrinsics_matrix(fx or d[0, 0], fy or d[1, 1], cx or d[0, 2], cy or d[1, 2])


@dataclass
class DepthPolicy:
    """What happens to the network's depth before anyone sees it."""

    scale: ScaleEstimator = field(default_factory=ScaleEstimator)
    min_depth: float = 0.1           # metres, after scaling; outside -> NaN
    max_depth: float = 80.0
    output_size: str = "input"       # input (camera size) | model (network size)

    def __post_init__(self) -> None:
        if not self.min_depth < self.max_depth:
            raise ValueError(f"min_depth ({self.min_depth}) must be below max_depth ({self.max_depth})")

    def run(self, predictor: Predictor, rgb: np.ndarray, K: np.ndarray, uncertainty: bool = False) -> DepthResult:
        """Depth (HxW float32 metres, NaN outside the range), its K and, if asked for, its uncertainty
        (scaled like the depth, NaN where the depth is) for one frame. Frames come in order, as the
        camera_height scale is smoothed over time."""
        result = predictor.predict(rgb, K, output_size=self.output_size, uncertainty=uncertainty)
        if result.K is None:  # given K, the predictor always returns the K of its output
            raise RuntimeError("the predictor returned no intrinsics")
        scale = np.float32(self.scale.update(result.depth, result.K))
        depth = result.depth * scale
        invalid = ~np.isfinite(depth) | (depth < self.min_depth) | (depth > self.max_depth)
        depth[invalid] = np.nan
        spread = None
        if result.uncertainty is not None:
            spread = result.uncertainty * scale
            spread[invalid] = np.nan
        return DepthResult(depth, result.K, spread)
