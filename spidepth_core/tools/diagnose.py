"""``spidepth diagnose``: what a run's networks do on its own frames, and why a run may be stuck.

A monocular run that stops learning usually shows it in the pose net's motion or in the depth's shape:
the motion of a forward-facing camera explained as sideways translation plus a yaw, a translation that
is almost nil, a depth map shrunk toward its smallest value, or one nearly flat. Each sample is a frame
triplet of the run's validation data (its training data if that has fewer triplets than asked for),
without augmentation and without a stereo partner; the photometric error is single-scale, with
auto-masking.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..config import load_config
from ..data.build import build_datasets
from ..data.sample import evenly_spaced
from ..parts import Scorer, scorer

# Thresholds of the findings (each a sign seen in stuck runs, not a proof).
FORWARD_MIN = 0.5        # share of the camera's motion along its optical axis
STILL_MAX = 1e-3         # motion per frame, in median depths, below which the pose net predicts no motion
TURN_MAX_DEG = 5.0       # rotation per frame
FLAT_MAX = 0.1           # std of log depth within an image
SHRUNK_MAX = 0.005       # median depth as a share of the model's max_depth
EXPLAINED_MIN = 0.5      # share of pixels the predicted motion explains better than no motion


def camera_motion(T: torch.Tensor, frame_id: int) -> tuple[np.ndarray, np.ndarray]:
    """From T [B,4,4] (target points to the camera of frame ``frame_id``, as the objective warps): the
    camera's displacement per frame in the target camera's axes [B,3] (forward is +z) and its rotation
    per frame in degrees [B]."""
    R, t = T[:, :3, :3].double(), T[:, :3, 3:].double()
    centre = (-R.transpose(1, 2) @ t)[..., 0]  # the other camera's centre in target coordinates
    cos = ((R.diagonal(dim1=1, dim2=2).sum(dim=1) - 1) / 2).clamp(-1, 1)
    per_frame = centre.cpu().numpy() * np.sign(frame_id) / abs(frame_id)
    return per_frame, np.degrees(torch.arccos(cos).cpu().numpy()) / abs(frame_id)


def depth_shape(depth: np.ndarray, max_depth: float) -> dict[str, float]:
    """Median depth (also as a share of ``max_depth``) and the spread of log depth of one [H,W] map."""
    valid = depth[np.isfinite(depth) & (depth > 0)]
    median = float(np.median(valid))
    return {"median_depth": median, "median_of_max": median / max_depth,
            "log_depth_std": float(np.std(np.log(valid)))}


def findings(summary: dict[str, float]) -> list[str]:
    """Plain-language signs of a stuck run in a ``diagnose`` summary; empty when none shows."""
    out = []
    if summary["motion_per_depth"] < STILL_MAX:
        out.append("the pose net predicts almost no motion: the photometric loss then has no parallax to learn "
                   "depth from (a static camera? raise data.min_motion; or start the pose net moving with "
                   "pose.forward_start=0.02)")
    elif summary["forward_share"] < FORWARD_MIN:
        out.append(f"the pose net explains the motion mostly as sideways or vertical translation (forward share "
                   f"{summary['forward_share']:.2f}): for a camera that looks along the direction of travel, "
                   f"retrain with pose.forward_start=0.02")
    if summary["rotation_deg"] > TURN_MAX_DEG:
        out.append(f"large rotations per frame ({summary['rotation_deg']:.1f} deg): check the frame rate "
                   f"(data.stride) or a yaw that stands in for forward motion")
    if summary["median_of_max"] < SHRUNK_MAX:
        out.append("the depth has shrunk toward its smallest value: with depth-relative translation, retrain "
                   "with train.detach_translation_scale=false")
    if summary["log_depth_std"] < FLAT_MAX:
        out.append(f"the depth is nearly flat (std of log depth {summary['log_depth_std']:.3f})")
    if summary["explained_share"] < EXPLAINED_MIN:
        out.append(f"the predicted motion and depth explain only {summary['explained_share']:.0%} of the pixels "
                   f"better than no motion at all (the auto-mask keeps the rest out of the loss)")
    return out


def _run_config(run_dir: Path, overrides: list[str]):
    """The run's config (with the user's overrides), its data as recorded: no augmentation, no stereo."""
    config = run_dir / "config.yaml"
    if not config.is_file():
        raise FileNotFoundError(f"{config} not found: diagnose takes a training run's folder (or a checkpoint "
                                "in one)")
    cfg = load_config(str(config), overrides)
    cfg.train.flip = cfg.train.color_jitter = 0.0
    cfg.data.stereo_dir = None
    return cfg


@torch.no_grad()
def diagnose(run: Path, samples: int = 16, overrides: list[str] | None = None) -> dict:
    """Per-sample pose and depth statistics of a run's checkpoint (``run``: a run folder, whose last.pt is
    taken, or a checkpoint in one), their medians, and the findings."""
    checkpoint = run / "last.pt" if run.is_dir() else run
    cfg = _run_config(checkpoint.parent, list(overrides or []))
    parts = scorer(checkpoint, cfg)
    size = parts.depth_net.config
    train, val = build_datasets(cfg.data, size.height, size.width, cfg.train)
    use_val = val is not None and len(val) >= min(samples, len(train))
    data = val if use_val and val is not None else train
    picks = evenly_spaced(len(data), samples)
    rows = [_sample(parts, cfg.data.frame_ids, data[int(i)]) for i in picks]
    keys = dict.fromkeys(k for row in rows for k in row)  # abs_rel only where a frame has ground truth
    summary = {k: float(np.median([row[k] for row in rows if k in row])) for k in keys}
    return {"checkpoint": str(checkpoint), "samples": len(rows), "data": "validation" if use_val else "training",
            "summary": summary, "findings": findings(summary), "rows": rows}


def _sample(parts: Scorer, frame_ids: list[int], item: dict) -> dict[str, float]:
    from ..metrics import evaluate_pair, gt_mask
    batch = {k: v[None].to(parts.device) for k, v in item.items()}
    out = parts.objective(parts.depth_net, parts.pose_net, batch)
    depth = out.depth[0, 0].cpu().numpy()
    max_depth = parts.depth_net.config.max_depth
    shape = depth_shape(depth, max_depth)
    motions, angles = [], []
    for T, frame_id in zip(out.poses, frame_ids[1:]):  # the poses the photometric error used
        motion, angle = camera_motion(T, frame_id)
        motions.append(motion[0])
        angles.append(angle[0])
    motion = np.mean(motions, axis=0)
    length = float(np.linalg.norm(motion))
    row = {"forward_share": float(motion[2] / length) if length > 0 else 0.0,
           "sideways_share": float(abs(motion[0]) / length) if length > 0 else 0.0,
           "motion_per_frame": length, "motion_per_depth": length / shape["median_depth"],
           "rotation_deg": float(np.mean(angles)), **shape,
           "explained_share": float(out.automask.float().mean()), "photometric": float(out.photometric)}
    if "depth_gt" in batch:
        gt = batch["depth_gt"][0, 0].cpu().numpy()
        mask = gt_mask(gt, max_depth)
        if mask.any():
            row["abs_rel"] = evaluate_pair(gt, depth, mask, max_depth=max_depth)[0]["abs_rel"]
            row["log_depth_corr"] = float(np.corrcoef(np.log(gt[mask]), np.log(depth[mask]))[0, 1])
    return row


def format_report(report: dict) -> str:
    s = report["summary"]
    lines = [f"{report['checkpoint']}: {report['samples']} frame triplets of its {report['data']} data (medians)",
             f"  camera motion per frame: {s['motion_per_frame']:.3g} (model units; {s['motion_per_depth']:.3g} "
             f"median depths), forward share {s['forward_share']:+.2f}, sideways share {s['sideways_share']:.2f}, "
             f"rotation {s['rotation_deg']:.2f} deg",
             f"  depth: median {s['median_depth']:.3g} ({s['median_of_max']:.1%} of max_depth), std of log depth "
             f"{s['log_depth_std']:.3f}",
             f"  photometric error {s['photometric']:.4f}; pixels explained better than by no motion "
             f"{s['explained_share']:.0%}"]
    if "abs_rel" in s:
        lines.append(f"  against ground truth: abs_rel {s['abs_rel']:.3f} (median-scaled), log-depth "
                     f"correlation {s['log_depth_corr']:.2f}")
    found = report["findings"]
    lines.append("findings:" if found else "findings: none of the signs of a stuck run")
    lines += [f"  - {f}" for f in found]
    return "\n".join(lines)

