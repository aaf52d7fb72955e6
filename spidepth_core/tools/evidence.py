"""``spidepth evidence``: how much the frames themselves say about a model's depth errors.

Monocular training learns depth only through the photometric error of frames warped into each other. On
sequences with true depth (``depth/``, dense; for the warps, pixels without it are taken as sky, infinitely
far) and true camera poses (``poses.txt``: one camera-to-world 3x4 matrix per frame, row-major, as
``spidepth synth`` writes), this compares that error (SSIM + L1 with the per-pixel minimum over the frames
before and after, without auto-masking) for four pairings of depth and camera motion:

- ``model``: the model's depth and its pose net's motion, as training sees them;
- ``model depth, true motion`` and ``true depth, model motion``: which of the two costs more;
- ``truth``: the floor that a perfect model would reach.

The pose net's translation is read in mean depths of the frame, as training reads it by default
(``train.depth_relative_translation``). The model's depth is brought to the truth's scale as median-scaled
evaluation does it, per image and on the pixels evaluation scores (true depth below the model's max_depth),
and its motion with it; the depth errors below are taken on those pixels. Each error is given per eighth
of the image height. Then, for the model's pixels grouped by their depth error, the share where the true
depth (with the true motion) reprojects the frames better than the model's depth does. Near one half, a
single pixel cannot tell the two depths apart; training then corrects an error only where many pixels over
many frames agree.

``resolving_power`` asks the same of the frames alone, without a model, at the images' own size: with the
true motion, the share of pixels where the true depth reprojects better than the true depth scaled by
0.9, 1.1 or 1.5. Rendering the same drives at two sizes shows what a higher input resolution would give.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..checkpoint import load_model, load_pose_net, read_checkpoint
from ..data.folder import find_sequences, read_poses
from ..data.sample import TripletDataset, evenly_spaced
from ..geometry import warp
from ..losses import PhotometricLoss, min_reprojection
from ..metrics import EVAL_MAX_DEPTH, evaluated_pixels, gt_mask
from ..objective import relative_pose

BANDS = 8
ERROR_EDGES = (0.0, 0.05, 0.1, 0.2, 0.5, np.inf)  # relative depth error bins of the model's pixels
SKY = 1e4                                        # metres, for pixels without true depth
PHOTOMETRIC = PhotometricLoss()
PAIRINGS = ("model", "model depth, true motion", "true depth, model motion", "truth")
DEPTH_SCALES = (0.9, 1.1, 1.5)                   # the depth errors resolving_power asks about


def true_motion(poses: np.ndarray, target: int, source: int) -> torch.Tensor:
    """T [1,4,4] taking target-camera points into the source camera (the objective's convention)."""
    return torch.from_numpy(np.linalg.inv(poses[source]) @ poses[target]).float()[None]


def bands(values: torch.Tensor, reduce=torch.mean) -> list[float]:
    """Mean (or another ``reduce``) of an [H,W] map over each eighth of its height, top first."""
    h = values.shape[0]
    return [float(reduce(values[h * b // BANDS:h * (b + 1) // BANDS])) for b in range(BANDS)]


def reprojection_error(item: dict, depth: torch.Tensor, motion: list[torch.Tensor]) -> torch.Tensor:
    """Min-reprojection error map [H,W] of a frame triplet's target for a depth [1,1,H,W] and the motions
    to its two sources."""
    frames, K = item["frames"][None], item["K"][None]
    maps = [PHOTOMETRIC(warp(frames[:, j], depth, K, T), frames[:, 0]) for j, T in zip((1, 2), motion)]
    return min_reprojection(torch.cat(maps, dim=1))[0][0]


def true_depth(item: dict) -> torch.Tensor:
    """A triplet's true depth [1,1,H,W] with every pixel filled (no depth: sky, SKY metres away)."""
    gt = item["depth_gt"][None]
    return torch.where(gt > 0, gt, torch.full_like(gt, SKY))


class _PosedTriplets:
    """Frame triplets with true depth and true motion, ``samples`` of them spread over the sequences."""

    def __init__(self, data: Path, samples: int, size: tuple[int, int] | None = None) -> None:
        self.data = data
        sequences = find_sequences(data)
        self.poses = [read_poses(seq.folder) for seq in sequences]
        for seq, p in zip(sequences, self.poses):
            if len(p) != len(seq):
                raise ValueError(f"{seq.folder}: {len(p)} poses for {len(seq)} frames")
        self.size = size or tuple(sequences[0].size)
        self.dataset = TripletDataset(sequences, *self.size)
        self.picks = evenly_spaced(len(self.dataset), samples)

    def __iter__(self):
        """(item, true motions to frames t-1 and t+1) per pick."""
        for index in self.picks:
            item = self.dataset[int(index)]
            if "depth_gt" not in item:
                raise ValueError(f"{self.data}: evidence needs true depth (depth/ folders) for every frame")
            s, t = self.dataset.indices[int(index)]
            yield item, [true_motion(self.poses[s], t, t - 1), true_motion(self.poses[s], t, t + 1)]


class _Pairings:
    """Min-reprojection error maps [H,W] of one frame triplet for each pairing."""

    def __init__(self, depth_net, pose_net, item: dict, true: list[torch.Tensor]) -> None:
        self.item, self.true = item, true
        frames = item["frames"][None]
        target, sources = frames[:, 0], [frames[:, 1], frames[:, 2]]
        gt = item["depth_gt"][None]
        self.gt = true_depth(item)
        depth = depth_net(target).float()
        t_scale = depth.mean(dim=(1, 2, 3))[:, None]  # translation in mean depths, as fine-tuning uses it
        gt_np = gt[0, 0].numpy()
        valid = gt_mask(gt_np, depth_net.config.max_depth)  # the pixels evaluation scores
        ratio = evaluated_pixels(gt_np, depth[0, 0].numpy(), valid)[2]  # its median scaling
        self.valid = torch.from_numpy(valid)
        self.depth = depth * ratio
        self.motion = [relative_pose(pose_net, target, src, f, t_scale * ratio).float()
                       for src, f in zip(sources, (-1, 1))]

    def error(self, depth: torch.Tensor, motion: list[torch.Tensor]) -> torch.Tensor:
        return reprojection_error(self.item, depth, motion)

    def all(self) -> dict[str, torch.Tensor]:
        return {"model": self.error(self.depth, self.motion),
                "model depth, true motion": self.error(self.depth, self.true),
                "true depth, model motion": self.error(self.gt, self.motion),
                "truth": self.error(self.gt, self.true)}


@torch.no_grad()
def evidence(checkpoint: Path, data: Path, samples: int = 60) -> dict:
    """Photometric error per pairing and band, and the truth's share of better-reprojected pixels by the
    model's depth error, over ``samples`` frame triplets spread over the sequences in ``data``."""
    ckpt = read_checkpoint(checkpoint)
    depth_net, pose_net = load_model(checkpoint, ckpt=ckpt), load_pose_net(ckpt, checkpoint).eval()
    triplets = _PosedTriplets(data, samples, (depth_net.config.height, depth_net.config.width))
    sums = {name: np.zeros(BANDS) for name in PAIRINGS}
    counts, better = np.zeros(len(ERROR_EDGES) - 1), np.zeros(len(ERROR_EDGES) - 1)
    for item, true in triplets:
        pairings = _Pairings(depth_net, pose_net, item, true)
        maps = pairings.all()
        for name in PAIRINGS:
            sums[name] += bands(maps[name])
        gt_depth = pairings.gt[0, 0]
        rel = ((pairings.depth[0, 0] - gt_depth).abs() / gt_depth)[pairings.valid]
        truth_wins = (maps["truth"] < maps["model depth, true motion"])[pairings.valid]
        for b, (lo, hi) in enumerate(zip(ERROR_EDGES[:-1], ERROR_EDGES[1:])):
            sel = (rel >= lo) & (rel < hi)
            counts[b] += int(sel.sum())
            better[b] += int(truth_wins[sel].sum())
    picks = triplets.picks
    rows = {name: (sums[name] / len(picks)).tolist() for name in PAIRINGS}
    by_error = [{"error_from": lo, "error_to": hi if np.isfinite(hi) else None, "pixels": int(n),
                 "truth_better": b / n if n else None}
                for lo, hi, n, b in zip(ERROR_EDGES[:-1], ERROR_EDGES[1:], counts, better)]
    return {"checkpoint": str(checkpoint), "data": str(data), "samples": len(picks),
            "photometric": {name: {"bands": r, "all": float(np.mean(r))} for name, r in rows.items()},
            "by_error": by_error}


@torch.no_grad()
def resolving_power(data: Path, samples: int = 60) -> dict:
    """Without a model, at the images' own size: per depth scale in DEPTH_SCALES, the share of pixels (true
    depth within the evaluation cap) where the true depth reprojects the frames better than the true depth
    times that scale, both with the true motion; over the image and per eighth of its height."""
    triplets = _PosedTriplets(data, samples)
    pixels = np.zeros(BANDS)
    better = {scale: np.zeros(BANDS) for scale in DEPTH_SCALES}
    for item, true in triplets:
        depth = true_depth(item)
        valid = torch.from_numpy(gt_mask(item["depth_gt"][0].numpy(), EVAL_MAX_DEPTH))
        pixels += bands(valid.float(), torch.sum)
        truth = reprojection_error(item, depth, true)
        for scale in DEPTH_SCALES:
            wins = (truth < reprojection_error(item, depth * scale, true)) & valid
            better[scale] += bands(wins.float(), torch.sum)
    if not pixels.sum():
        raise ValueError(f"{data}: no pixel has true depth under {EVAL_MAX_DEPTH:g} m")
    h, w = triplets.size
    return {"data": str(data), "size": [h, w], "samples": len(triplets.picks),
            "truth_better": [{"scale": scale, "all": float(better[scale].sum() / pixels.sum()),
                              "bands": [float(b / n) if n else None for b, n in zip(better[scale], pixels)]}
                             for scale in DEPTH_SCALES]}


def format_resolving_power(report: dict) -> str:
    h, w = report["size"]
    lines = [f"{report['data']} at {h}x{w}, {report['samples']} frame triplets, true motion: where the true depth",
             "reprojects better than the true depth scaled by (over the image | by eighth of the height, top first)"]
    for row in report["truth_better"]:
        shares = " ".join("   -" if v is None else f"{v:4.0%}" for v in row["bands"])
        lines.append(f"  x{row['scale']:<4} {row['all']:4.0%} | {shares}")
    return "\n".join(lines)


def format_report(report: dict) -> str:
    lines = [f"{report['checkpoint']} on {report['samples']} frame triplets of {report['data']}",
             "photometric error by eighth of the image height (top first), and over the image:"]
    for name, row in report["photometric"].items():
        lines.append(f"  {name:26s} " + " ".join(f"{v:.4f}" for v in row["bands"]) + f"  | {row['all']:.4f}")
    lines.append("pixels by the model's depth error (median-scaled): where the true depth reprojects better")
    for row in report["by_error"]:
        span = f">= {row['error_from']:.0%}" if row["error_to"] is None \
            else f"{row['error_from']:.0%}-{row['error_to']:.0%}"
        share = "-" if row["truth_better"] is None else f"{row['truth_better']:.0%}"
        lines.append(f"  error {span:9s} {row['pixels']:9d} pixels, truth better at {share}")
    return "\n".join(lines)
