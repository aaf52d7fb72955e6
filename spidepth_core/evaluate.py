"""Evaluation of a model against ground-truth depth (synthetic world and folder sources)."""
from __future__ import annotations

import logging

import cv2
import numpy as np
from tqdm import tqdm

from .data.folder import read_poses
from .error_bands import ErrorBands
from .inference.predictor import NO_UNCERTAINTY
from .metrics import EVAL_MAX_DEPTH, EVAL_MIN_DEPTH, depth_errors, evaluated_pixels, mean_errors
from .scale import ScaleEstimator
from .sparsification import Sparsification

log = logging.getLogger("spidepth.evaluate")

MIN_GT_PIXELS = 100  # a frame is scored only with at least this many valid ground-truth pixels


def evaluate_sequences(predictor, sequences: list, median_scaling: bool = True,
                       min_depth: float = EVAL_MIN_DEPTH, max_depth: float = EVAL_MAX_DEPTH, every: int = 1,
                       camera_height: float | str | None = None,
                       sparsification: Sparsification | None = None,
                       bands: tuple[ErrorBands, ...] = ()) -> dict[str, float]:
    """Mean errors over every ``every``-th frame with GT; pixels with min_depth < gt < max_depth.

    ``camera_height`` (metres, or "poses" for each sequence's mean height from its poses.txt) scales the
    depth as the node's camera_height policy does, frame after frame; median scaling is then off.
    ``sparsification``: also predict the uncertainty and add each image to it.
    ``bands``: add each image's evaluated pixels to each (error per band of true depth, of image rows).
    Returns the metrics plus ``scale_std`` (spread of per-image scales, relative).
    """
    rows, scales, sparse = [], [], 0
    every_frame = camera_height is not None  # the smoothed scale needs every frame in order
    frames = [(s, i) for s in sequences for i in range(0, len(s), 1 if every_frame else every)]
    estimator, current = None, None
    for seq, i in tqdm(frames, desc="evaluate", unit="img"):
        if camera_height is not None and seq is not current:
            estimator, current = ScaleEstimator("camera_height", camera_height=_height(seq, camera_height)), seq
        result = predictor.predict(seq.image(i), seq.K, uncertainty=sparsification is not None)
        pred, spread = result.depth, result.uncertainty
        if estimator is not None:
            factor = estimator.update(pred, result.K)
            pred = pred * factor
            spread = None if spread is None else spread * factor
        gt = seq.depth(i)
        if gt is None or i % every:
            continue
        if gt.shape != pred.shape:  # e.g. a depth camera at another resolution than the colour one
            pred = cv2.resize(pred, (gt.shape[1], gt.shape[0]), interpolation=cv2.INTER_LINEAR)
            if spread is not None:
                spread = cv2.resize(spread, (gt.shape[1], gt.shape[0]), interpolation=cv2.INTER_LINEAR)
        mask = (gt > min_depth) & (gt < max_depth)
        if mask.sum() < MIN_GT_PIXELS:  # too little truth to score (median scaling alone would fit one pixel)
            sparse += 1
            continue
        g, p, scale = evaluated_pixels(gt, pred, mask, median_scaling and estimator is None, min_depth, max_depth)
        rows.append(depth_errors(g, p))
        for table in bands:
            table.add(g, p, mask)
        if sparsification is not None:
            if spread is None:
                raise ValueError(f"{getattr(predictor, 'model_path', 'the model')} {NO_UNCERTAINTY}")
            sparsification.add(g, p, spread[mask] * scale)
        scales.append(scale if estimator is None else estimator.scale)
    if not rows:
        why = (f": {sparse} had fewer than {MIN_GT_PIXELS} valid ground-truth pixels within "
               f"{min_depth:g}-{max_depth:g} m (too small or too sparse to score)" if sparse else "")
        raise ValueError(f"no frames with ground-truth depth to evaluate{why}")
    if sparse:
        log.warning("skipped %d frame(s) with fewer than %d valid ground-truth pixels", sparse, MIN_GT_PIXELS)
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
    return float(-read_poses(seq.folder)[:, 1, 3].mean())


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


def bag_ground_truth(bag, image_topic: str, depth_topic: str, info_topic: str | None = None,
                     cache_dir: str | None = None) -> list:
    """Every frame of a recording, with the depth frame stamped like it as ground truth (a sequence list
    for ``evaluate_sequences``). Decoded once into the bag cache."""
    from .data.bag import bag_sequences
    sequences, _ = bag_sequences(bag, image_topic, info_topic, cache_dir=cache_dir, min_motion=0.0,
                                 depth_topic=depth_topic)
    return sequences


def bag_photometric_error(model, bag, image_topic: str, info_topic: str | None = None,
                          cache_dir: str | None = None) -> float:
    """Mean self-supervised photometric error of a checkpoint (depth and pose nets) over a recording's
    frame triplets: a way to compare two models on a bag without ground truth (lower is better)."""
    from torch.utils.data import DataLoader

    from .config import TrainConfig
    from .data.build import build_datasets
    from .parts import photometric_scores, scorer
    cfg = TrainConfig()
    cfg.data.source, cfg.data.path, cfg.data.image_topic = "bag", str(bag), image_topic
    cfg.data.camera_info_topic, cfg.data.cache_dir, cfg.data.val_fraction = info_topic, cache_dir, 0.0
    cfg.train.flip = cfg.train.color_jitter = 0.0  # every triplet as recorded
    parts = scorer(model, cfg)
    size = parts.depth_net.config
    frames = build_datasets(cfg.data, size.height, size.width, cfg.train)[0]
    loader = DataLoader(frames, batch_size=cfg.train.batch_size)
    return photometric_scores(parts.depth_net, parts.pose_net, parts.objective, loader, parts.device,
                              size.max_depth)["photometric"]
