"""Pose networks: frame pair [B,6,H,W] -> (axis-angle [B,3], translation [B,3])."""
from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .pretrained import InputNorm, WeightSource
from .unet import build_encoder


def _conv_relu(in_ch: int, out_ch: int, k: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, k, stride, k // 2), nn.ReLU(inplace=True))


OUTPUT_SCALE = 0.01  # the last conv's outputs are this many radians / translation units


def _split(out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """[B,6,h,w] -> spatial mean x OUTPUT_SCALE, split into rotation and translation."""
    out = OUTPUT_SCALE * out.mean(dim=(2, 3))
    return out[:, :3], out[:, 3:]


def start_moving_forward(pose_net: nn.Module, translation: float) -> None:
    """Shift a fresh pose net's output towards the camera moving forward (+z) by ``translation`` per frame.

    From a random start a monocular run can settle on sideways motion plus a yaw that the depth then
    bends to fit; starting from forward motion, the first depth gradients point the right way. The
    bias is learned like any other weight. For a pair in temporal order the target-to-source translation
    of a camera moving forward is -z.
    """
    head = pose_net.head
    if not isinstance(head, nn.Conv2d) or head.bias is None:
        raise TypeError(f"{type(pose_net).__name__} has no biased output conv to start from")
    with torch.no_grad():
        head.bias[5] -= translation / OUTPUT_SCALE


def set_input_scale(pose_net: nn.Module, scale: float) -> None:
    """The pose net sees the frame pair resized by ``scale`` (area-averaged; 1: as given). Its motion is
    the same at any size, and at 0.5 it costs about a quarter. Kept in ``config``, so checkpoints keep it."""
    if not 0 < scale <= 1:
        raise ValueError(f"pose input scale must be in (0, 1], got {scale}")
    config: Any = pose_net.config
    config["input_scale"] = float(scale)


def _at_input_scale(pair: torch.Tensor, config: dict) -> torch.Tensor:
    scale = config.get("input_scale", 1.0)
    if scale == 1.0:
        return pair
    size = (max(1, round(pair.shape[-2] * scale)), max(1, round(pair.shape[-1] * scale)))
    return F.interpolate(pair, size=size, mode="area")


class StrengthenedPoseNet(nn.Module):
    """SPIdepth's pose net: a (pretrained) timm backbone with 6-channel input + conv head.

    With ``pretrained`` weights timm adapts the RGB stem to the frame pair, and each frame is normalised
    as the weights expect (``input_mean`` / ``input_std``, kept in checkpoints' ``pose_config``).
    """

    def __init__(self, backbone: str = "resnet18", pretrained: WeightSource = None,
                 input_mean: Sequence[float] | None = None, input_std: Sequence[float] | None = None) -> None:
        super().__init__()
        self.encoder, norm = build_encoder(backbone, pretrained, in_chans=6)
        if norm is not None:
            input_mean, input_std = norm.mean, norm.std
        mean = None if input_mean is None else [float(v) for v in input_mean]
        std = None if input_std is None else [float(v) for v in input_std]
        self.config = {"kind": "strengthened", "backbone": backbone, "input_mean": mean, "input_std": std}
        self.norm = InputNorm(mean, std, groups=2)
        info: Any = self.encoder.feature_info  # timm's FeatureInfo
        deepest = info.channels()[-1]
        self.squeeze = _conv_relu(deepest, 256, 1)
        self.decoder = nn.Sequential(_conv_relu(256, 256, 3), _conv_relu(256, 256, 3), nn.Conv2d(256, 6, 1))

    @property
    def head(self) -> nn.Module:
        return self.decoder[-1]

    def forward(self, pair: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pair = _at_input_scale(pair, self.config)
        return _split(self.decoder(self.squeeze(self.encoder(self.norm(pair))[-1])))


class StandardPoseNet(nn.Module):
    """SQLdepth's baseline: seven stride-2 conv-ReLU layers, randomly initialised."""

    def __init__(self) -> None:
        super().__init__()
        chans = [6, 16, 32, 64, 128, 256, 256, 256]
        kernels = [7, 5, 3, 3, 3, 3, 3]
        self.convs = nn.Sequential(*[_conv_relu(chans[i], chans[i + 1], kernels[i], 2) for i in range(7)])
        self.pose_conv = nn.Conv2d(256, 6, 1)
        self.config = {"kind": "standard"}

    @property
    def head(self) -> nn.Module:
        return self.pose_conv

    def forward(self, pair: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return _split(self.pose_conv(self.convs(_at_input_scale(pair, self.config))))


def create_pose_net(kind: str = "strengthened", backbone: str = "resnet18", pretrained: WeightSource = None,
                    input_mean: Sequence[float] | None = None, input_std: Sequence[float] | None = None) -> nn.Module:
    """``kind``: 'strengthened' (timm backbone, weights from ``pretrained``) or 'standard' (random)."""
    if kind == "strengthened":
        return StrengthenedPoseNet(backbone, pretrained, input_mean, input_std)
    if kind == "standard":
        return StandardPoseNet()
    raise ValueError(f"unknown pose net {kind!r}; choose 'strengthened' or 'standard'")
