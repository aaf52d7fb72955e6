"""One-file checkpoints: weights + the metadata to rebuild and preprocess; written atomically."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from .errors import first_line
from .files import atomic_write
from .models import DepthConfig, DepthNet, create_pose_net, set_input_scale
from .pinhole import INTRINSICS_CONVENTION

FORMAT = "spidepth-checkpoint/1"


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """torch.save ``obj`` to ``path`` atomically (see ``atomic_write``)."""
    atomic_write(path, lambda f: torch.save(obj, f))


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


# Keys a model needs to run and to be fine-tuned from; the rest (optimiser, RNG, progress) is train state.
MODEL_KEYS = ("format", "model_name", "config", "input_size", "depth_range", "input_format", "intrinsics_convention",
              "state_dict", "pose_state_dict", "pose_kind", "pose_config", "metric", "epoch", "step", "validation")


def compact_checkpoint(src: str | os.PathLike, dst: str | os.PathLike, fp16: bool = False) -> Path:
    """Copy the model part of a checkpoint (depth and pose weights, metadata) without train state.

    With ``fp16`` the floating-point weights are stored in half precision: half the file, and loading
    casts them back to float32 (the values keep fp16 rounding).
    """
    ckpt = read_checkpoint(src)
    out = {k: ckpt[k] for k in MODEL_KEYS if k in ckpt}
    if fp16:
        for key in ("state_dict", "pose_state_dict"):
            if key in out:
                out[key] = {k: v.half() if v.is_floating_point() else v for k, v in out[key].items()}
        out["stored_dtype"] = "float16"
    atomic_save(out, dst)
    return Path(dst)


def load_torch_file(path: str | os.PathLike, what: str = "checkpoint") -> Any:
    """torch.load of a user's file, safely (weights_only: no pickled code runs), with one clear ValueError for
    an empty, foreign, truncated or code-carrying file; ``what`` names the file's role in the message."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    with open(path, "rb") as f:
        head = f.read(8)
    if not head:
        raise ValueError(f"cannot read {what} {path}: the file is empty")
    if not head.startswith((b"PK\x03\x04", b"\x80")):  # torch.save zip, or the legacy pickle format
        raise ValueError(f"cannot read {what} {path}: not a PyTorch file (it starts with {head!r})")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, corrupt, or a pickle that would run code
        raise ValueError(f"cannot read {what} {path}: {first_line(exc)}") from exc


def read_checkpoint(path: str | os.PathLike) -> dict:
    """Load a checkpoint dict safely (weights_only) with a clear error for bad files."""
    ckpt = load_torch_file(path)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ValueError(f"{path} is not a spidepth checkpoint (missing format {FORMAT!r})")
    return ckpt


def stored_pose_config(ckpt: dict) -> dict:
    """The pose net's config saved in a checkpoint (older checkpoints saved its kind only)."""
    return ckpt.get("pose_config") or {"kind": ckpt.get("pose_kind")}


def load_pose_net(ckpt: dict, path: str | os.PathLike, backbone: str = "resnet18") -> torch.nn.Module:
    """Rebuild the pose net stored in checkpoint ``ckpt`` (read from ``path``), in train mode like a new one;
    ``backbone`` is for older checkpoints that did not save theirs."""
    if "pose_state_dict" not in ckpt:
        raise ValueError(f"{path} holds no pose net (a training run's last.pt or best.pt has one)")
    stored = stored_pose_config(ckpt)
    net = create_pose_net(stored["kind"], stored.get("backbone", backbone), None,
                          stored.get("input_mean"), stored.get("input_std"))
    set_input_scale(net, stored.get("input_scale", 1.0))
    net.load_state_dict(ckpt["pose_state_dict"])
    return net


def check_weights(ckpt: dict, path: str | os.PathLike) -> None:
    """Raise a short ValueError when the checkpoint's config does not describe its weights."""
    try:
        config = DepthConfig.from_dict(ckpt["config"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: bad model config: {exc}") from None
    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        expected = {k: tuple(v.shape) for k, v in DepthNet(config).state_dict().items()}
    given = {k: tuple(v.shape) for k, v in ckpt["state_dict"].items()}
    problems = []
    for label, keys in (("missing", expected.keys() - given.keys()), ("unexpected", given.keys() - expected.keys()),
                        ("wrong shape", {k for k in expected.keys() & given.keys() if expected[k] != given[k]})):
        if keys:
            first = sorted(keys)[0]
            shape = f" {given[first]} vs {expected[first]}" if label == "wrong shape" else ""
            problems.append(f"{len(keys)} {label} (e.g. {first}{shape})")
    if problems:
        raise ValueError(f"{path}: its config does not match its weights: {'; '.join(problems)}")


def load_model(path: str | os.PathLike, map_location: str | torch.device = "cpu",
               ckpt: dict | None = None) -> DepthNet:
    """Rebuild the DepthNet stored in ``path`` (eval mode); ``ckpt``: that file's dict, when already read."""
    ckpt = ckpt if ckpt is not None else read_checkpoint(path)
    check_weights(ckpt, path)
    model = DepthNet(DepthConfig.from_dict(ckpt["config"]))
    model.load_state_dict(ckpt["state_dict"])
    return model.to(map_location).eval()
