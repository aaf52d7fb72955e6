import numpy as np
import pytest
import torch
import torch.nn.functional as F

from spidepth_core.geometry import warp
from spidepth_core.losses import SSIM, PhotometricLoss, min_reprojection, scale_invariant_l1, silog_loss, smoothness
from spidepth_core.objective import DepthAnchor
from spidepth_core.pinhole import kitti_intrinsics
from spidepth_core.synth import StreetWorld, camera_path, render


def test_identical_images_give_zero():
    img = torch.rand(2, 3, 32, 48)
    assert PhotometricLoss()(img, img).abs().max() < 1e-6
    assert SSIM()(img, img).max() < 1e-6


def test_ssim_is_the_statistic_of_each_reflection_padded_window():
    gen = torch.Generator().manual_seed(0)
    x, y = torch.rand(1, 2, 12, 15, generator=gen), torch.rand(1, 2, 12, 15, generator=gen)
    got = SSIM()(x, y)
    px, py = (np.pad(t[0].double().numpy(), ((0, 0), (3, 3), (3, 3)), mode="reflect") for t in (x, y))
    for c, r, col in [(0, 0, 0), (1, 5, 7), (0, 11, 14), (1, 2, 13)]:
        a, b = px[c, r:r + 7, col:col + 7], py[c, r:r + 7, col:col + 7]
        cov = (a * b).mean() - a.mean() * b.mean()
        num = (2 * a.mean() * b.mean() + 1e-4) * (2 * cov + 9e-4)
        den = (a.mean() ** 2 + b.mean() ** 2 + 1e-4) * (a.var() + b.var() + 9e-4)
        assert got[0, c, r, col].item() == pytest.approx(np.clip((1 - num / den) / 2, 0, 1), abs=1e-6)


def test_ssim_of_half_precision_images_is_computed_in_float32():
    x, y = torch.rand(1, 3, 20, 24), torch.rand(1, 3, 20, 24)
    half = SSIM()(x.half(), y.half())
    assert half.dtype == torch.float32
    assert (half - SSIM()(x.half().float(), y.half().float())).abs().max() < 1e-6


def test_different_images_give_positive_loss():
    a, b = torch.rand(1, 3, 32, 48), torch.rand(1, 3, 32, 48)
    loss = PhotometricLoss()(a, b)
    assert loss.shape == (1, 1, 32, 48) and loss.mean() > 0.1


@pytest.fixture(scope="module")
def two_views():
    return _render_views(96, 320)


def _render_views(h: int, w: int):
    world, poses, K = StreetWorld(5), camera_path(5, 3), kitti_intrinsics(h, w)
    (img0, depth0), (img1, _) = render(world, poses[0], K, h, w), render(world, poses[1], K, h, w)
    def to_t(im):
        return torch.from_numpy(im).permute(2, 0, 1)[None].float() / 255

    depth = torch.from_numpy(np.where(depth0 > 0, depth0, 1e4))[None, None].float()
    T = torch.from_numpy(np.linalg.inv(poses[1]) @ poses[0]).float()[None]
    return to_t(img0), to_t(img1), depth, torch.from_numpy(K).float()[None], T


def test_true_depth_and_pose_reconstruct_the_target(two_views):
    target, source, depth, K, T = two_views
    loss = PhotometricLoss()
    def err(img):
        return loss(img, target)[..., 5:-5, 5:-5].median()

    warped_err = err(warp(source, depth, K, T))
    # What is left is texture resampling at 96x320.
    assert warped_err < 0.05
    assert warped_err < 0.2 * err(source)
    assert warped_err < 0.5 * err(warp(source, depth * 0.8, K, T))


def test_wrong_depth_reconstructs_worse(two_views):
    target, source, depth, K, T = two_views
    loss = PhotometricLoss()
    right = loss(warp(source, depth, K, T), target).mean()
    wrong = loss(warp(source, depth * 0.5, K, T), target).mean()
    assert wrong > 1.5 * right


def test_automask_masks_a_static_scene():
    target = torch.rand(1, 3, 32, 48)
    identity = PhotometricLoss()(target, target)           # static camera: source == target
    reprojection = identity + 0.05                        # any warp does worse
    loss, mask = min_reprojection(reprojection, identity)
    assert mask.float().mean() == 0.0
    assert loss.max() < 1e-3
    loss_nomask, mask_all = min_reprojection(reprojection)
    assert mask_all.all() and torch.allclose(loss_nomask, reprojection[:, 0])


def test_min_over_sources_picks_the_smaller():
    a, b = torch.full((1, 1, 4, 4), 0.3), torch.full((1, 1, 4, 4), 0.1)
    loss, _ = min_reprojection(torch.cat([a, b], 1))
    assert torch.allclose(loss, torch.full((1, 4, 4), 0.1))


def test_smoothness():
    img = torch.rand(1, 3, 16, 16)
    assert smoothness(torch.full((1, 1, 16, 16), 7.0), img) == 0
    ramp = torch.linspace(1, 2, 16).view(1, 1, 1, 16).expand(1, 1, 16, 16)
    assert smoothness(ramp, img) > 0
    # Mean-normalised: scaling the depth does not change it.
    assert torch.isclose(smoothness(ramp, img), smoothness(ramp * 10, img))
    # Image edges reduce the penalty.
    edges = torch.zeros(1, 3, 16, 16)
    edges[..., ::2] = 1
    assert smoothness(ramp, edges) < smoothness(ramp, torch.zeros(1, 3, 16, 16))


def test_silog():
    gt = torch.rand(1, 1, 8, 8) * 10 + 1
    mask = gt > 0
    assert silog_loss(gt, gt, mask) < 1e-3
    assert silog_loss(gt * 2, gt, mask) > 1.0


class _FixedDepth(torch.nn.Module):
    def __init__(self, depth: torch.Tensor) -> None:
        super().__init__()
        self.depth = torch.nn.Parameter(depth.clone())

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.depth.expand(image.shape[0], -1, -1, -1)


class _StillPose(torch.nn.Module):
    def forward(self, pair: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        zeros = pair.new_zeros(pair.shape[0], 3)
        return zeros, zeros


class _ForwardPose(torch.nn.Module):
    """Moves forward 1% of the mean depth per frame: shorter than the true motion of ``two_views``."""

    def forward(self, pair: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        translation = pair.new_zeros(pair.shape[0], 3)
        translation[:, 2] = -0.01
        return pair.new_zeros(pair.shape[0], 3), translation


@pytest.mark.parametrize("detach", [True, False])
def test_detached_translation_scale_is_what_lets_the_loss_shrink_the_whole_depth(two_views, detach):
    """With translation in units of the mean depth, scaling the depth scales the motion too, so the
    photometric loss cannot change with the depth's overall scale; a detached mean lets it."""
    from spidepth_core.objective import SelfSupervisedObjective
    target, source, depth, K, _ = two_views
    batch = {"frames": torch.stack([target, source], 1), "K": K}
    batch["frames_aug"] = batch["frames"]
    net = _FixedDepth(depth.clamp(max=80.0))
    objective = SelfSupervisedObjective(frame_ids=(0, 1), smoothness_weight=0.0, automask=False,
                                        detach_translation_scale=detach)
    out = objective(net, _ForwardPose(), batch)
    out.loss.backward()
    along_scale = (net.depth.grad * net.depth).sum().item()  # d loss / d s of s * depth, at s = 1
    overall = net.depth.grad.abs().mul(net.depth).sum().item()
    if detach:  # the motion is too short: a smaller depth map lowers the loss
        assert along_scale > 0.05 * overall
    else:
        assert abs(along_scale) < 1e-3 * overall


def _stereo_partner(target: torch.Tensor, depth: torch.Tensor, K: torch.Tensor):
    """Roughly the right camera's view (0.54 m baseline) and the transform into it."""
    partner_T = torch.eye(4)[None]
    partner_T[0, 0, 3] = -0.54
    return warp(target, depth, K, torch.linalg.inv(partner_T)), partner_T


def test_stereo_weight_lets_stereo_correct_what_a_temporal_match_hides(two_views):
    """Temporal neighbours equal to the target (a standstill) match any depth perfectly, so they win
    the per-pixel minimum and the stereo error gives the depth no gradient; stereo_weight adds it back."""
    from spidepth_core.objective import SelfSupervisedObjective
    target, _, depth, K, _ = two_views
    partner, partner_T = _stereo_partner(target, depth, K)
    batch = {"frames": torch.stack([target, target, target], 1), "K": K, "stereo": partner,
             "stereo_T": partner_T}
    batch["frames_aug"] = batch["frames"]
    grads = {}
    for weight in (0.0, 1.0):
        net = _FixedDepth(torch.full_like(depth, 30.0))
        out = SelfSupervisedObjective(smoothness_weight=0.0, automask=False, stereo_weight=weight)(
            net, _StillPose(), batch)
        out.loss.backward()
        grads[weight] = net.depth.grad.abs().sum().item()
        if weight == 0.0:
            assert out.photometric.item() < 1e-6
        else:
            assert out.photometric.item() > 0.01
    assert grads[1.0] > 1e4 * grads[0.0]


def test_photometric_pyramid_reaches_depths_that_full_resolution_cannot(two_views):
    """With the depth three times too far, many pixels sample a flat patch of the partner and get no
    gradient at full resolution; the pooled levels give more of them a gradient toward the truth."""
    from spidepth_core.objective import SelfSupervisedObjective
    target, _, depth, K, _ = two_views
    partner, partner_T = _stereo_partner(target, depth, K)
    batch = {"frames": target[:, None], "frames_aug": target[:, None], "K": K, "stereo": partner,
             "stereo_T": partner_T}
    near = depth < 15
    toward = {}
    for scales in (1, 4):
        net = _FixedDepth(depth * 3)
        out = SelfSupervisedObjective(frame_ids=(0,), smoothness_weight=0.0, automask=False,
                                      scales=scales)(net, _StillPose(), batch)
        out.loss.backward()
        toward[scales] = (net.depth.grad > 0)[near].float().mean().item()  # descent shrinks the depth
    assert toward[4] > toward[1] + 0.1, toward
    with pytest.raises(ValueError, match="scales"):
        SelfSupervisedObjective(scales=0)


def test_scale_invariant_l1_ignores_scale_and_sees_shape():
    depth = torch.rand(2, 1, 8, 12) * 10 + 1
    assert scale_invariant_l1(depth * 3.7, depth) < 1e-6
    tilted = depth * torch.linspace(0.5, 1.5, 12)  # a change of shape, not of scale
    assert scale_invariant_l1(tilted, depth) > 0.1


def test_depth_anchor_is_frozen_and_pulls_toward_the_start():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 1, 3, padding=1), torch.nn.BatchNorm2d(1), torch.nn.Softplus())
    anchor = DepthAnchor(net)
    anchor.train()
    assert not anchor.teacher.training and not any(p.requires_grad for p in anchor.teacher.parameters())
    image = torch.rand(2, 3, 8, 12)
    net.eval()
    reference = anchor.reference(image)
    assert scale_invariant_l1(net(image) * 2, reference) < 1e-6  # the start itself, at any scale, is not pulled
    depth = (net(image) * torch.linspace(0.5, 1.5, 12)).detach().requires_grad_(True)
    loss = scale_invariant_l1(depth, reference)
    loss.backward()
    assert loss > 0.05 and depth.grad.abs().sum() > 0
    assert all(p.grad is None for p in anchor.teacher.parameters())


@pytest.mark.parametrize("frames_scale,at_input_size", [(1, True), (2, True), (2, False)])
def test_gated_anchor_lets_go_where_the_photometric_evidence_has_moved_past_the_start(two_views, frames_scale,
                                                                                      at_input_size):
    """With anchor_gate the anchor holds a pixel only where the starting depth reprojects at least as
    well as the current one: everywhere while they agree, few pixels where the current depth is the true
    one and the start is not, most pixels the other way round. With frames twice the networks' size
    (train.photometric_resolution 2) the gate is taken at the networks' size, or at the frames'."""
    from spidepth_core.objective import SelfSupervisedObjective
    target, _, depth, K, _ = two_views
    if frames_scale == 2:
        target, _, _, K, _ = _render_views(192, 640)
    partner, partner_T = _stereo_partner(target, F.interpolate(depth, size=target.shape[-2:]), K)
    batch = {"frames": target[:, None], "frames_aug": target[:, None], "K": K, "stereo": partner,
             "stereo_T": partner_T}
    tilted = depth * torch.linspace(0.5, 1.5, depth.shape[-1])  # a wrong shape
    held = {}
    for name, current, start in [("agree", depth, depth), ("current true", depth, tilted),
                                 ("start true", tilted, depth)]:
        objective = SelfSupervisedObjective(frame_ids=(0,), automask=False, anchor=DepthAnchor(_FixedDepth(start)),
                                            anchor_weight=1.0, anchor_gate=True, input_size=(96, 320),
                                            anchor_at_input_size=at_input_size)
        out = objective(_FixedDepth(current), _StillPose(), batch)
        assert out.anchor_held.shape[-2:] == ((96, 320) if at_input_size else target.shape[-2:])
        held[name] = out.anchor_held.mean().item()
        assert out.scalars()["anchor_held"] == pytest.approx(held[name])
    assert held["agree"] == 1.0
    assert held["current true"] < 0.4 < 0.6 < held["start true"], held


def test_geometry_and_losses_stay_float32_under_bfloat16_autocast(two_views):
    """train.cpu_bf16 runs the networks in bfloat16; warping (pixel coordinates up to the image width) and
    the photometric terms must not, or the loss would move by whole pixels' worth of error."""
    from spidepth_core.objective import SelfSupervisedObjective
    target, _, depth, K, _ = two_views
    partner, partner_T = _stereo_partner(target, depth, K)
    batch = {"frames": target[:, None], "frames_aug": target[:, None], "K": K, "stereo": partner,
             "stereo_T": partner_T}
    objective = SelfSupervisedObjective(frame_ids=(0,), automask=False)
    plain = objective(_FixedDepth(depth * 1.2), _StillPose(), batch).photometric.item()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = objective(_FixedDepth(depth * 1.2), _StillPose(), batch).photometric.item()
    assert mixed == pytest.approx(plain, rel=1e-6)
