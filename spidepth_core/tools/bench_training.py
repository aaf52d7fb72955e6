"""``spidepth benchmark training``: training images per second, and where a step's time goes.

Each arm is a set of config overrides (a speed lever, or ``baseline``: every lever off, the trainer as it
was before them), run in the same process on the same frames: the speed of N steps after a warm-up, and a
profile of one batch, each part timed alone (median of a few runs): data loading (the wait for the next
batch), the depth net forward and backward, the pose net forward and backward (every source pair), warping
forward and backward, the photometric error (SSIM + L1 of the warped and, for the auto-mask, the unwarped
sources) forward and backward, the optimiser step; ``other`` is the step's remainder (smoothness, the
minimum, bookkeeping).
"""
from __future__ import annotations

import copy
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..config import TrainConfig, apply_overrides, check_values, load_config
from ..data import find_sequences
from ..geometry import warp
from ..objective import relative_pose
from ..trainer import Trainer
from .report import update_report

# Every lever of this benchmark, off: the trainer as it ran before them (data workers as the config says).
BASELINE = ["train.cpu_bf16=false", "train.channels_last=false", "pose.input_scale=1", "data.frame_cache_mb=0",
            "train.anchor_at_input_size=false"]
MAIN_PROCESS_DATA = ["train.workers=0", "data.frame_cache_mb=2048"]
LEVERS = ["train.cpu_bf16=true", "train.channels_last=true", *MAIN_PROCESS_DATA,
          "train.anchor_at_input_size=true"]  # all but the pose's size
ARMS: dict[str, list[str]] = {
    "baseline": BASELINE,
    "bf16": [*BASELINE, "train.cpu_bf16=true"],
    "channels_last": [*BASELINE, "train.channels_last=true"],
    "pose_half": [*BASELINE, "pose.input_scale=0.5"],
    "main_process_data": [*BASELINE, *MAIN_PROCESS_DATA],
    "anchor_at_input_size": [*BASELINE, "train.anchor_at_input_size=true"],
    "all": [*LEVERS, "pose.input_scale=0.5"],
    "all_but_pose_half": [*LEVERS, "pose.input_scale=1"],
    "config": [],  # the config's own settings
}
PARTS = ("data", "depth net", "pose net", "warping", "photometric", "optimiser", "other")


def _median_ms(run: Callable[[], Any], reps: int) -> float:
    run()  # warm
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def time_steps(trainer: Trainer, warmup: int, steps: int) -> tuple[float, float, dict]:
    """(images/s, data ms per step, the last batch) over ``steps`` steps after ``warmup``."""
    data_s = step_s = 0.0
    batch: dict = {}
    loader = iter(trainer.loader(trainer.train_ds, trainer.sampler))
    for i in range(warmup + steps):
        start = time.perf_counter()
        try:
            batch = next(loader)
        except StopIteration:
            loader = iter(trainer.loader(trainer.train_ds, trainer.sampler))
            batch = next(loader)
        got = time.perf_counter()
        trainer.train_step({k: v.to(trainer.device) for k, v in batch.items()})
        if i >= warmup:
            data_s += got - start
            step_s += time.perf_counter() - got
    images = steps * trainer.cfg.train.batch_size
    return images / (data_s + step_s), 1000 * data_s / steps, batch


def profile(trainer: Trainer, batch: dict, reps: int = 3) -> dict[str, float]:
    """Milliseconds per part for one batch (see the module docstring), each forward and backward."""
    obj: Any = trainer.objective
    depth_net, pose_net = trainer.depth_net, trainer.pose_net
    frames, K = batch["frames"], batch["K"]
    aug = obj._network_input(batch["frames_aug"])
    target, sources = frames[:, 0], [frames[:, j] for j in range(1, frames.shape[1])]
    ids = obj.frame_ids[1:]
    amp = trainer.autocast

    def depth_part():
        with amp():
            out = depth_net(aug[:, 0])
        out.float().sum().backward()

    def pose_part():
        with amp():
            total = sum(relative_pose(pose_net, aug[:, 0], aug[:, j], f).sum() for j, f in enumerate(ids, 1))
        total.float().backward()

    with torch.no_grad(), amp():
        depth = obj._loss_size(depth_net(aug[:, 0]).float(), target)
        poses = [relative_pose(pose_net, aug[:, 0], aug[:, j], f) for j, f in enumerate(ids, 1)]
    depth = depth.detach().requires_grad_(True)

    def warp_part():
        with amp():
            total = sum(warp(src, depth, K, T).sum() for src, T in zip(sources, poses))
        total.float().backward()

    warped = [warp(src, depth, K, T).detach().requires_grad_(True) for src, T in zip(sources, poses)]

    def photometric_part():
        with amp():
            errors = [obj.photometric(w, target) for w in warped] + [obj.photometric(s, target) for s in sources]
        torch.cat(errors, 1).float().mean().backward()

    step = trainer.train_step
    parts = {"depth net": _median_ms(depth_part, reps), "pose net": _median_ms(pose_part, reps),
             "warping": _median_ms(warp_part, reps), "photometric": _median_ms(photometric_part, reps),
             "optimiser": _median_ms(trainer.optimizer.step, reps)}
    trainer.optimizer.zero_grad(set_to_none=True)
    parts["step"] = _median_ms(lambda: step({k: v.to(trainer.device) for k, v in batch.items()}), reps)
    parts["other"] = max(0.0, parts["step"] - sum(parts[p] for p in PARTS[1:-1]))
    return parts


def run_benchmark(config: str | None, data: Path | None, steps: int, warmup: int, arms: list[str],
                  overrides: list[str], out: Path, threads: int | None = None) -> dict:
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        raise ValueError(f"unknown arm(s) {unknown}; choose from {sorted(ARMS)}")
    if threads:
        torch.set_num_threads(threads)
    base = load_config(config, overrides, check=False)
    base.data.val_path = None
    folder = data or _world(out, base)
    if not find_sequences(folder):
        raise ValueError(f"no sequences in {folder}")
    rows: dict[str, dict] = {}
    for arm in arms:
        with tempfile.TemporaryDirectory() as run:
            cfg = _arm_config(base, arm, folder, Path(run))
            torch.manual_seed(0)
            trainer = Trainer(cfg, resume=False)
            speed, data_ms, batch = time_steps(trainer, warmup, steps)
            parts = profile(trainer, batch)
        rows[arm] = {"images_per_s": speed, "ms": {"data": data_ms, **parts}}
        print(f"{arm}: {speed:.2f} images/s", flush=True)
    report = {"config": config, "overrides": overrides, "steps": steps, "warmup": warmup,
              "threads": torch.get_num_threads(), "batch_size": base.train.batch_size, "arms": rows}
    update_report(out / "training_speed.json", lambda old: report)
    print(format_report(report))
    return report


def _arm_config(base: TrainConfig, arm: str, data: Path, run: Path) -> TrainConfig:
    cfg = copy.deepcopy(base)
    apply_overrides(cfg, ARMS[arm])
    cfg.data.path, cfg.run.out_dir, cfg.run.device = str(data), str(run), "cpu"
    cfg.run.checkpoint_every = 10**9  # no saves inside the timed steps
    check_values(cfg)
    return cfg


def _world(out: Path, cfg: TrainConfig) -> Path:
    """A small synthetic world at the config's model size (with the stereo partner if it uses one)."""
    from ..models import model_config
    from ..synth import generate
    size = model_config(cfg.model.name, **cfg.model.overrides)
    factor = cfg.train.photometric_resolution
    folder = out / f"world_{size.height * factor}x{size.width * factor}"
    generate(folder, [0, 1], 40, size.height * factor, size.width * factor, stereo=bool(cfg.data.stereo_dir))
    return folder


def format_report(report: dict) -> str:
    arms = report["arms"]
    base = arms.get("baseline", next(iter(arms.values())))["images_per_s"]
    lines = ["| arm | images/s | vs baseline | " + " | ".join(PARTS) + " | step ms |",
             "|---" * (len(PARTS) + 4) + "|"]
    for name, row in arms.items():
        ms = row["ms"]
        lines.append(f"| {name} | {row['images_per_s']:.2f} | {row['images_per_s'] / base:.2f}x | "
                     + " | ".join(f"{ms[p]:.0f}" for p in PARTS) + f" | {ms['step']:.0f} |")
    return "\n".join(lines)


