"""``spidepth benchmark cameras``: how a model's depth holds on cameras and in a world that training never saw.

The world is the synthetic street world's "unseen" style (its own texture family and layouts) with seeds no
training config uses; each camera renders the same drives at its own resolution, field of view, aspect and
height above the road. Per camera: abs_rel median-scaled, with no scaling at all (metric, through the
model's canonical camera and the camera's focal length), and with the node's camera_height policy.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from ..data import FolderSequence
from ..data.folder import read_poses
from ..evaluate import evaluate_sequences
from ..inference import Predictor
from ..metrics import EVAL_MAX_DEPTH, evaluated_pixels, gt_mask
from ..synth import Camera, Scene, generate
from ..synth.world import SURFACES, surface_kinds

FIRST_SEED = 90_000  # no training or benchmark config renders these


@dataclass(frozen=True)
class BenchCamera:
    name: str
    height: int
    width: int
    camera: Camera


CAMERAS = (
    BenchCamera("training camera (KITTI intrinsics, 192x640, 1.65 m)", 192, 640, Camera(mount=1.65)),
    BenchCamera("480x640, 70 deg, 1.65 m", 480, 640, Camera(hfov=70, mount=1.65)),
    BenchCamera("480x640, 70 deg, 0.8 m (a small robot's)", 480, 640, Camera(hfov=70, mount=0.8)),
    BenchCamera("360x640 (16:9), 90 deg, 0.4 m", 360, 640, Camera(hfov=90, mount=0.4)),
)
MODES = ("median-scaled", "no scaling", "camera_height")


def render_world(root: Path, sequences: int, frames: int, workers: int = 2,
                 first_seed: int = FIRST_SEED) -> dict[str, list[Path]]:
    """The drives' folders per camera (rendered once, then reused)."""
    seeds = list(range(first_seed, first_seed + sequences))
    folders = {}
    for i, cam in enumerate(CAMERAS):
        folder = root / f"camera_{i}_{cam.height}x{cam.width}"
        folders[cam.name] = generate(folder, seeds, frames, cam.height, cam.width, workers,
                                     scene=Scene(camera=cam.camera, style="unseen"))
    return folders


def _drives(folders: list[Path]) -> list[FolderSequence]:
    return [FolderSequence(folder) for folder in folders]


def aspect_size(model_size: tuple[int, ...], height: int, width: int, multiple: int = 32) -> tuple[int, int]:
    """An input size of the camera's aspect with about as many pixels as the model's (multiples of 32)."""
    pixels = model_size[0] * model_size[1]
    h = (pixels * height / width) ** 0.5
    return (max(multiple, int(round(h / multiple)) * multiple),
            max(multiple, int(round(h * width / height / multiple)) * multiple))


def score(predictor: Predictor, folders: dict[str, list[Path]], native: bool = False) -> dict[str, dict]:
    """abs_rel per camera and scaling mode (and a1, and the frames scored). ``native``: run the network at an
    input size of each camera's aspect (PyTorch only) instead of squashing the image to the model's size."""
    results: dict[str, dict] = {}
    own = predictor.input_size
    for cam in CAMERAS:
        if native:
            predictor.input_size = aspect_size(own, cam.height, cam.width)
        sequences = _drives(folders[cam.name])
        row: dict = {}
        for mode in MODES:
            height = cam.camera.mount if mode == "camera_height" else None
            metrics = evaluate_sequences(predictor, sequences, median_scaling=mode == "median-scaled",
                                         camera_height=height)
            row[mode] = metrics["abs_rel"]
            row[f"{mode} a1"] = metrics["a1"]
        row["frames"] = metrics["images"]
        row["input_size"] = list(predictor.input_size)
        results[cam.name] = row
    predictor.input_size = own
    return results


def error_by_surface(predictor: Predictor, folders: dict[str, list[Path]]) -> dict[str, dict[str, dict]]:
    """Median-scaled abs_rel per camera and surface (walls, vehicles, ground, ...), with each surface's share of
    the scored pixels and its share of the camera's error: where the error sits. The surfaces come from the
    renderer (the world rebuilt from each drive's seed and poses)."""
    results: dict[str, dict[str, dict]] = {}
    for cam in CAMERAS:
        sums: dict[int, list[float]] = {}
        for seq in _drives(folders[cam.name]):
            seed = yaml.safe_load((seq.folder / "intrinsics.yaml").read_text())["seed"]
            world = Scene(camera=cam.camera, style="unseen").world(seed, len(seq))
            for i, pose in enumerate(read_poses(seq.folder)):
                gt, pred = seq.depth(i), predictor.predict(seq.image(i), seq.K).depth
                if gt is None:
                    raise ValueError(f"{seq.folder} has no depth for frame {i}")
                mask = gt_mask(gt, EVAL_MAX_DEPTH)
                g, p, _ = evaluated_pixels(gt, pred, mask)
                error, kinds = np.abs(p - g) / g, surface_kinds(world, pose, seq.K, *gt.shape)[mask]
                for kind in np.unique(kinds):
                    total = sums.setdefault(int(kind), [0.0, 0.0])
                    total[0] += float(error[kinds == kind].sum())
                    total[1] += float((kinds == kind).sum())
        pixels, error_sum = sum(t[1] for t in sums.values()), sum(t[0] for t in sums.values())
        results[cam.name] = {SURFACES[k]: {"abs_rel": t[0] / t[1], "pixels": t[1] / pixels, "error": t[0] / error_sum}
                             for k, t in sorted(sums.items(), key=lambda kv: -kv[1][0])}
    return results


def format_surfaces(results: dict[str, dict[str, dict]]) -> str:
    lines = ["| camera | surface | abs_rel | share of pixels | share of the error |", "|---|---|---|---|---|"]
    for name, row in results.items():
        for surface, r in row.items():
            lines.append(f"| {name} | {surface} | {r['abs_rel']:.3f} | {r['pixels']:.0%} | {r['error']:.0%} |")
    return "\n".join(lines)


def format_table(results: dict[str, dict]) -> str:
    lines = ["| camera | " + " | ".join(MODES) + " |", "|---|" + "---|" * len(MODES)]
    for name, row in results.items():
        lines.append(f"| {name} | " + " | ".join(f"{row[m]:.3f}" for m in MODES) + " |")
    return "\n".join(lines)


def run_benchmark(model: Path | None, backend: str, output: Path, sequences: int, frames: int,
                  workers: int = 2, native_aspect: bool = False, by_surface: bool = False,
                  first_seed: int = FIRST_SEED) -> dict:
    """Render (once) and score. ``native_aspect``: run a checkpoint on PyTorch at an input size of each
    camera's aspect (to measure keeping the aspect instead of squashing it). ``by_surface``: also the
    median-scaled error per surface the renderer drew. ``first_seed``: another seed gives another unseen world
    (to choose between models without choosing on the benchmark's own drives)."""
    folders = render_world(output, sequences, frames, workers, first_seed)
    predictor = Predictor(model, backend)
    if native_aspect and predictor.backend.name != "torch":
        raise ValueError("--native-aspect runs the network at other sizes: use --backend torch")
    results = score(predictor, folders, native_aspect)
    print(format_table(results))
    report: dict = {"model": str(predictor.model_path), "native_aspect": native_aspect, "first_seed": first_seed,
                    "cameras": results}
    if by_surface:
        surfaces = error_by_surface(predictor, folders)
        print(format_surfaces(surfaces))
        report["surfaces"] = surfaces
    return report
