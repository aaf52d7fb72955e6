"""One-file checkpoints: weights + the metadata to rebuild and preprocess; written atomically."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from .geometry import INTRINSICS_CONVENTION
from .models import DepthConfig, DepthNet

FORMAT = "spidepth-checkpoint/1"


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """torch.save to a temp file in the same folder, fsync, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual file permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def model_metadata(model: DepthNet, name: str = "custom") -> dict:
    """Metadata needed to rebuild and preprocess (plain Python types)."""
    cfg = model.config.to_dict()
    norm = ("no normalisation" if cfg["input_mean"] is None
            else "the network normalises with config input_mean/input_std")
    return {
        "format": FORMAT,
        "model_name": name,
        "config": cfg,
        "input_size": [model.config.height, model.config.width],
        "depth_range": [model.config.min_depth, model.config.max_depth],
        "input_format": f"RGB float [0,1], NCHW, {norm}",
        "intrinsics_convention": INTRINSICS_CONVENTION,
    }


def save_model(path: str | os.PathLike, model: DepthNet, name: str = "custom", **extra: Any) -> None:
    """Save a DepthNet with its metadata; ``extra`` holds e.g. pose weights, scale, train state."""
    payload = model_metadata(model, name)
    payload["state_dict"] = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    payload.update(extra)
    atomic_save(payload, path)


def read_checkpoint(path: str | os.PathLike) -> dict:
    """Load a checkpoint dict safely (weights_only) with a clear error for bad files."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, not a torch file, ...
        raise ValueError(f"cannot read checkpoint {path}: {exc}") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ValueError(f"{path} is not a spidepth checkpoint (missing format {FORMAT!r})")
    return ckpt


def load_model(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> DepthNet:
    """Rebuild the DepthNet stored in ``path`` (eval mode)."""
    ckpt = read_checkpoint(path)
    model = DepthNet(DepthConfig.from_dict(ckpt["config"]))
    model.load_state_dict(ckpt["state_dict"])
    return model.to(map_location).eval()
