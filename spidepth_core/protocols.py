"""Evaluation protocols: KITTI Eigen, Cityscapes (ManyDepth), Make3D. Each turns (gt, pred) into the
pixels that count; ``depth_errors`` (metrics.py) does the rest."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

from .metrics import EVAL_MAX_DEPTH, EVAL_MIN_DEPTH, evaluate_pair, gt_mask

GARG_CROP = (0.40810811, 0.99189189, 0.03594771, 0.96405229)  # rows, rows, cols, cols (fractions)


def _resize(pred: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    return cv2.resize(pred, (hw[1], hw[0]), interpolation=cv2.INTER_LINEAR)


def kitti_eigen(gt: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Garg crop, 1e-3 < gt < 80; pred resized to the GT size."""
    h, w = gt.shape
    pred = _resize(pred, (h, w))
    r0, r1, c0, c1 = (np.array(GARG_CROP) * [h, h, w, w]).astype(np.int32)
    mask = gt_mask(gt, EVAL_MAX_DEPTH)
    crop = np.zeros_like(mask)
    crop[r0:r1, c0:c1] = True
    mask &= crop
    return gt[mask], pred[mask]


def cityscapes(gt: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ManyDepth: GT top 75% of rows (the input was cropped the same way), pred resized to it,
    then both cropped to [256:, 192:1856] of the 1024x2048 frame; 1e-3 < gt < 80."""
    h = int(round(gt.shape[0] * 0.75))
    gt = gt[:h]
    pred = _resize(pred, gt.shape)
    sy, sx = gt.shape[0] / 768.0, gt.shape[1] / 2048.0  # the crop in the native 1024x2048 frame
    gt = gt[int(256 * sy):, int(192 * sx):int(1856 * sx)]
    pred = pred[int(256 * sy):, int(192 * sx):int(1856 * sx)]
    mask = gt_mask(gt, EVAL_MAX_DEPTH)
    return gt[mask], pred[mask]


def make3d(gt: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """GT 55x305 cropped to rows 17:38 (2:1 centre band), pred resized to it, gt < 70 m."""
    gt = gt[17:38, :]
    pred = _resize(pred, gt.shape)
    mask = (gt > 0) & (gt < 70)
    return gt[mask], pred[mask]


def cityscapes_input(image: np.ndarray) -> np.ndarray:
    """The top 75% of rows (drops the ego car's bonnet)."""
    return image[: int(round(image.shape[0] * 0.75))]


def make3d_input(image: np.ndarray) -> np.ndarray:
    """2:1 centre crop of the portrait Make3D image (height 2272, width 1704 -> 852 rows)."""
    h, w = image.shape[:2]
    band = w // 2
    top = (h - band) // 2
    return image[top:top + band]


@dataclass(frozen=True)
class Protocol:
    name: str
    select: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
    prepare_input: Callable[[np.ndarray], np.ndarray]
    max_depth: float
    metrics: tuple[str, ...]


PROTOCOLS = {
    "kitti_eigen": Protocol("kitti_eigen", kitti_eigen, lambda im: im, EVAL_MAX_DEPTH,
                            ("abs_rel", "sq_rel", "rmse", "rmse_log", "a1", "a2", "a3")),
    "cityscapes": Protocol("cityscapes", cityscapes, cityscapes_input, EVAL_MAX_DEPTH,
                           ("abs_rel", "sq_rel", "rmse", "rmse_log", "a1", "a2", "a3")),
    "make3d": Protocol("make3d", make3d, make3d_input, 70.0, ("abs_rel", "sq_rel", "rmse", "log10")),
}


def score(protocol: Protocol, gt: np.ndarray, pred: np.ndarray, median_scaling: bool) -> tuple[dict, float]:
    """Errors for one image: select pixels, median-scale (optional), clamp to [EVAL_MIN_DEPTH, max_depth]."""
    g, p = protocol.select(gt, pred)
    if g.size == 0:
        raise ValueError("no valid ground-truth pixels after the protocol's crop and mask")
    return evaluate_pair(g, p, np.ones(g.shape, bool), median_scaling, EVAL_MIN_DEPTH, protocol.max_depth)
