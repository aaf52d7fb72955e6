"""Camera geometry of training in PyTorch: back-projection, projection, poses, warping (pinhole, optical
frame: x right, y down, z forward). The intrinsics themselves, in NumPy, are in ``pinhole``."""
from __future__ import annotations

import torch

from .pinhole import scale_intrinsics


def pixel_grid(height: int, width: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Homogeneous pixel coordinates [3, H*W] (u, v, 1) in raster order."""
    v, u = torch.meshgrid(torch.arange(height, device=device, dtype=dtype),
                          torch.arange(width, device=device, dtype=dtype), indexing="ij")
    return torch.stack([u.reshape(-1), v.reshape(-1), torch.ones_like(u).reshape(-1)])


def backproject(depth: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """depth [B,1,H,W] (z, metres), K [B,3,3] -> points [B,3,H*W]: X=(u-cx)Z/fx, Y=(v-cy)Z/fy."""
    b, _, h, w = depth.shape
    rays = torch.linalg.inv(K) @ pixel_grid(h, w, depth.device, depth.dtype)
    return rays * depth.reshape(b, 1, h * w)


def project(points: torch.Tensor, K: torch.Tensor, T: torch.Tensor | None = None,
            eps: float = 1e-7) -> torch.Tensor:
    """points [B,3,N] -> pixels [B,2,N] (u, v) after the optional rigid transform T [B,4,4]."""
    if T is not None:
        points = T[:, :3, :3] @ points + T[:, :3, 3:]
    cam = K @ points
    return cam[:, :2] / (cam[:, 2:3] + eps)


def pixels_to_grid(pixels: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """pixels [B,2,H*W] -> grid_sample grid [B,H,W,2] in [-1,1] (align_corners=False)."""
    b = pixels.shape[0]
    scale = pixels.new_tensor([2.0 / width, 2.0 / height]).view(1, 2, 1)
    grid = (pixels + 0.5) * scale - 1.0
    return grid.view(b, 2, height, width).permute(0, 2, 3, 1)


def axis_angle_to_matrix(axis_angle: torch.Tensor) -> torch.Tensor:
    """Rodrigues: axis-angle [B,3] -> rotation [B,3,3]."""
    angle = axis_angle.norm(dim=1, keepdim=True).clamp_min(1e-12)
    axis = axis_angle / angle
    x, y, z = axis.unbind(1)
    zero = torch.zeros_like(x)
    skew = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=1).view(-1, 3, 3)
    s, c = torch.sin(angle)[..., None], torch.cos(angle)[..., None]
    eye = torch.eye(3, device=axis_angle.device, dtype=axis_angle.dtype).expand_as(skew)
    return eye + s * skew + (1 - c) * (skew @ skew)


def pose_to_matrix(axis_angle: torch.Tensor, translation: torch.Tensor, invert: bool = False) -> torch.Tensor:
    """[R|t] as a [B,4,4] matrix; ``invert`` gives [R^T | -R^T t]."""
    R = axis_angle_to_matrix(axis_angle)
    t = translation.unsqueeze(-1)
    if invert:
        R = R.transpose(1, 2)
        t = -R @ t
    T = torch.eye(4, device=R.device, dtype=R.dtype).repeat(R.shape[0], 1, 1)
    T[:, :3, :3] = R
    T[:, :3, 3:] = t
    return T


def pooled_intrinsics(K: torch.Tensor, factor: int) -> torch.Tensor:
    """K [...,3,3] for an image average-pooled by ``factor`` (pixel centres at integer coordinates)."""
    out = scale_intrinsics(K, 1 / factor, 1 / factor)
    out[..., :2, 2] -= 0.5 * (factor - 1) / factor
    return out


def warp(source: torch.Tensor, depth: torch.Tensor, K: torch.Tensor, T: torch.Tensor) -> torch.Tensor:
    """Sample ``source`` [B,C,H,W] at the pixels where target points (depth [B,1,H,W]) land in it.

    T [B,4,4] maps target-camera points into the source camera. Border padding.
    """
    _, _, h, w = depth.shape
    pixels = project(backproject(depth, K), K, T)
    grid = pixels_to_grid(pixels, h, w)
    return torch.nn.functional.grid_sample(source, grid, mode="bilinear", padding_mode="border",
                                           align_corners=False)
