"""DepthNet = UNet + SQL head. Tensor in, tensor out (exportable)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

import torch
import torch.nn as nn
import torch.nn.functional as F

from .pretrained import InputNorm, WeightSource
from .sql_head import SQLHead
from .unet import UNet


@dataclass
class DepthConfig:
    """Everything needed to rebuild a DepthNet and preprocess its input."""

    encoder: str = "convnext_large"
    decoder_widths: tuple[int, ...] = (1024, 512, 256, 128)
    out_indices: tuple[int, ...] | None = None
    channels: int = 32
    patch_size: int = 32
    num_queries: int = 64
    num_bins: int = 64
    num_heads: int = 4
    ffn_dim: int = 1024
    dropout: float = 0.1
    min_depth: float = 1e-3
    max_depth: float = 80.0
    height: int = 320
    width: int = 1024
    input_mean: tuple[float, ...] | None = None  # normalisation of the encoder's pretrained weights;
    input_std: tuple[float, ...] | None = None   # None: raw RGB in [0, 1] (random init, authors' ConvNeXt)
    canonical_fy: float = 1.92  # fy / image height of the camera the depth refers to (see camera_space)

    @classmethod
    def from_dict(cls, d: dict) -> "DepthConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown DepthNet option(s): {sorted(unknown)}; known: {sorted(known)}")
        d = dict(d)
        for key in ("decoder_widths", "out_indices", "input_mean", "input_std"):
            if d.get(key) is not None:
                cast = float if key.startswith("input_") else int
                d[key] = tuple(cast(v) for v in d[key])
        return cls(**d)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["decoder_widths"] = list(self.decoder_widths)
        for key in ("out_indices", "input_mean", "input_std"):
            value = getattr(self, key)
            d[key] = list(value) if value is not None else None
        return d


class DepthNet(nn.Module):
    """image [B,3,H,W] RGB in [0,1] -> depth [B,1,H,W] in metres (scale-ambiguous).

    ``pretrained`` loads the encoder's ImageNet weights (see ``pretrained.py``) and records their input
    normalisation in ``config``; the network applies it itself, so exported graphs take raw [0, 1] RGB.
    """

    def __init__(self, config: DepthConfig, pretrained: WeightSource = None) -> None:
        super().__init__()
        self.unet = UNet(config.encoder, config.decoder_widths, config.channels, pretrained, config.out_indices)
        norm = self.unet.normalisation
        if norm is not None:
            config = replace(config, input_mean=norm.mean, input_std=norm.std)
        self.config = config
        self.norm = InputNorm(config.input_mean, config.input_std)
        self.head = SQLHead(config.channels, config.channels, config.patch_size, config.num_queries,
                            config.num_bins, config.num_heads, config.ffn_dim, dropout=config.dropout,
                            min_depth=config.min_depth, max_depth=config.max_depth)

    def forward_low_res(self, image: torch.Tensor) -> torch.Tensor:
        """image [B,3,H,W] -> depth at S resolution [B,1,h,w]."""
        return self.head(self.unet(self.norm(image)))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        depth = self.forward_low_res(image)
        return F.interpolate(depth, size=image.shape[-2:], mode="bilinear", align_corners=False)

    def depth_and_uncertainty(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """image -> (depth, uncertainty), both [B,1,H,W] in metres; the uncertainty is the standard
        deviation of each pixel's depth-bin mixture."""
        both = torch.cat(self.head.depth_and_spread(self.unet(self.norm(image))), dim=1)
        both = F.interpolate(both, size=image.shape[-2:], mode="bilinear", align_corners=False)
        return both[:, :1], both[:, 1:]
