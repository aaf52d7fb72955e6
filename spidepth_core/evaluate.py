"""Evaluation of a model against ground-truth depth (synthetic world and folder sources)."""
from __future__ import annotations

import numpy as np
from tqdm import tqdm

from .metrics import evaluate_pair, mean_errors
from .scale import ScaleEstimator


def evaluate_sequences(predictor, sequences: list, median_scaling: bool = True, min_depth: float = 1e-3,
                       max_depth: float = 80.0, every: int = 1,
                       camera_height: float | str | None = None) -> dict[str, float]:
    """Mean errors over every ``every``-th frame with GT; pixels with min_depth < gt < max_depth.

    ``camera_height`` (metres, or "poses" for each sequence's mean height from its poses.txt) scales the
    depth as the node's camera_height policy does, frame after frame; median scaling is then off.
    Returns the metrics plus ``scale_std`` (spread of per-image scales, relative).
    """
    rows, scales = [], []
    every_frame = camera_height is not None  # the smoothed scale needs every frame in order
    frames = [(s, i) for s in sequences for i in range(0, len(s), 1 if every_frame else every)]
    estimator, current = None, None
    for seq, i in tqdm(frames, desc="evaluate", unit="img"):
        if camera_height is not None and seq is not current:
            estimator, current = ScaleEstimator("camera_height", camera_height=_height(seq, camera_height)), seq
        result = predictor.predict(seq.image(i), seq.K)
        pred = result.depth
        if estimator is not None:
            pred = pred * estimator.update(pred, result.K)
        gt = seq.depth(i)
        if gt is None or i % every:
            continue
        mask = (gt > min_depth) & (gt < max_depth)
        if not mask.any():
            continue
        errors, scale = evaluate_pair(gt, pred, mask, median_scaling and estimator is None, min_depth, max_depth)
        rows.append(errors)
        scales.append(scale if estimator is None else estimator.scale)
    if not rows:
        raise ValueError("no frames with ground-truth depth to evaluate")
    result = mean_errors(rows)
    result["scale_std"] = float(np.std(scales) / np.mean(scales))
    result["images"] = len(rows)
    return result


def _height(seq, camera_height: float | str) -> float:
    """The camera height for one sequence: a number, or the mean from its poses.txt (3x4 camera-to-world
    rows, world y pointing down with the ground at y = 0)."""
    if camera_height != "poses":
        return float(camera_height)
    path = seq.folder / "poses.txt"
    if not path.is_file():
        raise ValueError(f"--camera-height poses needs {path}")
    return float(-np.loadtxt(path).reshape(-1, 3, 4)[:, 1, 3].mean())


def evaluate_protocol(name: str, predictor, root, median_scaling: bool, split=None, gt=None) -> dict[str, float]:
    """A benchmark protocol over its data set: mean errors of the protocol's metrics."""
    from .data import benchmarks
    from .protocols import PROTOCOLS, score
    protocol = PROTOCOLS[name]
    if name == "kitti_eigen":
        if not split or not gt:
            raise ValueError("kitti_eigen needs --split (Eigen test files) and --gt (gt_depths.npz)")
        samples = benchmarks.kitti_eigen(root, split, gt)
    elif name == "cityscapes":
        samples = benchmarks.cityscapes(root, split)
    else:
        samples = benchmarks.make3d(root)
    rows = []
    for image, gt_depth in tqdm(samples, desc=name, unit="img"):
        pred = predictor.predict(protocol.prepare_input(image), output_size="model").depth
        rows.append(score(protocol, gt_depth, pred, median_scaling)[0])
    result = {k: v for k, v in mean_errors(rows).items() if k in protocol.metrics}
    result["images"] = len(rows)
    return result
