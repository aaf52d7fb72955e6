"""Scale policies for scale-ambiguous self-supervised depth: none, fixed, camera_height."""
from __future__ import annotations

import numpy as np

from .pointcloud import depth_to_points

POLICIES = ("none", "fixed", "camera_height")


def _plane(pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(unit normal, centroid) of the total-least-squares plane through Nx3 points."""
    centroid = pts.mean(axis=0)
    normal = np.linalg.svd(pts - centroid, full_matrices=False)[2][-1]
    return normal, centroid


def fit_ground_height(points: np.ndarray, min_normal_y: float = 0.85) -> float | None:
    """Camera height above a plane fitted to Nx3 points (optical frame, y down), or None if not ground-like.

    A total-least-squares plane, refitted on the inliers of the first fit; its normal must be near y.
    """
    pts = points[np.isfinite(points).all(axis=1)].astype(np.float64)
    if len(pts) < 50:
        return None
    for _ in range(2):
        normal, centroid = _plane(pts)
        resid = np.abs((pts - centroid) @ normal)
        keep = resid <= max(np.median(resid) * 2.5, 1e-3)
        if keep.sum() < 50:
            return None
        pts = pts[keep]
    normal, centroid = _plane(pts)
    if normal[1] < 0:
        normal = -normal
    height = float(centroid @ normal)
    if normal[1] < min_normal_y or height <= 0:  # too tilted, or the plane is above the camera
        return None
    return height


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
