"""The one sample format, and a dataset that makes (t, t-s, t+s) samples from any sequence.

A sample is a dict of tensors:
  frames      [F,3,H,W] float RGB in [0,1], ordered as ``frame_ids`` (frame 0 first), for the loss
  frames_aug  [F,3,H,W] the same after colour jitter, for the networks
  K           [3,3] intrinsics in pixels at the frames' resolution
  depth_gt    [1,h,w] metres at the training resolution, 0 where unknown (only if the source has ground truth)
  stereo, stereo_aug [3,H,W] and stereo_T [4,4] (only with a stereo pair)

H,W is the training resolution h,w times ``loss_factor`` (1 unless the photometric loss is computed at a
finer resolution than the networks see; they then take the frames pooled down to h,w). The factor is
lowered to what the frames hold: upsampled frames would add cost and no detail.
"""
from __future__ import annotations

import logging
from typing import Callable, Protocol

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from ..pinhole import resize_intrinsics
from .augment import augment

log = logging.getLogger(__name__)


class Sequence(Protocol):
    """An ordered camera sequence at native resolution."""

    K: np.ndarray                 # 3x3 pixels, native resolution
    size: tuple[int, int]         # native (height, width)

    def __len__(self) -> int: ...
    def image(self, i: int) -> np.ndarray: ...             # HxWx3 uint8 RGB
    def depth(self, i: int) -> np.ndarray | None: ...      # HxW float metres or None
    def stereo(self, i: int) -> np.ndarray | None: ...     # right image or None


def _resize_rgb(img: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    if img.shape[:2] != hw:
        img = cv2.resize(img, (hw[1], hw[0]), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(img)


def _to_tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img).permute(2, 0, 1).float().div_(255.0)


class FrameCache:
    """Decoded, resized frames kept in memory up to ``budget_mb`` (first come, first kept): each frame of a
    sequence serves several triplets and every epoch, but is read and decoded once."""

    def __init__(self, budget_mb: float) -> None:
        self.budget = int(budget_mb * 2**20)
        self.used = 0
        self.frames: dict[tuple, np.ndarray] = {}

    def get(self, key: tuple, make: Callable[[], np.ndarray]) -> np.ndarray:
        frame = self.frames.get(key)
        if frame is None:
            frame = make()
            if self.used + frame.nbytes <= self.budget:
                self.frames[key] = frame
                self.used += frame.nbytes
        return frame


def evenly_spaced(n: int, count: int) -> np.ndarray:
    """Up to ``count`` distinct indices spread evenly over ``range(n)``, first and last included."""
    return np.unique(np.linspace(0, n - 1, min(count, n)).round().astype(int))


class TripletDataset(Dataset):
    """Samples frames ``t + stride * id`` for id in ``frame_ids`` from every sequence."""

    def __init__(self, sequences: list, height: int, width: int, frame_ids=(0, -1, 1), stride: int = 1,
                 flip: float = 0.0, color_jitter: float = 0.0, stereo_baseline: float = 0.1,
                 seed: int = 0, indices: list[tuple[int, int]] | None = None,
                 crop: tuple[int, int] | None = None, loss_factor: int = 1, cache_mb: float = 0.0) -> None:
        if not sequences:
            raise ValueError("no sequences given")
        if frame_ids[0] != 0:
            raise ValueError(f"frame_ids must start with 0, got {list(frame_ids)}")
        if loss_factor < 1:
            raise ValueError(f"the photometric loss resolution factor must be >= 1, got {loss_factor}")
        self.sequences = sequences
        self.hw = (height, width)
        self.crop = crop  # (height, width) cut from the bottom centre before resizing (KB crop)
        self.loss_factor = self._frames_allow(loss_factor)
        self.image_hw = (height * self.loss_factor, width * self.loss_factor)
        self.frame_ids = list(frame_ids)
        self.stride = stride
        self.flip, self.color_jitter = flip, color_jitter
        self.stereo_baseline = stereo_baseline
        self.seed, self.epoch = seed, 0
        self.cache = FrameCache(cache_mb)
        self.indices = indices if indices is not None else self._all_indices()
        if not self.indices:
            raise ValueError(f"sequences too short for frame_ids {self.frame_ids} with stride {stride}")

    def _frames_allow(self, loss_factor: int) -> int:
        """The largest factor up to ``loss_factor`` at which the smallest frames still hold every pixel."""
        if loss_factor == 1:
            return 1
        h, w = self.crop or (min(seq.size[0] for seq in self.sequences), min(seq.size[1] for seq in self.sequences))
        allowed = max(1, min(loss_factor, h // self.hw[0], w // self.hw[1]))
        if allowed < loss_factor:
            log.info("photometric loss at %dx the input size (asked %dx): the frames are %dx%d",
                     allowed, loss_factor, w, h)
        return allowed

    def _all_indices(self) -> list[tuple[int, int]]:
        lo = -min(self.frame_ids) * self.stride
        hi = max(self.frame_ids) * self.stride
        return [(s, t) for s, seq in enumerate(self.sequences) for t in range(lo, len(seq) - hi)]

    def _crop_window(self, seq):
        """(cut function, K, size) for the optional bottom-centre crop."""
        if self.crop is None:
            return (lambda a: a), seq.K, seq.size
        (h, w), (ch, cw) = seq.size, self.crop
        if ch > h or cw > w:
            raise ValueError(f"crop {cw}x{ch} is larger than the {w}x{h} images")
        top, left = h - ch, (w - cw) // 2
        K = np.array(seq.K, np.float64, copy=True)
        K[0, 2] -= left
        K[1, 2] -= top
        return (lambda a: a[top:top + ch, left:left + cw]), K, (ch, cw)

    def _image(self, s: int, i: int, cut) -> np.ndarray:
        """Frame ``i`` of sequence ``s``, cut and resized (from the cache once seen)."""
        return self.cache.get((s, i), lambda: _resize_rgb(cut(self.sequences[s].image(i)), self.image_hw))

    def _right(self, seq, t: int, cut) -> np.ndarray:
        """The stereo partner of frame ``t``, resized; an empty array where there is none."""
        right = seq.stereo(t)
        return _resize_rgb(cut(right), self.image_hw) if right is not None else np.empty((0, 0, 3), np.uint8)

    def set_epoch(self, epoch: int) -> None:
        """Augmentation depends on (seed, epoch, index) only: resumable and worker-independent."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> dict:
        s, t = self.indices[index]
        seq = self.sequences[s]
        cut, K, size = self._crop_window(seq)
        frames = torch.stack([_to_tensor(self._image(s, t + self.stride * f, cut)) for f in self.frame_ids])
        sample = {"frames": frames, "K": torch.from_numpy(resize_intrinsics(K, size, self.image_hw)).float()}
        depth = seq.depth(t)
        if depth is not None:
            d = cv2.resize(cut(depth.astype(np.float32)), (self.hw[1], self.hw[0]), interpolation=cv2.INTER_NEAREST)
            sample["depth_gt"] = torch.from_numpy(d)[None]
        right = self.cache.get((s, t, "right"), lambda: self._right(seq, t, cut))
        if right.size:
            sample["stereo"] = _to_tensor(right)
            T = torch.eye(4)
            # Target points seen from the partner camera, which sits at +x (or -x for a right target).
            T[0, 3] = -getattr(seq, "stereo_sign", 1.0) * self.stereo_baseline
            sample["stereo_T"] = T
        rng = np.random.default_rng([self.seed, self.epoch, index])
        return augment(sample, rng, self.flip, self.color_jitter)
