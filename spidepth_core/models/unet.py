"""UNet: a timm ``features_only`` encoder and a skip-connected decoder.

Output is the feature map S with ``out_channels`` channels at stride
``encoder_stride / 2**extra_upsamples`` (H/2 for the paper's configs).
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .pretrained import Normalisation, WeightSource, create_backbone


class _ConvBnRelu(nn.Sequential):
    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(out_ch)
        self.act = nn.ReLU(inplace=True)


class _DecoderBlock(nn.Module):
    """Resize to the skip (or x2 without one), concat the skip, two conv-BN-ReLU."""

    def __init__(self, in_ch: int, skip_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv1 = _ConvBnRelu(in_ch + skip_ch, out_ch)
        self.conv2 = _ConvBnRelu(out_ch, out_ch)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        if skip is None:
            x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        else:
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=True)
            x = torch.cat([x, skip], dim=1)
        return self.conv2(self.conv1(x))


class UNetDecoder(nn.Module):
    """Deepest feature first; block i takes skip i (if any), then a 1x1 conv."""

    def __init__(self, encoder_channels: Sequence[int], widths: Sequence[int], out_channels: int) -> None:
        super().__init__()
        deep_first = list(encoder_channels)[::-1]
        skips = deep_first[1:] + [0] * max(0, len(widths) - len(deep_first) + 1)
        ins = [deep_first[0]] + list(widths[:-1])
        self.num_skips = len(deep_first) - 1
        self.blocks = nn.ModuleList(_DecoderBlock(i, s, o) for i, s, o in zip(ins, skips, widths))
        self.final_conv = nn.Conv2d(widths[-1], out_channels, kernel_size=1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        deep_first = features[::-1]
        x = deep_first[0]
        for i, block in enumerate(self.blocks):
            skip = deep_first[i + 1] if i < self.num_skips else None
            x = block(x, skip)
        return self.final_conv(x)


def build_encoder(name: str, pretrained: WeightSource = None, out_indices: Sequence[int] | None = None,
                  in_chans: int = 3) -> tuple[nn.Module, Normalisation | None]:
    """A timm ``features_only`` encoder with weights from ``pretrained`` (see ``pretrained.py``)."""
    kwargs: dict = {"features_only": True, "in_chans": in_chans}
    if out_indices is not None:
        kwargs["out_indices"] = tuple(out_indices)
    return create_backbone(name, pretrained, **kwargs)


class UNet(nn.Module):
    """image [B,3,H,W] in [0,1] -> S [B,C,h,w]."""

    def __init__(self, encoder: str, widths: Sequence[int], out_channels: int,
                 pretrained: WeightSource = None, out_indices: Sequence[int] | None = None) -> None:
        super().__init__()
        self.encoder, self.normalisation = build_encoder(encoder, pretrained, out_indices)
        info: Any = self.encoder.feature_info  # timm's FeatureInfo
        channels = info.channels()
        self.decoder = UNetDecoder(channels, widths, out_channels)
        # The decoder upsamples x2 once per block without a skip.
        extra = len(widths) - (len(channels) - 1)
        self.stride = info.reduction()[0] // (2 ** extra) if extra >= 0 else None

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(image))
