import pytest
import torch

from spidepth_core.models import (
    DepthConfig,
    create_model,
    create_pose_net,
    list_models,
    model_config,
    start_moving_forward,
)


def _count(module) -> float:
    return sum(p.numel() for p in module.parameters()) / 1e6


def test_paper_depthnet_size():
    model = create_model("spidepth_convnext_large_320x1024")
    assert abs(_count(model) - 242.0) / 242.0 < 0.02
    assert abs(_count(model.head) - 3.74) / 3.74 < 0.02


def test_pose_net_sizes():
    assert abs(_count(create_pose_net("strengthened", "resnet18")) - 12.5) / 12.5 < 0.02
    assert abs(_count(create_pose_net("standard")) - 1.59) / 1.59 < 0.02


def test_tiny_forward_in_depth_range():
    torch.manual_seed(0)
    model = create_model("spidepth_tiny", min_depth=0.5, max_depth=30.0).eval()
    with torch.no_grad():
        depth = model(torch.rand(2, 3, 64, 192))
    assert depth.shape == (2, 1, 64, 192)
    assert torch.isfinite(depth).all()
    assert depth.min() >= 0.5 and depth.max() <= 30.0


def test_uncertainty_is_the_spread_of_the_bin_mixture():
    torch.manual_seed(0)
    model = create_model("spidepth_tiny").eval()
    x = torch.rand(2, 3, 64, 192)
    with torch.no_grad():
        depth, spread = model.depth_and_uncertainty(x)
        assert torch.allclose(depth, model(x))
        prob, centers = model.head.distribution(model.unet(model.norm(x)))
        second_moment = (prob * centers**2).sum(1, keepdim=True)
        mean = (prob * centers).sum(1, keepdim=True)
        low_res = (second_moment - mean**2).clamp(min=0).sqrt()  # Var = E[c^2] - E[c]^2, another route
    expected = torch.nn.functional.interpolate(low_res, size=(64, 192), mode="bilinear", align_corners=False)
    assert spread.shape == depth.shape and (spread >= 0).all()
    assert torch.allclose(spread, expected, rtol=1e-3, atol=1e-3)
    assert prob.shape[1] == model.config.num_bins and torch.allclose(prob.sum(1), torch.ones(1))


@pytest.mark.parametrize("kind", ["strengthened", "standard"])
def test_backward_reaches_every_parameter(kind):
    torch.manual_seed(0)
    depth_net = create_model("spidepth_tiny")
    pose_net = create_pose_net(kind, "resnet10t")
    image = torch.rand(2, 3, 64, 192)
    axis_angle, translation = pose_net(torch.cat([image, image.flip(-1)], 1))
    loss = depth_net(image).mean() + axis_angle.sum() + translation.sum()
    loss.backward()
    for module in (depth_net, pose_net):
        missing = [n for n, p in module.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
        assert not missing, missing


def test_pose_outputs_are_small_and_shaped():
    out = create_pose_net("standard")(torch.rand(3, 6, 64, 192))
    assert out[0].shape == (3, 3) and out[1].shape == (3, 3)


@pytest.mark.parametrize("kind", ["strengthened", "standard"])
def test_a_pose_net_can_start_moving_forward(kind):
    torch.manual_seed(0)
    net = create_pose_net(kind, "resnet18", None).eval()
    pair = torch.rand(2, 6, 64, 192)
    with torch.no_grad():
        rotation, translation = net(pair)
        start_moving_forward(net, 0.02)
        moved_rotation, moved = net(pair)
    assert torch.equal(moved_rotation, rotation)
    assert torch.allclose(moved - translation, torch.tensor([[0.0, 0.0, -0.02]] * 2), atol=1e-6)


def test_registry_errors():
    assert "spidepth_convnext_large_320x1024" in list_models()
    with pytest.raises(KeyError, match="unknown model"):
        create_model("nope")
    with pytest.raises(ValueError, match="unknown DepthNet option"):
        model_config("spidepth_tiny", not_a_field=1)
    with pytest.raises(ValueError, match="unknown pose net"):
        create_pose_net("huge")


def test_too_few_tokens_is_a_clear_error():
    model = create_model("spidepth_tiny").eval()
    with pytest.raises(ValueError, match="tokens"):
        model(torch.rand(1, 3, 16, 64))


def test_config_roundtrip():
    cfg = model_config("spidepth_small")
    assert DepthConfig.from_dict(cfg.to_dict()) == cfg
