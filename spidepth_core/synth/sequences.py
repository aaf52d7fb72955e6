"""Write synthetic sequences as image folders (with GT depth and poses) and as rosbag2 recordings."""
from __future__ import annotations

from dataclasses import dataclass, replace
from multiprocessing import get_context
from pathlib import Path

import cv2
import numpy as np
import yaml
from tqdm import tqdm

from .camera import Camera, Look, random_camera, random_look
from .world import FPS, StreetWorld, camera_path, render

STEREO_BASELINE = 0.54  # metres, KITTI's; the right camera sits at +x in the camera frame


def right_camera(pose: np.ndarray, baseline: float = STEREO_BASELINE) -> np.ndarray:
    shift = np.eye(4)
    shift[0, 3] = baseline
    return pose @ shift


@dataclass(frozen=True)
class Scene:
    """What a sequence is rendered with besides its seed: the camera (None: KITTI's intrinsics at a car's
    height, or with ``variety`` one drawn per sequence), the world's ``variety`` (more objects, wall families
    and road surfaces, a coloured sun, and a sensor look: white balance, exposure, noise, blur, JPEG) and its
    ``style`` and ``street_road`` (see StreetWorld)."""

    camera: Camera | None = None
    variety: bool = False
    style: str = "street"
    street_road: bool = False

    def camera_for(self, seed: int, mount_height: float | None = None) -> Camera:
        camera = self.camera
        if camera is None:
            camera = random_camera(np.random.default_rng(seed + 5_000_011)) if self.variety else Camera()
        return replace(camera, mount=mount_height) if mount_height is not None else camera

    def look_for(self, seed: int) -> Look | None:
        return random_look(np.random.default_rng(seed + 5_000_021)) if self.variety else None

    def world(self, seed: int, frames: int) -> StreetWorld:
        return StreetWorld(seed, length=frames * 1.3 + 50, variety=self.variety, style=self.style,
                           street_road=self.street_road)

    def to_dict(self, seed: int, mount_height: float | None) -> dict:
        scene = {"camera": self.camera_for(seed, mount_height).to_dict(), "variety": self.variety, "style": self.style}
        return {**scene, "street_road": True} if self.street_road else scene  # folders from before it still match


def render_sequence(seed: int, frames: int, height: int, width: int, stops: bool = False,
                    mount_height: float | None = None, scene: Scene = Scene()):
    """Yields (rgb, depth, pose) for each frame of the sequence ``seed`` (``mount_height``: see camera_path;
    it overrides the scene camera's)."""
    camera, look = scene.camera_for(seed, mount_height), scene.look_for(seed)
    world = scene.world(seed, frames)
    K = camera.K(height, width)
    noise = np.random.default_rng(seed + 5_000_031)
    for pose in camera_path(seed, frames, stops, camera.mount, camera.pitch, camera.roll):
        rgb, depth = render(world, pose, K, height, width)
        yield (rgb if look is None else look.apply(rgb, noise)), depth, pose


def write_right_views(out: Path, seed: int, poses: np.ndarray, height: int, width: int,
                      scene: Scene = Scene(), mount_height: float | None = None) -> None:
    """right/NNNNNN.png: the stereo partner of each frame, ``STEREO_BASELINE`` to the right."""
    world = scene.world(seed, len(poses))
    K = scene.camera_for(seed, mount_height).K(height, width)
    look, noise = scene.look_for(seed), np.random.default_rng(seed + 5_000_041)
    (out / "right").mkdir(exist_ok=True)
    for i, pose in enumerate(poses):
        rgb, _ = render(world, right_camera(pose), K, height, width)
        rgb = rgb if look is None else look.apply(rgb, noise)
        cv2.imwrite(str(out / "right" / f"{i:06d}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def write_sequence(out_dir: str | Path, seed: int, frames: int, height: int, width: int,
                   stops: bool = False, stereo: bool = False, mount_height: float | None = None,
                   scene: Scene = Scene()) -> Path:
    """Folder layout of ``data.folder``: PNG frames, depth/*.npy (float16 metres), intrinsics.yaml, poses.txt."""
    out = Path(out_dir)
    if (out / ".complete").is_file():
        _check_mount(out, mount_height)
        _check_scene(out, scene.to_dict(seed, mount_height))
        return out
    (out / "depth").mkdir(parents=True, exist_ok=True)
    camera = scene.camera_for(seed, mount_height)
    K = camera.K(height, width)
    poses = []
    for i, (rgb, depth, pose) in enumerate(render_sequence(seed, frames, height, width, stops, mount_height,
                                                           scene)):
        cv2.imwrite(str(out / f"{i:06d}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        np.save(out / "depth" / f"{i:06d}.npy", depth.astype(np.float16))
        poses.append(pose[:3].reshape(-1))
    np.savetxt(out / "poses.txt", np.array(poses), fmt="%.6f")
    if stereo:
        path = camera_path(seed, frames, stops, camera.mount, camera.pitch, camera.roll)
        write_right_views(out, seed, path, height, width, scene, mount_height)
    intr = dict(fx=float(K[0, 0]), fy=float(K[1, 1]), cx=float(K[0, 2]), cy=float(K[1, 2]),
                width=width, height=height, fps=FPS, seed=seed,
                stereo_baseline=STEREO_BASELINE if stereo else None, mount_height=mount_height,
                scene=scene.to_dict(seed, mount_height))
    (out / "intrinsics.yaml").write_text(yaml.safe_dump(intr, sort_keys=False))
    (out / ".complete").touch()
    return out


def _check_mount(out: Path, mount_height: float | None) -> None:
    """A finished folder is reused only if it was rendered from the same camera height."""
    stored = yaml.safe_load((out / "intrinsics.yaml").read_text()).get("mount_height")
    if stored != mount_height:
        raise ValueError(f"{out} was rendered with the camera at mount_height={stored}, not {mount_height}; "
                         "write to another folder")


def _check_scene(out: Path, scene: dict) -> None:
    stored = yaml.safe_load((out / "intrinsics.yaml").read_text()).get("scene", Scene().to_dict(0, None))
    if stored != scene:
        raise ValueError(f"{out} was rendered with another camera or world ({stored}, not {scene}); "
                         "write to another folder")


def _write_one(args) -> Path:
    return write_sequence(*args)


def generate(out_root: str | Path, seeds: list[int], frames: int, height: int, width: int,
             workers: int = 2, stops: bool = False, stereo: bool = False,
             mount_height: float | None = None, scene: Scene = Scene()) -> list[Path]:
    """One folder per seed (``seq_<seed>``), rendered in parallel; already complete folders are kept."""
    root = Path(out_root)
    jobs = [(root / f"seq_{s:04d}", s, frames, height, width, stops, stereo, mount_height, scene) for s in seeds]
    if workers <= 1 or len(jobs) == 1:
        return [_write_one(j) for j in tqdm(jobs, desc="rendering sequences", unit="seq")]
    with get_context("spawn").Pool(min(workers, len(jobs))) as pool:
        return list(tqdm(pool.imap(_write_one, jobs), total=len(jobs), desc="rendering sequences", unit="seq"))
