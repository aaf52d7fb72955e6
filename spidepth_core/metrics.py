"""Depth error metrics: the one function every protocol and benchmark uses."""
from __future__ import annotations

import numpy as np

METRIC_NAMES = ("abs_rel", "sq_rel", "rmse", "rmse_log", "a1", "a2", "a3", "log10")
EVAL_MIN_DEPTH = 1e-3  # metres: the window of true depth that evaluation scores (KITTI Eigen, Cityscapes)
EVAL_MAX_DEPTH = 80.0


def depth_errors(gt: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Standard errors over matching 1-D arrays of valid, positive depths."""
    gt = np.asarray(gt, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.float64)
    if gt.shape != pred.shape or gt.size == 0:
        raise ValueError(f"need equal, non-empty arrays; got {gt.shape} and {pred.shape}")
    ratio = np.maximum(gt / pred, pred / gt)
    return {
        "abs_rel": float(np.mean(np.abs(gt - pred) / gt)),
        "sq_rel": float(np.mean((gt - pred) ** 2 / gt)),
        "rmse": float(np.sqrt(np.mean((gt - pred) ** 2))),
        "rmse_log": float(np.sqrt(np.mean((np.log(gt) - np.log(pred)) ** 2))),
        "a1": float(np.mean(ratio < 1.25)),
        "a2": float(np.mean(ratio < 1.25 ** 2)),
        "a3": float(np.mean(ratio < 1.25 ** 3)),
        "log10": float(np.mean(np.abs(np.log10(gt) - np.log10(pred)))),
    }


def gt_mask(gt: np.ndarray, max_depth: float) -> np.ndarray:
    """Pixels whose ground truth lies in (EVAL_MIN_DEPTH, ``max_depth``): what evaluation scores."""
    return (gt > EVAL_MIN_DEPTH) & (gt < max_depth)


def evaluated_pixels(gt: np.ndarray, pred: np.ndarray, mask: np.ndarray, median_scaling: bool = True,
                     min_depth: float = EVAL_MIN_DEPTH,
                     max_depth: float = EVAL_MAX_DEPTH) -> tuple[np.ndarray, np.ndarray, float]:
    """Mask, optionally median-scale and clamp: the (gt, pred) pixels the errors are taken over, and the scale."""
    g, p = gt[mask], pred[mask]
    if g.size == 0:
        raise ValueError("no valid ground-truth pixels after masking")
    scale = float(np.median(g) / np.median(p)) if median_scaling else 1.0
    return g, np.clip(p * scale, min_depth, max_depth), scale


def evaluate_pair(gt: np.ndarray, pred: np.ndarray, mask: np.ndarray, median_scaling: bool = True,
                  min_depth: float = EVAL_MIN_DEPTH,
                  max_depth: float = EVAL_MAX_DEPTH) -> tuple[dict[str, float], float]:
    """``evaluated_pixels``, then ``depth_errors``. Returns (errors, scale)."""
    g, p, scale = evaluated_pixels(gt, pred, mask, median_scaling, min_depth, max_depth)
    return depth_errors(g, p), scale


def mean_errors(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}


def format_table(errors: dict[str, float], names=METRIC_NAMES) -> str:
    names = [n for n in names if n in errors]
    head = " | ".join(f"{n:>8}" for n in names)
    vals = " | ".join(f"{errors[n]:8.4f}" for n in names)
    return f"{head}\n{vals}"
