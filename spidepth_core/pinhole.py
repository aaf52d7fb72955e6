"""Pinhole intrinsics in NumPy (no PyTorch), shared by the node, inference and training.

Convention ("image_proc"): resizing an image by (sx, sy) scales fx, cx by sx and fy, cy by sy.
"""
from __future__ import annotations

from typing import Any

import numpy as np

INTRINSICS_CONVENTION = "pinhole_pixels_image_proc_resize"


def valid_intrinsics(K: np.ndarray) -> bool:
    """Whether a 3x3 K is usable: finite, with positive focal lengths."""
    K = np.asarray(K, np.float64)
    return K.shape == (3, 3) and bool(np.all(np.isfinite(K))) and K[0, 0] > 0 and K[1, 1] > 0


def scale_intrinsics(K: Any, sx: float, sy: float) -> Any:
    """Scale a 3x3 (or [...,3,3]) K for an image resized by (sx, sy), as image_proc does."""
    out: Any = K.clone() if hasattr(K, "clone") else np.array(K, dtype=np.float64, copy=True)  # a tensor stays one
    out[..., 0, :] *= sx
    out[..., 1, :] *= sy
    return out


def resize_intrinsics(K, src_hw: tuple[int, int], dst_hw: tuple[int, int]):
    """K for an image resized from src (H, W) to dst (H, W)."""
    return scale_intrinsics(K, dst_hw[1] / src_hw[1], dst_hw[0] / src_hw[0])


def intrinsics_matrix(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=np.float64)


def kitti_intrinsics(height: int, width: int) -> np.ndarray:
    """KITTI's normalised intrinsics (fx 0.58 W, fy 1.92 H, centred) at this size."""
    return intrinsics_matrix(0.58 * width, 1.92 * height, 0.5 * width, 0.5 * height)
