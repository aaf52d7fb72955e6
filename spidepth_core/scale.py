"""Scale policies for scale-ambiguous self-supervised depth: none, fixed, camera_height."""
from __future__ import annotations

import numpy as np

from .pointcloud import depth_to_points

POLICIES = ("none", "fixed", "camera_height")


def fit_ground_height(points: np.ndarray, min_normal_y: float = 0.85) -> float | None:
    """Camera height above a plane fitted to Nx3 points (optical frame, y down), or None if not ground-like.

    Least squares on y = a x + b z + c, refitted on the inliers of the first fit.
    """
    pts = points[np.isfinite(points).all(axis=1)]
    if len(pts) < 50:
        return None
    keep = np.ones(len(pts), bool)
    for _ in range(2):
        A = np.c_[pts[keep, 0], pts[keep, 2], np.ones(keep.sum())]
        coef, *_ = np.linalg.lstsq(A, pts[keep, 1], rcond=None)
        resid = np.abs(pts[:, 1] - np.c_[pts[:, 0], pts[:, 2], np.ones(len(pts))] @ coef)
        keep = resid <= max(np.median(resid) * 2.5, 1e-6)
        if keep.sum() < 50:
            return None
    a, b, c = coef
    normal_y = 1.0 / np.sqrt(a * a + b * b + 1.0)
    if normal_y < min_normal_y or c <= 0:  # too tilted, or the plane is above the camera
        return None
    return float(c * normal_y)  # distance from the origin to the plane


class ScaleEstimator:
    """Multiplies network depth by a scale chosen by ``policy``; camera_height smooths over time."""

    def __init__(self, policy: str = "none", depth_scale: float = 1.0, camera_height: float = 1.5,
                 smoothing: float = 0.9, ground_rows: float = 0.3) -> None:
        if policy not in POLICIES:
            raise ValueError(f"scale policy must be one of {POLICIES}, got {policy!r}")
        if depth_scale <= 0 or camera_height <= 0 or not 0 <= smoothing < 1:
            raise ValueError("depth_scale and camera_height must be > 0 and smoothing in [0, 1)")
        self.policy, self.camera_height, self.smoothing = policy, camera_height, smoothing
        self.ground_rows = ground_rows
        self.scale = depth_scale if policy == "fixed" else 1.0
        self.estimated = False

    def update(self, depth: np.ndarray, K: np.ndarray) -> float:
        """New scale after seeing one raw depth map (only camera_height changes it)."""
        if self.policy != "camera_height":
            return self.scale
        h = depth.shape[0]
        lower = depth[int(h * (1 - self.ground_rows)):]
        K_low = np.array(K, np.float64, copy=True)
        K_low[1, 2] -= int(h * (1 - self.ground_rows))
        height = fit_ground_height(depth_to_points(lower, K_low)[::2, ::2].reshape(-1, 3))
        if height is None or height <= 0:
            return self.scale
        target = self.camera_height / height
        self.scale = target if not self.estimated else self.smoothing * self.scale + (1 - self.smoothing) * target
        self.estimated = True
        return self.scale
