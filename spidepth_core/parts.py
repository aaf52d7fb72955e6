"""The parts of a training run, built from a typed ``TrainConfig``: depth net, pose net, objective,
optimiser and schedule, and the check that a run folder may be resumed.

Training, evaluation and diagnosis each build what they need from here; nothing here trains.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from .checkpoint import load_pose_net, read_checkpoint, stored_pose_config
from .config import TrainConfig
from .metrics import evaluate_pair, gt_mask
from .models import DepthConfig, DepthNet, create_pose_net, model_config, set_input_scale, start_moving_forward
from .objective import DepthAnchor, SelfSupervisedObjective, SupervisedObjective
from .shipped import model_file

log = logging.getLogger("spidepth.train")

Objective = SelfSupervisedObjective | SupervisedObjective
WAYS_OUT = "Start over with --restart (replaces that run), or set run.out_dir to another folder."


def depth_config(cfg: TrainConfig, init: dict | None, resumed: dict | None) -> DepthConfig:
    """The depth net's config, without building it: from ``init`` (an --init checkpoint), else from the
    resumed run, else the named config; ``model.overrides`` on top."""
    source = init or resumed
    if source is not None:
        return DepthConfig.from_dict({**source["config"], **cfg.model.overrides})
    return model_config(cfg.model.name, **cfg.model.overrides)


def build_depth_net(cfg: TrainConfig, config: DepthConfig, init: dict | None, resumed: dict | None) -> DepthNet:
    """The depth net of ``config``: weights from ``init`` (fine-tuning), or none yet when resuming (they come
    from last.pt), else ``model.pretrained`` encoder weights. Only a fresh start touches the hub."""
    if init is not None:
        model = DepthNet(config)
        model.load_state_dict(init["state_dict"])
        return model
    return DepthNet(config, None if resumed is not None else cfg.model.pretrained)


def read_init(cfg: TrainConfig) -> dict | None:
    """The --init checkpoint (``model.init``), or None."""
    if not cfg.model.init:
        return None
    ckpt = read_checkpoint(model_file(cfg.model.init))
    name = ckpt.get("model_name", "custom")
    if name != cfg.model.name:
        log.warning("--init %s holds a %s model: training %s (model.name %s is not used)",
                    cfg.model.init, name, name, cfg.model.name)
    return ckpt


def stored_pose(source: dict | None, kind: str) -> dict | None:
    """The pose config of ``source`` (an --init or resumed checkpoint) if it holds a pose net of ``kind``."""
    if source is None or "pose_state_dict" not in source:
        return None
    stored = stored_pose_config(source)
    return stored if stored["kind"] == kind else None


def build_pose_net(cfg: TrainConfig, source: dict | None) -> nn.Module:
    """The pose net of ``cfg.pose``; from ``source`` (an --init or resumed checkpoint) when it holds one
    of the same kind, else with ``pose.pretrained`` weights."""
    stored = stored_pose(source, cfg.pose.kind)
    if source is None or stored is None:
        net = create_pose_net(cfg.pose.kind, cfg.pose.backbone, cfg.pose.pretrained)
        if cfg.pose.forward_start:
            start_moving_forward(net, cfg.pose.forward_start)
    else:
        net = load_pose_net(source, "the starting checkpoint", cfg.pose.backbone)
    if cfg.pose.input_scale is not None:
        set_input_scale(net, cfg.pose.input_scale)
    return net


def check_resume(resumed: dict, path: Path, model_name: str, cfg: TrainConfig, init: dict | None = None) -> None:
    """Refuse to resume a run of another model or pose net, before anything in the run folder is written.

    A fine-tuning run (``init``, its --init checkpoint) takes its pose backbone from that checkpoint.
    """
    pose = stored_pose_config(resumed)
    was = (resumed.get("model_name", "custom"), pose.get("kind"), pose.get("backbone"))
    backbone = (stored_pose(init, cfg.pose.kind) or {}).get("backbone", cfg.pose.backbone)
    now = (model_name, cfg.pose.kind, backbone if cfg.pose.kind == "strengthened" else None)
    labels = ("model", "pose kind", "pose backbone")
    diffs = [f"{label} {a} -> {b}" for label, a, b in zip(labels, was, now) if a != b and a is not None]
    scale = resumed.get("train_config", {}).get("train", {}).get("pose_lr_scale", 1.0)
    if scale != cfg.train.pose_lr_scale:  # the optimiser's groups and their rates are the run's own
        diffs.append(f"train.pose_lr_scale {scale:g} -> {cfg.train.pose_lr_scale:g}")
    if diffs:
        raise ValueError(f"{path} holds a run that this config does not continue ({', '.join(diffs)}). {WAYS_OUT}")


def build_objective(cfg: TrainConfig, depth_cfg: DepthConfig, anchor_net: DepthNet | None = None) -> Objective:
    """Supervised (SILog on ground truth) or self-supervised; ``anchor_net``: the starting model to hold the
    depth to (``train.anchor_weight``), frozen here."""
    t = cfg.train
    if t.supervised:
        return SupervisedObjective(depth_cfg.min_depth, depth_cfg.max_depth, depth_cfg.canonical_fy)
    anchor = DepthAnchor(anchor_net) if t.anchor_weight and anchor_net is not None else None
    return SelfSupervisedObjective(cfg.data.frame_ids, t.smoothness, t.automask, t.depth_relative_translation,
                                   t.stereo_weight, t.photometric_scales, anchor, t.anchor_weight, t.anchor_gate,
                                   t.detach_translation_scale, (depth_cfg.height, depth_cfg.width),
                                   depth_cfg.canonical_fy, t.anchor_at_input_size)


@dataclass
class Optimisation:
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    per_batch: bool              # the scheduler steps per batch (OneCycle), else per epoch (StepLR)
    total_steps: int             # OneCycle's length (0 for StepLR)
    clip_grad: float | None      # gradient norm clip in effect


def build_optimisation(cfg: TrainConfig, depth_net: nn.Module, pose_net: nn.Module,
                       steps_per_epoch: int) -> Optimisation:
    """Self-supervised: Adam + StepLR (per epoch). Supervised: AdamW + OneCycle (per step), clip 0.1 unless
    ``train.clip_grad`` says otherwise."""
    t = cfg.train
    if t.supervised:
        opt: torch.optim.Optimizer = torch.optim.AdamW(depth_net.parameters(), lr=t.lr, weight_decay=t.weight_decay)
        total = t.max_steps or t.epochs * max(1, steps_per_epoch)
        onecycle = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=t.lr, total_steps=total)
        return Optimisation(opt, onecycle, True, total, 0.1 if t.clip_grad is None else t.clip_grad)
    opt = torch.optim.Adam(parameter_groups(depth_net, pose_net, t.lr, t.pose_lr_scale), lr=t.lr)
    return Optimisation(opt, torch.optim.lr_scheduler.StepLR(opt, t.step_size, t.gamma), False, 0, t.clip_grad)


def parameter_groups(depth_net: nn.Module, pose_net: nn.Module, lr: float, pose_scale: float) -> list[dict]:
    """One group for both networks (the layout of every checkpoint before ``train.pose_lr_scale``), or,
    with another pose scale, the depth net's group then the pose net's at ``lr * pose_scale`` (at 0 its
    weights stay as they are, and the trainer keeps its batch norm statistics too)."""
    depth, pose = list(depth_net.parameters()), list(pose_net.parameters())
    if pose_scale == 1.0:
        return [{"params": depth + pose}]
    return [{"params": depth}, {"params": pose, "lr": lr * pose_scale}]


@dataclass
class Scorer:
    """A checkpoint's depth and pose nets with the self-supervised objective, for evaluation and diagnosis."""
    depth_net: DepthNet
    pose_net: nn.Module
    objective: SelfSupervisedObjective
    device: torch.device


def scorer(checkpoint: str | Path, cfg: TrainConfig | None = None, device: str | None = None) -> Scorer:
    """The networks of ``checkpoint`` (it must hold a pose net), in eval mode, with the self-supervised
    objective of ``cfg`` (default: the defaults) made plain: auto-mask on, one scale, no anchor, no stereo."""
    ckpt = read_checkpoint(model_file(checkpoint))
    if "pose_state_dict" not in ckpt:
        raise ValueError(f"{checkpoint} holds no pose net, which the photometric error needs (a training run's "
                         "best.pt or last.pt, or the bundled model, hold one)")
    depth_cfg = DepthConfig.from_dict(ckpt["config"])
    depth_net = DepthNet(depth_cfg)
    depth_net.load_state_dict(ckpt["state_dict"])
    pose_net = load_pose_net(ckpt, str(checkpoint))
    cfg = cfg or TrainConfig()
    plain = replace(cfg.train, supervised=False, anchor_weight=0.0, anchor_gate=False, automask=True,
                    photometric_scales=1, stereo_weight=0.0)
    objective = build_objective(replace(cfg, train=plain), depth_cfg)
    assert isinstance(objective, SelfSupervisedObjective)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    return Scorer(depth_net.to(dev).eval(), pose_net.to(dev).eval(), objective, dev)


@torch.no_grad()
def photometric_scores(depth_net: nn.Module, pose_net: nn.Module, objective: Objective, loader: DataLoader,
                       device: torch.device, max_depth: float, show: bool = True) -> dict[str, float]:
    """The objective's mean figure over ``loader``'s batches under its own name (``photometric``, or ``silog``
    for supervised training); median-scaled abs_rel where they hold ground truth."""
    values, abs_rel, name = [], [], "photometric"
    for batch in tqdm(loader, desc="validation", leave=False, disable=not show, dynamic_ncols=True):
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        out = objective(depth_net, pose_net, batch)
        name, value = out.figure
        values.append(value.item())
        if "depth_gt" in batch:
            abs_rel.extend(_abs_rel(batch["depth_gt"], out.depth, max_depth))
    result = {name: float(np.mean(values))}
    if abs_rel:
        result["abs_rel"] = float(np.mean(abs_rel))
    return result


def _abs_rel(gt: torch.Tensor, pred: torch.Tensor, max_depth: float) -> list[float]:
    rows = []
    for g, p in zip(gt.cpu().numpy(), pred.cpu().numpy()):
        mask = gt_mask(g, max_depth)
        if mask.any():
            rows.append(evaluate_pair(g, p, mask, max_depth=max_depth)[0]["abs_rel"])
    return rows
