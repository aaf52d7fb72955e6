"""Training augmentation: horizontal flip (with K and stereo updated) and colour jitter."""
from __future__ import annotations

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF


def _flip(sample: dict) -> dict:
    out = dict(sample)
    for key in ("frames", "stereo", "depth_gt"):
        if key in sample:
            out[key] = sample[key].flip(-1)
    width = sample["frames"].shape[-1]
    K = sample["K"].clone()
    K[0, 2] = width - 1 - K[0, 2]
    out["K"] = K
    if "stereo_T" in sample:  # the right camera becomes the left one
        T = sample["stereo_T"].clone()
        T[0, 3] = -T[0, 3]
        out["stereo_T"] = T
    return out


def _jitter(images: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    b, c, s = rng.uniform(0.8, 1.2, size=3)
    h = rng.uniform(-0.1, 0.1)
    images = TF.adjust_brightness(images, float(b))
    images = TF.adjust_contrast(images, float(c))
    images = TF.adjust_saturation(images, float(s))
    return TF.adjust_hue(images, float(h)).clamp(0, 1)


def augment(sample: dict, rng: np.random.Generator, flip: float, color_jitter: float) -> dict:
    """Adds ``frames_aug`` (and ``stereo_aug``); the same jitter for every frame of a sample."""
    if rng.random() < flip:
        sample = _flip(sample)
    do_jitter = rng.random() < color_jitter
    jitter_seed = int(rng.integers(2**31))
    for key in ("frames", "stereo"):
        if key in sample:
            img = sample[key]
            sample[f"{key}_aug"] = _jitter(img, np.random.default_rng(jitter_seed)) if do_jitter else img
    return sample
