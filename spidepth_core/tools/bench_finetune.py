"""``spidepth benchmark finetune``: does monocular fine-tuning on a robot's first recordings help?

Renders sequences the model never saw as rosbag2 recordings, fine-tunes the model on them with the
shipped bag config at several learning rates, and compares held-out errors before and after. Folders are
named after what made them (world settings; model, config, overrides and rate), so a changed setting
renders or trains anew instead of resuming something else.
"""
from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

from ..data import find_sequences
from ..data.bag import write_camera_bag
from ..data.folder import list_images, read_rgb
from ..evaluate import evaluate_sequences
from ..inference import Predictor
from ..pinhole import kitti_intrinsics
from ..synth import generate
from .report import update_report

FIRST_SEED = 2000  # far from the training (0-23) and validation (1000+) seeds of the bundled model
IMAGE_TOPIC, INFO_TOPIC = "/camera/image_raw", "/camera/camera_info"


def make_recordings(root: Path, bags: int, held_out: int, frames: int, height: int, width: int,
                    mount_height: float | None = None) -> tuple[Path, Path]:
    """``bags`` rosbag2 recordings to fine-tune on, and ``held_out`` GT folders of other sequences."""
    seeds = list(range(FIRST_SEED, FIRST_SEED + bags + held_out))
    folders = generate(root / "sequences", seeds, frames, height, width, mount_height=mount_height)
    bag_dir, gt_dir = root / "bags", root / "held_out"
    bag_dir.mkdir(parents=True, exist_ok=True)
    gt_dir.mkdir(parents=True, exist_ok=True)
    for folder in folders[:bags]:
        bag = bag_dir / Path(folder).name
        if not bag.exists():
            images = (read_rgb(p) for p in list_images(folder))
            write_camera_bag(bag, images, kitti_intrinsics(height, width), image_topic=IMAGE_TOPIC,
                             info_topic=INFO_TOPIC)
    for folder in folders[bags:]:
        link = gt_dir / Path(folder).name
        if not link.exists():
            link.symlink_to(Path(folder).resolve(), target_is_directory=True)
    return bag_dir, gt_dir


def digest(*parts: object) -> str:
    """Short stable name for a list of settings; bytes (a file's contents) are hashed as they are."""
    h = hashlib.sha1()
    for part in parts:
        h.update(part if isinstance(part, bytes) else json.dumps(part, sort_keys=True, default=str).encode())
        h.update(b"\0")
    return h.hexdigest()[:10]


def world_name(world: dict) -> str:
    height = world.get("mount_height")
    cam = "" if height is None else f"_cam{height:g}m"
    return f"world_{world['bags']}x{world['frames']}+{world['held_out']}_{world['height']}x{world['width']}{cam}"


def run_benchmark(out: Path, model: Path, config: str, lr_factors: list[float], world: dict,
                  overrides: list[str]) -> dict:
    from ..config import check_values, load_config
    from ..shipped import config_file
    from .bench_accuracy import run_one
    name = world_name(world)
    bags, held_out = make_recordings(out / name, **world)
    base = load_config(config, overrides, check=False)  # checked below, with the recordings and the model
    base.data.source, base.data.path, base.data.cache_dir = "bag", str(bags), str(out / "cache")
    base.data.image_topic, base.data.camera_info_topic = IMAGE_TOPIC, INFO_TOPIC
    base.model.init = str(model)
    check_values(base)
    sequences = find_sequences(held_out)
    before = evaluate_sequences(Predictor(model, backend="torch"), sequences)
    setup = digest(model.read_bytes(), config_file(config).read_bytes(), overrides, name)
    rows = []
    for factor in lr_factors:
        cfg = copy.deepcopy(base)
        lr = cfg.train.lr = base.train.lr * factor
        after = run_one(cfg, out / "runs" / f"{name}_{setup}_lr_x{factor:g}", held_out)
        change = after["abs_rel"] / before["abs_rel"] - 1
        print(f"lr {lr:.2e} (x{factor:g}): held-out abs_rel {before['abs_rel']:.4f} -> {after['abs_rel']:.4f} "
              f"({change:+.1%})")
        rows.append({"lr_factor": factor, "lr": lr, "after": after, "change": change})
    path = out / f"finetune_{name}_{setup}.json"
    report = update_report(path, lambda old: {"model": str(model), "config": config, "world": world,
                                              "overrides": overrides, "before": before,
                                              "runs": merge_rows(old["runs"] if old else [], rows)})
    print(format_report(report))
    print(f"report: {path}")
    return report


def merge_rows(earlier: list[dict], rows: list[dict]) -> list[dict]:
    """This invocation's rows, plus the rates an earlier report of the same settings measured and this one did not."""
    measured = {row["lr_factor"] for row in rows}
    kept = [row for row in earlier if row["lr_factor"] not in measured]
    return sorted(kept + rows, key=lambda row: row["lr_factor"])


def format_report(report: dict) -> str:
    lines = ["| learning rate | abs_rel before | abs_rel after | change | a1 after |", "|---|---|---|---|---|"]
    for row in report["runs"]:
        lines.append(f"| {row['lr']:.1e} (x{row['lr_factor']:g}) | {report['before']['abs_rel']:.4f} | "
                     f"{row['after']['abs_rel']:.4f} | {row['change']:+.1%} | {row['after']['a1']:.4f} |")
    return "\n".join(lines)
