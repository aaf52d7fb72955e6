"""Scale policies for scale-ambiguous self-supervised depth: none, fixed, camera_height."""
from __future__ import annotations

import math

import numpy as np

from .pointcloud import depth_to_points

POLICIES = ("none", "fixed", "camera_height")
# One frame's ground fit may move the running camera_height scale by at most this factor (before smoothing):
# a single bad frame (a wrong CameraInfo, a truck filling the ground rows) cannot wreck the estimate.
MAX_STEP = 2.0


def _plane_normal(pts: np.ndarray) -> np.ndarray:
    """Unit normal of the total-least-squares plane through Nx3 points."""
    return np.linalg.svd(pts - pts.mean(axis=0), full_matrices=False)[2][-1]


def down_direction(pitch: float = 0.0) -> np.ndarray:
    """The ground's normal (pointing down) in the optical frame of a camera pitched ``pitch`` degrees down."""
    t = np.deg2rad(pitch)
    return np.array([0.0, np.cos(t), np.sin(t)])


def fit_ground_height(points: np.ndarray, down: np.ndarray | None = None, band: float = 0.25,
                      min_share: float = 0.5, max_tilt: float = 30.0) -> float | None:
    """Camera height above the ground in Nx3 points of the image's lowest rows (optical frame, y down), or None.

    Each point's height is its distance below the camera along ``down`` (the ground's normal: +y for a level
    camera, see ``down_direction``). The ground is the bulk of the points: the median height, refined over
    the points within ``band`` (relative) of it. None when fewer than ``min_share`` of the points agree (a
    wall or a vehicle filling the rows), or when those points do not lie on a plane within ``max_tilt``
    degrees of level. Network depth is least accurate near the camera and its errors bend the ground, so a
    plane fitted freely (RANSAC) tilts and misjudges its distance; heights along the known normal do not.
    """
    pts = points[np.isfinite(points).all(axis=1)].astype(np.float64)
    if len(pts) < 50:
        return None
    d = down_direction() if down is None else np.asarray(down, np.float64)
    heights = pts @ d
    height = float(np.median(heights))
    if height <= 0:
        return None
    for _ in range(2):
        keep = np.abs(heights - height) < band * height
        if keep.mean() < min_share:
            return None
        height = float(np.median(heights[keep]))
    normal = _plane_normal(pts[keep])
    if abs(float(normal @ d)) < np.cos(np.deg2rad(max_tilt)):
        return None
    return height


class ScaleEstimator:
    """Multiplies network depth by a scale chosen by ``policy``; camera_height smooths over time."""

    def __init__(self, policy: str = "none", depth_scale: float = 1.0, camera_height: float = 1.5,
                 smoothing: float = 0.9, ground_rows: float = 0.3, pitch: float = 0.0) -> None:
        if policy not in POLICIES:
            raise ValueError(f"scale policy must be one of {POLICIES}, got {policy!r}")
        if not (math.isfinite(depth_scale) and depth_scale > 0 and math.isfinite(camera_height) and camera_height > 0
                and 0 <= smoothing < 1):
            raise ValueError(f"depth_scale ({depth_scale}) and camera_height ({camera_height}) must be finite and "
                             f"> 0, and smoothing ({smoothing}) in [0, 1)")
        self.policy, self.camera_height, self.smoothing = policy, camera_height, smoothing
        self.ground_rows, self.down = ground_rows, down_direction(pitch)
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
        height = fit_ground_height(depth_to_points(lower, K_low)[::2, ::2].reshape(-1, 3), self.down)
        if height is None or height <= 0:
            return self.scale
        target = self.camera_height / height
        if self.estimated:
            target = min(max(target, self.scale / MAX_STEP), self.scale * MAX_STEP)
        self.scale = target if not self.estimated else self.smoothing * self.scale + (1 - self.smoothing) * target
        self.estimated = True
        return self.scale
