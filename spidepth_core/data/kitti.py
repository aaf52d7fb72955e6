"""KITTI raw: split files, calibration, velodyne ground truth, training sequences.

Layout (as downloaded): ROOT/<date>/calib_cam_to_cam.txt, calib_velo_to_cam.txt and
ROOT/<date>/<drive>/image_02|image_03/data/<frame:010d>.png|.jpg, velodyne_points/data/<frame:010d>.bin
Split lines: "<date>/<drive> <frame> l|r".
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from ..pinhole import kitti_intrinsics
from .folder import read_rgb
from .splits import read_split_lines

log = logging.getLogger("spidepth.kitti")
STEREO_BASELINE = 0.54
SIDES = {"l": "image_02", "r": "image_03"}


def _kitti_line(parts: list[str]) -> tuple[str, int, str] | None:
    if len(parts) != 3 or not parts[1].lstrip("-").isdigit() or parts[2] not in SIDES:
        return None
    return parts[0], int(parts[1]), parts[2]


def read_split(path: str | Path) -> list[tuple[str, int, str]]:
    """[(drive folder, frame, side)]; raises on malformed lines, naming the line."""
    return read_split_lines(path, _kitti_line, "<date>/<drive> <frame> l|r")


def overlap(train: list[tuple[str, int, str]], test: list[tuple[str, int, str]]) -> int:
    """How many test frames (drive, frame) also appear in the training list."""
    seen = {(d, f) for d, f, _ in train}
    return sum((d, f) in seen for d, f, _ in test)


def warn_overlap(train_split: str | Path, test_split: str | Path) -> int:
    n = overlap(read_split(train_split), read_split(test_split))
    if n:
        log.warning("%d of the test frames in %s also appear in %s: results on them are not held out "
                    "(use the eigen_zhou split for training)", n, Path(test_split).name, Path(train_split).name)
    return n


def image_path(root: Path, drive: str, frame: int, side: str) -> Path:
    folder = root / drive / SIDES[side] / "data"
    for ext in (".png", ".jpg"):
        p = folder / f"{frame:010d}{ext}"
        if p.is_file():
            return p
    raise FileNotFoundError(f"KITTI image not found: {folder / f'{frame:010d}'}.png|.jpg")


def read_calib(path: Path) -> dict[str, np.ndarray]:
    out = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition(":")
        try:
            out[key] = np.array([float(v) for v in value.split()])
        except ValueError:
            continue  # e.g. calib_time
    return out


def velodyne_depth(calib_dir: Path, velo_file: Path, side: str = "l") -> np.ndarray:
    """Sparse depth (metres, 0 = none) from one velodyne scan projected into camera 2 or 3."""
    cam = read_calib(calib_dir / "calib_cam_to_cam.txt")
    velo = read_calib(calib_dir / "calib_velo_to_cam.txt")
    velo_to_cam = np.eye(4)
    velo_to_cam[:3, :3], velo_to_cam[:3, 3] = velo["R"].reshape(3, 3), velo["T"]
    rect = np.eye(4)
    rect[:3, :3] = cam["R_rect_00"].reshape(3, 3)
    idx = "02" if side == "l" else "03"
    P = cam[f"P_rect_{idx}"].reshape(3, 4)
    w, h = cam[f"S_rect_{idx}"].astype(int)
    points = np.fromfile(velo_file, dtype=np.float32).reshape(-1, 4).astype(np.float64)
    points = points[points[:, 0] >= 0]  # in front of the scanner
    points[:, 3] = 1.0
    img = (P @ rect @ velo_to_cam @ points.T).T
    uv = img[:, :2] / img[:, 2:3]
    depth = points[:, 0]  # the scanner's forward distance, as the benchmark's GT uses
    u, v = np.round(uv[:, 0]).astype(int) - 1, np.round(uv[:, 1]).astype(int) - 1
    ok = (u >= 0) & (v >= 0) & (u < w) & (v < h) & (depth > 0)
    out = np.zeros((h, w))
    order = np.argsort(-depth[ok])  # nearest written last, so it wins where points collide
    out[v[ok][order], u[ok][order]] = depth[ok][order]
    return out.astype(np.float32)


def export_gt(root: str | Path, split: str | Path, out: str | Path) -> int:
    """gt_depths.npz with one array per split line ('0', '1', ...) from the velodyne scans."""
    from tqdm import tqdm
    root = Path(root)
    arrays: dict[str, Any] = {}
    for i, (drive, frame, side) in enumerate(tqdm(read_split(split), desc="velodyne -> depth", unit="img")):
        velo = root / drive / "velodyne_points" / "data" / f"{frame:010d}.bin"
        if not velo.is_file():
            raise FileNotFoundError(f"velodyne scan not found: {velo}")
        arrays[str(i)] = velodyne_depth(root / drive.split("/")[0], velo, side)
    np.savez_compressed(out, **arrays)
    return len(arrays)


class KittiDrive:
    """One drive seen by one camera, as a Sequence (frames by number; stereo from the other camera)."""

    def __init__(self, root: Path, drive: str, side: str, stereo: bool) -> None:
        self.root, self.drive, self.side, self.use_stereo = root, drive, side, stereo
        first = read_rgb(self._path(0) if self._exists(0) else next((root / drive / SIDES[side] / "data").iterdir()))
        self.size = first.shape[:2]
        self.K = kitti_intrinsics(*self.size)  # the normalised K standard KITTI training uses
        self.count = len(list((root / drive / SIDES[side] / "data").iterdir()))
        self.stereo_sign = 1.0 if side == "l" else -1.0  # where the partner camera sits along x

    def _path(self, i: int, side: str | None = None) -> Path:
        return image_path(self.root, self.drive, i, side or self.side)

    def _exists(self, i: int) -> bool:
        try:
            self._path(i)
            return True
        except FileNotFoundError:
            return False

    def __len__(self) -> int:
        return self.count

    def image(self, i: int) -> np.ndarray:
        img = read_rgb(self._path(i))
        if img.shape[:2] != self.size:
            raise ValueError(f"{self._path(i)} is {img.shape[1]}x{img.shape[0]}, "
                             f"expected {self.size[1]}x{self.size[0]}")
        return img

    def depth(self, i: int):
        return None

    def stereo(self, i: int):
        return read_rgb(self._path(i, "r" if self.side == "l" else "l")) if self.use_stereo else None


def kitti_dataset_parts(root: str | Path, split: str | Path, stereo: bool) -> tuple[list, list[tuple[int, int]]]:
    """(sequences, indices) for TripletDataset from a training split; the right camera is a target too."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"KITTI root not found: {root}")
    seqs: dict[tuple[str, str], int] = {}
    sequences: list[KittiDrive] = []
    indices: list[tuple[int, int]] = []
    for drive, frame, side in read_split(split):
        key = (drive, side)
        if key not in seqs:
            seqs[key] = len(sequences)
            sequences.append(KittiDrive(root, drive, side, stereo))
        indices.append((seqs[key], frame))
    return sequences, indices
