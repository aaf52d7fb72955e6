"""Self-supervised losses: SSIM, photometric error, min reprojection with auto-masking, smoothness, SILog."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

SSIM_WEIGHT = 0.85


class SSIM(nn.Module):
    """Per-pixel (1 - SSIM) / 2 in [0, 1] over a 7x7 window with reflection padding.

    The window means are one depthwise convolution with a uniform kernel over the five statistics stacked
    (on CPU about 3x faster than average pooling, same result), always in float32: the variances are
    differences of close numbers, too coarse in float16 under autocast.
    """

    def __init__(self, window: int = 7) -> None:
        super().__init__()
        self.window = window
        self.pad = nn.ReflectionPad2d(window // 2)
        self.c1, self.c2 = 0.01 ** 2, 0.03 ** 2

    def window_mean(self, z: torch.Tensor) -> torch.Tensor:
        """Mean over each window of the (padded) input, per channel: [B,C,H+w-1,W+w-1] -> [B,C,H,W]."""
        c, w = z.shape[1], self.window
        kernel = torch.full((c, 1, w, w), 1.0 / (w * w), dtype=torch.float32, device=z.device)
        with torch.autocast(z.device.type, enabled=False):
            return F.conv2d(z.float(), kernel, groups=c)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x, y = self.pad(x.float()), self.pad(y.float())
        stats = self.window_mean(torch.cat([x, y, x * x, y * y, x * y], 1))
        mu_x, mu_y, xx, yy, xy = stats.split(x.shape[1], 1)
        var_x, var_y, cov = xx - mu_x ** 2, yy - mu_y ** 2, xy - mu_x * mu_y
        num = (2 * mu_x * mu_y + self.c1) * (2 * cov + self.c2)
        den = (mu_x ** 2 + mu_y ** 2 + self.c1) * (var_x + var_y + self.c2)
        return torch.clamp((1 - num / den) / 2, 0, 1)


class PhotometricLoss(nn.Module):
    """0.85 * SSIM term + 0.15 * L1, averaged over channels: [B,3,H,W] x2 -> [B,1,H,W]."""

    def __init__(self, ssim_weight: float = SSIM_WEIGHT) -> None:
        super().__init__()
        self.ssim = SSIM()
        self.ssim_weight = ssim_weight

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        l1 = (pred - target).abs().mean(1, keepdim=True)
        ssim = self.ssim(pred, target).mean(1, keepdim=True)
        return self.ssim_weight * ssim + (1 - self.ssim_weight) * l1


def min_reprojection(reprojection: torch.Tensor, identity: torch.Tensor | None = None,
                     noise: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel minimum over sources, with optional auto-masking.

    reprojection, identity: [B,S,H,W] errors of warped / unwarped sources.
    Returns (loss map [B,H,W], mask [B,H,W] true where a warped source won).
    """
    if identity is None:
        loss, _ = reprojection.min(dim=1)
        return loss, torch.ones_like(loss, dtype=torch.bool)
    identity = identity + noise * torch.randn_like(identity)
    loss, idx = torch.cat([identity, reprojection], dim=1).min(dim=1)
    return loss, idx >= identity.shape[1]


def smoothness(depth: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """Edge-aware smoothness of mean-normalised depth [B,1,H,W] given image [B,3,H,W]."""
    d = depth / (depth.mean(dim=(2, 3), keepdim=True) + 1e-7)
    dx = (d[..., :, :-1] - d[..., :, 1:]).abs()
    dy = (d[..., :-1, :] - d[..., 1:, :]).abs()
    ix = (image[..., :, :-1] - image[..., :, 1:]).abs().mean(1, keepdim=True)
    iy = (image[..., :-1, :] - image[..., 1:, :]).abs().mean(1, keepdim=True)
    return (dx * torch.exp(-ix)).mean() + (dy * torch.exp(-iy)).mean()


def silog_loss(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor, variance_focus: float = 0.85,
               scale: float = 10.0) -> torch.Tensor:
    """10 * sqrt(Var(g) + 0.15 mean(g)^2) with g = log pred - log gt over ``mask``."""
    g = torch.log(pred[mask].clamp_min(1e-6)) - torch.log(gt[mask])
    return scale * torch.sqrt((g ** 2).mean() - variance_focus * g.mean() ** 2)


def scale_invariant_l1(depth: torch.Tensor, reference: torch.Tensor, weight: torch.Tensor | None = None
                       ) -> torch.Tensor:
    """Mean |r - mean(r)| of r = log depth - log reference, per image [B,1,H,W]: zero when the two differ
    by one scale factor, so it pulls on the shape of the depth map and leaves its scale free.
    ``weight`` [B,1,H,W] weighs each pixel's term (the mean stays over all pixels)."""
    r = torch.log(depth.clamp_min(1e-6)) - torch.log(reference.clamp_min(1e-6))
    distance = (r - r.mean(dim=(1, 2, 3), keepdim=True)).abs()
    return (distance if weight is None else distance * weight).mean()
