"""Scale policies for scale-ambiguous self-supervised depth: none, fixed, camera_height."""
from __future__ import annotations

import math

import numpy as np

from .pointcloud import depth_to_points

POLICIES = ("none", "fixed", "camera_height")
# One frame's ground fit may move the running camera_height scale by at most this factor (before smoothing):
# a single bad frame (a wrong CameraInfo, a truck filling the ground rows) cannot wreck the estimate.
MAX_STEP = 2.0


def _plane(pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(unit normal, centroid) of the total-least-squares plane through Nx3 points."""
    centroid = pts.mean(axis=0)
    normal = np.linalg.svd(pts - centroid, full_matrices=False)[2][-1]
    return normal, centroid


def fit_ground_height(points: np.ndarray, min_normal_y: float = 0.85, tolerance: float = 0.03,
                      samples: int = 256) -> float | None:
    """Camera height above the ground plane in Nx3 points (optical frame, y down), or None if none is found.

    RANSAC over level-enough planes below the camera (normal within ~30 degrees of y): the plane that
    most points lie within ``tolerance`` x its height of wins, then it is refitted (total least squares)
    on its inliers. The tolerance is relative, so the fit works on depth of any scale. Seeded: the same
    points give the same height.
    """
    pts = points[np.isfinite(points).all(axis=1)].astype(np.float64)
    if len(pts) < 50:
        return None
    normals, heights = _candidate_planes(pts, min_normal_y, samples)
    if not len(heights):
        return None
    inliers = np.abs(pts @ normals.T - heights) < tolerance * heights
    keep = inliers[:, int(np.argmax(inliers.sum(axis=0)))]
    for _ in range(2):  # refit on the inliers, then take the inliers of the refitted plane
        if keep.sum() < 50:
            return None
        normal, centroid = _plane(pts[keep])
        normal = -normal if normal[1] < 0 else normal
        height = float(centroid @ normal)
        if normal[1] < min_normal_y or height <= 0:
            return None
        keep = np.abs(pts @ normal - height) < tolerance * height
    return height


def _candidate_planes(pts: np.ndarray, min_normal_y: float, samples: int) -> tuple[np.ndarray, np.ndarray]:
    """Planes through random point triples: (unit normals with y > 0, heights), level ones below the camera."""
    rng = np.random.default_rng(0)
    a, b, c = (pts[rng.integers(0, len(pts), samples)] for _ in range(3))
    normals = np.cross(b - a, c - a)
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    normals = normals / np.maximum(length, 1e-12)
    normals *= np.where(normals[:, 1:2] < 0, -1.0, 1.0)
    heights = (a * normals).sum(axis=1)
    ok = (length[:, 0] > 1e-12) & (normals[:, 1] >= min_normal_y) & (heights > 0)
    return normals[ok], heights[ok]


class ScaleEstimator:
    """Multiplies network depth by a scale chosen by ``policy``; camera_height smooths over time."""

    def __init__(self, policy: str = "none", depth_scale: float = 1.0, camera_height: float = 1.5,
                 smoothing: float = 0.9, ground_rows: float = 0.3) -> None:
        if policy not in POLICIES:
            raise ValueError(f"scale policy must be one of {POLICIES}, got {policy!r}")
        if not (math.isfinite(depth_scale) and depth_scale > 0 and math.isfinite(camera_height) and camera_height > 0
                and 0 <= smoothing < 1):
            raise ValueError(f"depth_scale ({depth_scale}) and camera_height ({camera_height}) must be finite and "
                             f"> 0, and smoothing ({smoothing}) in [0, 1)")
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
        if self.estimated:
            target = min(max(target, self.scale / MAX_STEP), self.scale * MAX_STEP)
        self.scale = target if not self.estimated else self.smoothing * self.scale + (1 - self.smoothing) * target
        self.estimated = True
        return self.scale
