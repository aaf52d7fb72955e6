"""Organised point clouds from depth, in depth_image_proc's PointCloud2 layout (no ROS imports).

xyz: float32 x, y, z at offsets 0, 4, 8; point_step 16.
xyzrgb: the same plus ``rgb`` float32 at 16 (bytes B, G, R, 0); point_step 32.
"""
from __future__ import annotations

import numpy as np

from .pinhole import scale_intrinsics

XYZ_DTYPE = np.dtype({"names": ["x", "y", "z"], "formats": ["<f4"] * 3, "offsets": [0, 4, 8], "itemsize": 16})
XYZRGB_DTYPE = np.dtype({"names": ["x", "y", "z", "rgb"], "formats": ["<f4", "<f4", "<f4", "<u4"],
                         "offsets": [0, 4, 8, 16], "itemsize": 32})


def depth_to_points(depth: np.ndarray, K: np.ndarray) -> np.ndarray:
    """depth HxW (metres, NaN invalid) -> HxWx3 float32 camera-frame points (NaN where invalid):
    X = (u - cx) Z / fx, Y = (v - cy) Z / fy, Z = depth."""
    h, w = depth.shape
    K = np.asarray(K, np.float64)
    z = np.asarray(depth, np.float32)
    x = ((np.arange(w, dtype=np.float32) - K[0, 2]) / K[0, 0]).astype(np.float32)
    y = ((np.arange(h, dtype=np.float32) - K[1, 2]) / K[1, 1]).astype(np.float32)
    points = np.empty((h, w, 3), np.float32)
    points[..., 0] = x[None, :] * z
    points[..., 1] = y[:, None] * z
    points[..., 2] = z
    return points


def decimate(depth: np.ndarray, K: np.ndarray, step: int) -> tuple[np.ndarray, np.ndarray]:
    """Every ``step``-th pixel in both directions, with K for that grid."""
    if step <= 1:
        return depth, K
    return depth[::step, ::step], scale_intrinsics(K, 1.0 / step, 1.0 / step)


def pack_cloud(points: np.ndarray, rgb: np.ndarray | None = None) -> np.ndarray:
    """HxWx3 points (+ HxWx3 uint8 RGB) -> structured HxW array ready for PointCloud2.data."""
    h, w, _ = points.shape
    cloud = np.zeros((h, w), XYZRGB_DTYPE if rgb is not None else XYZ_DTYPE)
    cloud["x"], cloud["y"], cloud["z"] = points[..., 0], points[..., 1], points[..., 2]
    if rgb is not None:
        c = rgb.astype(np.uint32)
        cloud["rgb"] = (c[..., 0] << 16) | (c[..., 1] << 8) | c[..., 2]  # little-endian bytes: B, G, R, 0
    return cloud


def write_ply(path, points: np.ndarray, rgb: np.ndarray | None = None) -> int:
    """ASCII PLY of the finite points; returns how many were written."""
    pts = points.reshape(-1, 3)
    keep = np.isfinite(pts).all(axis=1)
    pts = pts[keep]
    cols = rgb.reshape(-1, 3)[keep] if rgb is not None else None
    with open(path, "w") as f:
        f.write(f"ply\nformat ascii 1.0\nelement vertex {len(pts)}\nproperty float x\nproperty float y\n"
                "property float z\n")
        if cols is not None:
            f.write("property uchar red\nproperty uchar green\nproperty uchar blue\n")
        f.write("end_header\n")
        for i, p in enumerate(pts):
            extra = f" {cols[i, 0]} {cols[i, 1]} {cols[i, 2]}" if cols is not None else ""
            f.write(f"{p[0]:.4f} {p[1]:.4f} {p[2]:.4f}{extra}\n")
    return len(pts)
