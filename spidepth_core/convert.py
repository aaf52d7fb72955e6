"""Convert the authors' SPIdepth / SQLdepth weights (encoder.pth, depth.pth, pose.pth) to one checkpoint."""
from __future__ import annotations

import logging
import re
from pathlib import Path

import torch

from .checkpoint import load_torch_file, save_model
from .errors import first_line
from .models import DepthConfig, DepthNet, StrengthenedPoseNet, list_models, model_config

log = logging.getLogger("spidepth.convert")

# (their prefix, our prefix), first match wins.
DEPTH_HEAD_KEYS = [("positional_encodings", "head.pos_embed"), ("embedding_convPxP.", "head.patch_embed."),
                   ("transformer_encoder.", "head.transformer."), ("conv3x3.", "head.key_conv."),
                   ("bins_regressor.", "head.bin_mlp."), ("convert_to_prob.0.", "head.to_prob.")]
UNET_KEYS = [("encoder.", "unet.encoder."), ("decoder.", "unet.decoder.")]
NON_TENSOR = ("height", "width", "use_stereo")


def _rename(state: dict, table: list[tuple[str, str]], where: str) -> dict:
    out = {}
    for key, value in state.items():
        if key in NON_TENSOR or not isinstance(value, torch.Tensor):
            continue
        for theirs, ours in table:
            if key.startswith(theirs):
                out[ours + key[len(theirs):]] = value
                break
        else:
            raise ValueError(f"{where}: unexpected key {key!r} (not in the authors' layout)")
    return out


def _timm_form(key: str) -> str:
    """timm names feature modules 'stages_0' or 'stages.0' depending on version: compare in one form."""
    return re.sub(r"(^|\.)([A-Za-z]+)_(\d+)(?=\.)", r"\1\2.\3", key)


def align_keys(state: dict, target: dict) -> dict:
    """Rename keys of ``state`` to ``target``'s spelling where they differ only in timm's naming."""
    by_form = {_timm_form(k): k for k in target}
    return {by_form.get(_timm_form(k), k): v for k, v in state.items()}


def first_mismatch(state: dict, target: dict) -> str | None:
    for key, value in target.items():
        if key not in state:
            return f"missing {key} {tuple(value.shape)}"
        if tuple(state[key].shape) != tuple(value.shape):
            return f"{key}: weights have {tuple(state[key].shape)}, model expects {tuple(value.shape)}"
    extra = sorted(set(state) - set(target))
    return f"unexpected {extra[0]} {tuple(state[extra[0]].shape)}" if extra else None


def head_config(depth: dict) -> dict:
    """SQL-head and decoder hyper-parameters read off the tensor shapes."""
    blocks = sorted({int(k.split(".")[3]) for k in depth if k.startswith("unet.decoder.blocks.")})
    return {
        "channels": depth["head.pos_embed"].shape[1],
        "patch_size": depth["head.patch_embed.weight"].shape[-1],
        "num_queries": depth["head.to_prob.weight"].shape[1],
        "num_bins": depth["head.to_prob.weight"].shape[0],
        "ffn_dim": depth["head.transformer.layers.0.linear1.weight"].shape[0],
        "decoder_widths": tuple(depth[f"unet.decoder.blocks.{i}.conv1.conv.weight"].shape[0] for i in blocks),
    }


def _candidates(model: str | None, shapes: dict) -> list[str]:
    if model:
        return [model]
    names = []
    for name in list_models():
        cfg = model_config(name)
        same = all(getattr(cfg, k) == v for k, v in shapes.items() if k != "channels")
        if same and cfg.channels == shapes["channels"]:
            names.append(name)
    return names


def convert(weights_dir: str | Path, out: str | Path, model: str | None = None,
            max_depth: float | None = None) -> Path:
    """Build our checkpoint from the authors' folder; picks the registered config whose shapes fit."""
    folder = Path(weights_dir)
    files = {n: folder / f"{n}.pth" for n in ("encoder", "depth", "pose")}
    for name in ("encoder", "depth"):
        if not files[name].is_file():
            raise FileNotFoundError(f"{files[name]} not found: give a folder of the authors' released weights "
                                    "(encoder.pth, depth.pth, optionally pose.pth; their README links one per "
                                    "dataset)")
    enc = _weights(files["encoder"])
    state = {**_rename(enc, UNET_KEYS, "encoder.pth"),
             **_rename(_weights(files["depth"]), DEPTH_HEAD_KEYS, "depth.pth")}
    try:
        shapes = head_config(state)
    except (KeyError, IndexError) as exc:
        raise ValueError(f"{files['depth']}: not the authors' depth-head layout (no {first_line(exc)})") from None
    candidates = _candidates(model, shapes)
    if not candidates:
        raise ValueError(f"no registered model has these shapes {shapes}; name one with --model")
    errors = []
    for name in candidates:
        overrides = dict(shapes, height=int(enc.get("height", model_config(name).height)),
                         width=int(enc.get("width", model_config(name).width)))
        if max_depth:
            overrides["max_depth"] = max_depth
        net = DepthNet(DepthConfig.from_dict({**model_config(name).to_dict(), **overrides}))
        target = net.state_dict()
        aligned = align_keys(state, target)
        problem = first_mismatch(aligned, target)
        if problem is None:
            net.load_state_dict(aligned)
            extra = _pose(files["pose"])
            save_model(out, net, name, converted_from=str(folder), **extra)
            log.info("converted %s as %s", folder, name)
            return Path(out)
        errors.append(f"{name}: {problem}")
    raise ValueError("weights do not fit: " + "; ".join(errors))


def _weights(path: Path) -> dict:
    """One of the authors' .pth files: a dict of tensors (plus a few numbers), read without running code."""
    state = load_torch_file(path, "weights file")
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds a {type(state).__name__}, not a dict of weights (the authors' layout)")
    return state


def _pose(path: Path) -> dict:
    """Pose weights (kept for fine-tuning) when they fit the strengthened ResNet-18 pose net."""
    if not path.is_file():
        return {}
    state = _weights(path)
    net = StrengthenedPoseNet("resnet18")
    aligned = align_keys(state, net.state_dict())
    problem = first_mismatch(aligned, net.state_dict())
    if problem:
        log.warning("pose.pth not converted (%s)", problem)
        return {}
    return {"pose_state_dict": aligned, "pose_kind": "strengthened"}
