import math

import numpy as np
import torch

from spidepth_core.geometry import axis_angle_to_matrix, backproject, pooled_intrinsics, pose_to_matrix, project, warp
from spidepth_core.pinhole import intrinsics_matrix, resize_intrinsics, scale_intrinsics


def _K(b=1):
    return torch.tensor(intrinsics_matrix(100.0, 110.0, 47.5, 31.5), dtype=torch.float32).expand(b, 3, 3)


def test_backproject_formula_and_project_roundtrip():
    depth = torch.rand(2, 1, 64, 96) * 10 + 1
    K = _K(2)
    points = backproject(depth, K)
    u, v = 17, 40
    i = v * 96 + u
    z = depth[0, 0, v, u]
    assert torch.allclose(points[0, :, i], torch.stack([(u - 47.5) * z / 100.0, (v - 31.5) * z / 110.0, z]),
                          atol=1e-4)
    pixels = project(points, K)
    grid_u = torch.arange(96.0).repeat(64)
    assert torch.allclose(pixels[1, 0], grid_u, atol=1e-3)


def test_rotation_known_and_orthonormal():
    R = axis_angle_to_matrix(torch.tensor([[0.0, 0.0, math.pi / 2]]))[0]
    assert torch.allclose(R @ torch.tensor([1.0, 0, 0]), torch.tensor([0.0, 1, 0]), atol=1e-6)
    aa = torch.randn(5, 3)
    Rs = axis_angle_to_matrix(aa)
    assert torch.allclose(Rs @ Rs.transpose(1, 2), torch.eye(3).expand(5, 3, 3), atol=1e-5)
    assert torch.allclose(axis_angle_to_matrix(torch.zeros(1, 3)), torch.eye(3)[None])


def test_pose_invert_is_inverse():
    aa, t = torch.randn(4, 3) * 0.3, torch.randn(4, 3)
    T, Tinv = pose_to_matrix(aa, t), pose_to_matrix(aa, t, invert=True)
    assert torch.allclose(T @ Tinv, torch.eye(4).expand(4, 4, 4), atol=1e-5)


def test_transform_roundtrip_through_projection():
    depth = torch.full((1, 1, 32, 48), 5.0)
    K = _K()
    T = pose_to_matrix(torch.tensor([[0.01, -0.02, 0.0]]), torch.tensor([[0.1, 0.0, 0.3]]))
    pts = backproject(depth, K)
    moved = T[:, :3, :3] @ pts + T[:, :3, 3:]
    back = torch.linalg.inv(T)
    restored = back[:, :3, :3] @ moved + back[:, :3, 3:]
    assert torch.allclose(restored, pts, atol=1e-4)


def test_scale_intrinsics_like_image_proc():
    K = intrinsics_matrix(700.0, 710.0, 640.0, 360.0)
    half = scale_intrinsics(K, 0.5, 0.25)
    assert np.allclose(half, [[350, 0, 320], [0, 177.5, 90], [0, 0, 1]])
    assert np.allclose(resize_intrinsics(K, (720, 1280), (192, 640)), scale_intrinsics(K, 0.5, 192 / 720))
    assert np.allclose(scale_intrinsics(torch.tensor(K), 2, 2).numpy(), scale_intrinsics(K, 2, 2))


def test_warp_identity_returns_image():
    img = torch.rand(1, 3, 24, 40)
    out = warp(img, torch.full((1, 1, 24, 40), 3.0), _K(), torch.eye(4)[None])
    assert torch.allclose(out, img, atol=1e-4)


def test_pooled_intrinsics_put_a_point_at_the_centre_of_its_pooled_pixels():
    """Full-resolution pixels 4..7 pool into pixel 1 (factor 4): their centre u = 5.5 maps to 1.0."""
    K = _K()
    fx, fy, cx, cy = K[0, 0, 0], K[0, 1, 1], K[0, 0, 2], K[0, 1, 2]
    z = 3.0
    point = torch.tensor([[(5.5 - cx) * z / fx], [(9.5 - cy) * z / fy], [z]])[None]
    u, v = project(point, pooled_intrinsics(K, 4))[0, :, 0].tolist()
    assert math.isclose(u, 1.0, abs_tol=1e-4) and math.isclose(v, 2.0, abs_tol=1e-4)
