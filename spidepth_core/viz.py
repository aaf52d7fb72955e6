"""Colour maps for depth previews."""
from __future__ import annotations

import cv2
import numpy as np


def colorize_depth(depth: np.ndarray, vmin: float | None = None, vmax: float | None = None) -> np.ndarray:
    """depth HxW metres -> HxWx3 uint8 RGB (near = warm). NaN / non-positive -> black."""
    valid = np.isfinite(depth) & (depth > 0)
    if not valid.any():
        return np.zeros((*depth.shape, 3), np.uint8)
    inv = np.zeros_like(depth, dtype=np.float32)
    inv[valid] = 1.0 / depth[valid]
    lo = 1.0 / vmax if vmax else float(np.percentile(inv[valid], 5))
    hi = 1.0 / vmin if vmin else float(np.percentile(inv[valid], 95))
    norm = np.clip((inv - lo) / max(hi - lo, 1e-9), 0, 1)
    rgb = cv2.cvtColor(cv2.applyColorMap((norm * 255).astype(np.uint8), cv2.COLORMAP_MAGMA), cv2.COLOR_BGR2RGB)
    rgb[~valid] = 0
    return rgb
