"""``spidepth benchmark accuracy``: train on synthetic sequences, evaluate on held-out ones.

Compares the pose arms (pretrained strengthened, random strengthened, standard) at the same budget over several seeds.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np

from ..config import TrainConfig, load_config
from ..data import find_sequences
from ..evaluate import evaluate_sequences
from ..inference import Predictor
from ..metrics import METRIC_NAMES
from ..run_lock import RunLock
from ..synth import generate
from ..trainer import Trainer
from .report import update_report

HELD_OUT_SEED = 1000
# Pose arms: the paper's strengthened net with its backbone pretrained, the same net from random weights
# (separates "bigger net" from "pretrained"), and SQLdepth's standard 7-conv net.
POSE_ARMS = {
    "pretrained": ["pose.kind=strengthened", "pose.pretrained=true"],
    "strengthened": ["pose.kind=strengthened", "pose.pretrained=false"],
    "standard": ["pose.kind=standard", "pose.pretrained=false"],
}


def world_folders(root: Path, stereo: bool = False) -> tuple[Path, Path]:
    """Where make_world puts the training and the held-out sequences."""
    return root / ("train_stereo" if stereo else "train"), root / ("val_stereo" if stereo else "val")


def make_world(root: Path, train_seqs: int, val_seqs: int, frames: int, height: int, width: int,
               stereo: bool = False) -> tuple[Path, Path]:
    train, val = world_folders(root, stereo)
    generate(train, list(range(train_seqs)), frames, height, width, stereo=stereo)
    generate(val, list(range(HELD_OUT_SEED, HELD_OUT_SEED + val_seqs)), frames, height, width, stereo=stereo)
    return train, val


def run_one(cfg: TrainConfig, out_dir: Path, val: Path) -> dict:
    """Train ``cfg`` in ``out_dir`` (resuming it), then score its last weights on ``val``."""
    cfg = copy.deepcopy(cfg)
    cfg.run.out_dir = str(out_dir)
    with RunLock(out_dir):  # two benchmarks given the same settings must not train one folder together
        trainer = Trainer(cfg, resume=True)
        trainer.fit()
    if trainer.interrupted:
        raise KeyboardInterrupt("benchmark interrupted; run it again to resume")
    # The weights after the budget, not best.pt: at a few hundred steps the validation photometric error
    # that picks best.pt is noise, and would add its own spread to the comparison of the arms.
    return evaluate_sequences(Predictor(out_dir / "last.pt", backend="torch"), find_sequences(val))


def summarise(results: dict[str, list[dict]]) -> dict[str, dict[str, list[float]]]:
    """{pose: {metric: [mean, std]}}."""
    return {pose: {m: [float(np.mean([r[m] for r in rows])), float(np.std([r[m] for r in rows]))]
                   for m in (*METRIC_NAMES, "scale_std")} for pose, rows in results.items()}


def format_summary(summary: dict) -> str:
    names = ("abs_rel", "sq_rel", "rmse", "rmse_log", "a1", "a2", "a3")
    lines = ["| pose net | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for pose, stats in summary.items():
        lines.append(f"| {pose} | " + " | ".join(f"{stats[n][0]:.4f} ± {stats[n][1]:.4f}" for n in names) + " |")
    return "\n".join(lines)


def run_benchmark(out: Path, config: str | None, poses: list[str], seeds: list[int], steps: int,
                  world: dict, overrides: list[str]) -> dict:
    unknown = [p for p in poses if p not in POSE_ARMS]
    if unknown:
        raise ValueError(f"unknown pose arm(s) {unknown}; choose from {sorted(POSE_ARMS)}")
    if world.get("stereo"):
        overrides = overrides + ["data.stereo_dir=right", "data.stereo_baseline=0.54"]
    train, val = world_folders(out / "world", bool(world.get("stereo")))
    runs = {(pose, seed): load_config(config, overrides + [f"data.path={train}", f"data.val_path={val}",
                                                           *POSE_ARMS[pose], f"train.seed={seed}",
                                                           f"train.max_steps={steps}"])
            for pose in poses for seed in seeds}  # every config checked before anything is rendered
    make_world(out / "world", **world)
    results: dict[str, list[dict]] = {p: [] for p in poses}
    for (pose, seed), cfg in runs.items():
        metrics = run_one(cfg, out / "runs" / f"{pose}_seed{seed}", val)
        print(f"{pose} seed {seed}: abs_rel {metrics['abs_rel']:.4f}  a1 {metrics['a1']:.4f}")
        results[pose].append({"seed": seed, **metrics})
    report = write_report(out / "accuracy.json", {"steps": steps, "seeds": seeds, "world": world,
                                                  "overrides": overrides, "runs": results})
    print(format_summary(report["summary"]))
    return report


def write_report(path: Path, report: dict[str, Any]) -> dict[str, Any]:
    """Add this benchmark's arms to the report at ``path``, so arms run as separate processes (one per core)
    gather in one table; a report made with other settings (steps, seeds, world, overrides) is replaced."""
    def merge(old: dict[str, Any] | None) -> dict[str, Any]:
        runs = report["runs"]
        if old and all(old.get(k) == report[k] for k in ("steps", "seeds", "world", "overrides")):
            runs = {**old["runs"], **runs}
        runs = {pose: runs[pose] for pose in POSE_ARMS if pose in runs}
        return {**report, "runs": runs, "summary": summarise(runs)}
    return update_report(path, merge)
