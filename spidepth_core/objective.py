"""The self-supervised objective: view synthesis from (-1, +1[, stereo]) with min reprojection."""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn as nn
import torch.nn.functional as F

from .camera_space import KITTI_FY, focal_factor
from .geometry import pooled_intrinsics, pose_to_matrix, warp
from .losses import PhotometricLoss, min_reprojection, scale_invariant_l1, silog_loss, smoothness


def relative_pose(pose_net: nn.Module, target: torch.Tensor, source: torch.Tensor, frame_id: int,
                  translation_scale: torch.Tensor | None = None) -> torch.Tensor:
    """T [B,4,4] taking target-camera points to the source camera; inputs in temporal order.

    ``translation_scale`` [B,1] multiplies the predicted translation (see SelfSupervisedObjective).
    """
    pair = torch.cat([source, target] if frame_id < 0 else [target, source], dim=1)
    axis_angle, translation = (t.float() for t in pose_net(pair))
    with full_precision(pair):
        if translation_scale is not None:
            translation = translation * translation_scale
        return pose_to_matrix(axis_angle, translation, invert=frame_id < 0)


def full_precision(like: torch.Tensor) -> torch.autocast:
    """Geometry and losses in float32 even inside a mixed-precision forward: pixel coordinates and
    rotations need more than bfloat16's (or float16's) few mantissa bits."""
    return torch.autocast(like.device.type, enabled=False)


@dataclass
class ObjectiveOutput:
    FIGURE: ClassVar[str] = "photometric"  # the validation figure's name (lower is better)

    loss: torch.Tensor
    photometric: torch.Tensor
    smoothness: torch.Tensor
    depth: torch.Tensor            # [B,1,H,W]
    warped: torch.Tensor           # [B,3,H,W] first source warped into the target
    automask: torch.Tensor         # [B,H,W] fraction of pixels kept
    anchor: torch.Tensor | None = None
    anchor_held: torch.Tensor | None = None  # [B,1,H,W] pixels the gated anchor held
    poses: list[torch.Tensor] = field(default_factory=list)  # [B,4,4] per temporal source (frame_ids[1:])

    @property
    def figure(self) -> tuple[str, torch.Tensor]:
        """The validation figure: its name and value (the photometric error)."""
        return self.FIGURE, self.photometric

    def scalars(self) -> dict[str, float]:
        out = {"loss": self.loss.item(), "photometric": self.photometric.item(),
               "smoothness": self.smoothness.item(), "automask_kept": self.automask.float().mean().item()}
        if self.anchor is not None:
            out["anchor"] = self.anchor.item()
        if self.anchor_held is not None:
            out["anchor_held"] = self.anchor_held.mean().item()
        return out


@dataclass
class SupervisedOutput:
    FIGURE: ClassVar[str] = "silog"

    loss: torch.Tensor
    depth: torch.Tensor

    @property
    def figure(self) -> tuple[str, torch.Tensor]:
        """The validation figure: its name and value (the SILog loss)."""
        return self.FIGURE, self.loss

    def scalars(self) -> dict[str, float]:
        return {"loss": self.loss.item(), "silog": self.loss.item()}


def _factor(K: torch.Tensor, height: int, canonical: float) -> torch.Tensor:
    """[B,1,1,1]: each sample's depth factor from the model's canonical camera to its own (camera_space)."""
    return focal_factor(K.float(), height, canonical).view(-1, 1, 1, 1)


class SupervisedObjective(nn.Module):
    """Metric fine-tuning: SILog against GT depth (pixels with min < gt < max)."""

    figure_name = SupervisedOutput.FIGURE  # what validation reports (lower is better)

    def __init__(self, min_depth: float = 1e-3, max_depth: float = 80.0, canonical_fy: float = KITTI_FY) -> None:
        super().__init__()
        self.min_depth, self.max_depth, self.canonical_fy = min_depth, max_depth, canonical_fy

    def forward(self, depth_net: nn.Module, pose_net: nn.Module, batch: dict) -> SupervisedOutput:
        if "depth_gt" not in batch:
            raise ValueError("supervised training needs ground-truth depth in the data (depth/ folders)")
        frames = batch["frames_aug"]
        depth = depth_net(frames[:, 0]).float() * _factor(batch["K"], frames.shape[-2], self.canonical_fy)
        gt = batch["depth_gt"]
        mask = (gt > self.min_depth) & (gt < self.max_depth)
        return SupervisedOutput(silog_loss(depth, gt, mask), depth)


class DepthAnchor(nn.Module):
    """A frozen copy of the starting depth net: fine-tuning is pulled toward its depth shape (scale free).

    A few recordings give monocular fine-tuning evidence only where they have texture and motion; elsewhere
    the photometric loss lets the depth drift. The anchor keeps what the starting model knew there.
    """

    def __init__(self, depth_net: nn.Module) -> None:
        super().__init__()
        self.teacher = copy.deepcopy(depth_net).eval().requires_grad_(False)

    def train(self, mode: bool = True) -> DepthAnchor:  # the teacher stays in eval mode (BatchNorm statistics)
        return self

    @torch.no_grad()
    def reference(self, image: torch.Tensor) -> torch.Tensor:
        """The starting model's depth [B,1,H,W]."""
        return self.teacher(image).float()


class SelfSupervisedObjective(nn.Module):
    """Photometric view synthesis loss.

    ``depth_relative_translation``: the pose net's translation is taken in units of the mean predicted
    depth. Depth and translation then share one scale from the first step, which keeps monocular
    training from a random or weak start out of the shrink-the-depth trap; it has no effect on inference
    and none on stereo (the stereo transform is metric).

    ``detach_translation_scale``: take that mean depth as a constant. Then, while the predicted
    translation is too short, the loss can lengthen it by shrinking the whole depth map, step after
    step, until the depth sits at its floor and no longer learns. Not detached, the loss does not
    change with the depth's overall scale at all, and only the pose net can fix the translation.

    ``stereo_weight``: with a stereo partner, also add its reprojection error on its own (not only
    inside the per-pixel minimum). Near, low-texture surfaces can be matched by a temporal neighbour
    at a wrong depth (one car panel onto itself), which wins the minimum and hides the stereo error
    that would correct them.

    ``scales``: the photometric terms are averaged over an image pyramid of this many levels (full,
    1/2, 1/4, ...: images, depth and intrinsics pooled together). A pixel whose depth is far off
    samples a flat region at full resolution and gets no gradient; coarser levels see past it.

    ``input_size`` (h, w): the networks' input size. Frames larger than it (a multiple, see
    ``train.photometric_resolution``) are pooled down for the networks, and the depth is upsampled to the
    frames for the photometric terms, which then see texture the networks' input has lost. Smoothness
    stays at the networks' size.

    ``anchor`` (fine-tuning): adds ``anchor_weight`` times its scale-invariant distance to the starting
    model's depth. With ``anchor_gate`` only at pixels where the starting model's depth reprojects the
    sources at least as well as the current one: it holds where the recordings say nothing new and lets go
    where they show the start was wrong. ``anchor_at_input_size``: both at the networks' input size, not
    at the photometric terms' (see _anchor).
    """

    figure_name = ObjectiveOutput.FIGURE

    def __init__(self, frame_ids=(0, -1, 1), smoothness_weight: float = 1e-3, automask: bool = True,
                 depth_relative_translation: bool = True, stereo_weight: float = 0.0,
                 scales: int = 1, anchor: DepthAnchor | None = None, anchor_weight: float = 0.0,
                 anchor_gate: bool = False, detach_translation_scale: bool = True,
                 input_size: tuple[int, int] | None = None, canonical_fy: float = KITTI_FY,
                 anchor_at_input_size: bool = True) -> None:
        super().__init__()
        self.input_size, self.canonical_fy = input_size, canonical_fy
        if scales < 1:
            raise ValueError(f"photometric scales must be >= 1, got {scales}")
        self.depth_relative_translation = depth_relative_translation
        self.detach_translation_scale = detach_translation_scale
        self.stereo_weight = stereo_weight
        self.scales = scales
        self.frame_ids = list(frame_ids)
        self.smoothness_weight = smoothness_weight
        self.automask = automask
        self.photometric = PhotometricLoss()
        self.anchor, self.anchor_weight, self.anchor_gate = anchor, anchor_weight, anchor_gate
        self.anchor_at_input_size = anchor_at_input_size

    def forward(self, depth_net: nn.Module, pose_net: nn.Module, batch: dict) -> ObjectiveOutput:
        frames, K = batch["frames"], batch["K"]
        target = frames[:, 0]
        aug = self._network_input(batch["frames_aug"])
        camera = _factor(K, target.shape[-2], self.canonical_fy)  # the canonical camera's depth -> this camera's
        net_depth = depth_net(aug[:, 0]).float() * camera
        depth = self._loss_size(net_depth, target)
        sources, transforms = [], []
        t_scale = None
        if self.depth_relative_translation:
            scale_of = net_depth.detach() if self.detach_translation_scale else net_depth
            t_scale = scale_of.mean(dim=(1, 2, 3))[:, None]
        for j, frame_id in enumerate(self.frame_ids[1:], start=1):
            sources.append(frames[:, j])
            transforms.append(relative_pose(pose_net, aug[:, 0], aug[:, j], frame_id, t_scale))  # float32
        if "stereo" in batch:
            sources.append(batch["stereo"])
            transforms.append(batch["stereo_T"])
        # the starting model is a network too: it runs with the others (in the forward's precision)
        start = self.anchor.reference(aug[:, 0]) * camera if self.anchor is not None else None
        with full_precision(target):
            return self._losses(target, sources, depth, net_depth, K, transforms, start, "stereo" in batch)

    def _losses(self, target: torch.Tensor, sources: list[torch.Tensor], depth: torch.Tensor,
                net_depth: torch.Tensor, K: torch.Tensor, transforms: list[torch.Tensor],
                start: torch.Tensor | None, has_stereo: bool) -> ObjectiveOutput:
        """The photometric, smoothness and anchor terms, once the networks have run."""
        stereo = has_stereo and self.stereo_weight > 0
        photo, warped, mask, reprojection = self._level_loss(target, sources, depth, K, transforms, stereo)
        images = [target, *sources]
        level_depth = depth
        for level in range(1, self.scales):  # each level pools the one before by 2
            images = [F.avg_pool2d(x, 2) for x in images]
            level_depth = F.avg_pool2d(level_depth, 2)
            photo = photo + self._level_loss(images[0], images[1:], level_depth, pooled_intrinsics(K, 2 ** level),
                                             transforms, stereo)[0]
        photo = photo / self.scales
        smooth = smoothness(net_depth, self._network_input(target))
        loss = photo + self.smoothness_weight * smooth
        anchor = weight = None
        if start is not None:
            anchor, weight = self._anchor(target, sources, depth, net_depth, start, K, transforms, reprojection)
            loss = loss + self.anchor_weight * anchor
        poses = transforms[:len(self.frame_ids) - 1]
        return ObjectiveOutput(loss, photo, smooth, net_depth, warped, mask, anchor, weight, poses)

    def _network_input(self, images: torch.Tensor) -> torch.Tensor:
        """[...,3,H,W] images pooled to the networks' input size (unchanged when they are that size)."""
        if self.input_size is None or tuple(images.shape[-2:]) == tuple(self.input_size):
            return images
        pooled = F.interpolate(images.flatten(0, -4), size=self.input_size, mode="area")
        return pooled.unflatten(0, images.shape[:-3])

    @staticmethod
    def _loss_size(depth: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """Depth [B,1,h,w] brought to the image's size for the photometric terms."""
        if depth.shape[-2:] == image.shape[-2:]:
            return depth
        return F.interpolate(depth, size=image.shape[-2:], mode="bilinear", align_corners=False)

    def _anchor(self, target: torch.Tensor, sources: list[torch.Tensor], depth: torch.Tensor,
                net_depth: torch.Tensor, start: torch.Tensor, K: torch.Tensor, transforms: list[torch.Tensor],
                reprojection: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The anchor term and its gate (None without ``anchor_gate``). With ``anchor_at_input_size``, where
        the photometric terms run on frames larger than the networks' input, both are taken at the input
        size: the frames pooled to it (a quarter of the pixels at twice the size) and the current depth's
        reprojection errors taken again there."""
        factor = target.shape[-2] // net_depth.shape[-2]
        if self.anchor_at_input_size and factor > 1:
            depth, reference = net_depth, start
            if self.anchor_gate:
                target, sources = self._network_input(target), [self._network_input(s) for s in sources]
                K = pooled_intrinsics(K, factor)
                with torch.no_grad():
                    reprojection = torch.cat([self.photometric(warp(src, depth.detach(), K, T), target)
                                              for src, T in zip(sources, transforms)], dim=1)
        else:
            reference = self._loss_size(start, target)
        if not self.anchor_gate:
            return scale_invariant_l1(depth, reference), None
        weight = self._anchor_gate(target, sources, depth.detach(), reference, K, transforms, reprojection)
        return scale_invariant_l1(depth, reference, weight), weight

    @torch.no_grad()
    def _anchor_gate(self, target: torch.Tensor, sources: list[torch.Tensor], depth: torch.Tensor,
                     reference: torch.Tensor, K: torch.Tensor, transforms: list[torch.Tensor],
                     reprojection: torch.Tensor) -> torch.Tensor:
        """1 where the starting model's depth (brought to this depth's scale) reprojects the sources at least
        as well as this depth does (``reprojection`` [B,S,H,W], its per-source errors), else 0: [B,1,H,W].
        The anchor then lets go where the photometric evidence has moved past the starting model, and
        holds everywhere else."""
        scale = (torch.log(depth) - torch.log(reference)).mean(dim=(1, 2, 3), keepdim=True).exp()
        start = torch.cat([self.photometric(warp(src, reference * scale, K, T), target)
                           for src, T in zip(sources, transforms)], dim=1)
        return (start.min(dim=1, keepdim=True)[0] <= reprojection.min(dim=1, keepdim=True)[0]).float()

    def _level_loss(self, target: torch.Tensor, sources: list[torch.Tensor], depth: torch.Tensor,
                    K: torch.Tensor, transforms: list[torch.Tensor], stereo: bool
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Min-reprojection error at one resolution (plus the stereo term): (loss, first warp, mask, the
        per-source reprojection errors [B,S,H,W])."""
        warped = [warp(src, depth, K, T) for src, T in zip(sources, transforms)]
        reprojection = torch.cat([self.photometric(w, target) for w in warped], dim=1)
        identity = None
        if self.automask:
            identity = torch.cat([self.photometric(src, target) for src in sources], dim=1)
        loss_map, mask = min_reprojection(reprojection, identity)
        photo = loss_map.mean()
        if stereo:  # the stereo partner is appended last in forward
            photo = photo + self.stereo_weight * reprojection[:, -1].mean()
        return photo, warped[0], mask, reprojection
