"""Evaluation of a model against ground-truth depth (synthetic world and folder sources)."""
from __future__ import annotations

import numpy as np
from tqdm import tqdm

from .metrics import evaluate_pair, mean_errors


def evaluate_sequences(predictor, sequences: list, median_scaling: bool = True, min_depth: float = 1e-3,
                       max_depth: float = 80.0, every: int = 1) -> dict[str, float]:
    """Mean errors over every ``every``-th frame with GT; pixels with min_depth < gt < max_depth.

    Returns the metrics plus ``scale_std`` (spread of per-image median scales, relative).
    """
    rows, scales = [], []
    frames = [(s, i) for s in sequences for i in range(0, len(s), every)]
    for seq, i in tqdm(frames, desc="evaluate", unit="img"):
        gt = seq.depth(i)
        if gt is None:
            continue
        pred = predictor.predict(seq.image(i)).depth
        mask = (gt > min_depth) & (gt < max_depth)
        if not mask.any():
            continue
        errors, scale = evaluate_pair(gt, pred, mask, median_scaling, min_depth, max_depth)
        rows.append(errors)
        scales.append(scale)
    if not rows:
        raise ValueError("no frames with ground-truth depth to evaluate")
    result = mean_errors(rows)
    result["scale_std"] = float(np.std(scales) / np.mean(scales))
    result["images"] = len(rows)
    return result


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
