"""Ordered image folders (and videos decoded into them) as training sequences.

Layout of one sequence folder:
  000000.png, 000001.png, ...      frames in name order (png / jpg / jpeg)
  intrinsics.yaml                   optional, overrides the global intrinsics file
  depth/000000.npy | .png           optional ground truth (metres, or uint16 millimetres)
  right/000000.png                  optional stereo partner (same names)
  poses.txt                         optional true camera poses: a 3x4 camera-to-world matrix per frame
A dataset root is either one sequence folder or a folder of sequence folders.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..image_codec import MAX_PIXELS, compressed_to_rgb
from ..imaging import read_uint16
from .intrinsics import load_intrinsics

IMAGE_EXTS = (".png", ".jpg", ".jpeg")


def _natural_key(path: Path) -> list:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", path.name)]


def list_images(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS and p.is_file()),
                  key=_natural_key)


def read_rgb(path: Path, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """A PNG or JPEG file -> HxWx3 uint8 RGB; its size is read from its header and checked against
    ``max_pixels`` before the pixels are decoded."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read image {path}: {exc.strerror or exc}") from None
    try:
        return compressed_to_rgb(data, Path(path).suffix, max_pixels)
    except ValueError as exc:
        raise ValueError(f"cannot read image {path}: {exc}") from None


def read_depth(path: Path) -> np.ndarray:
    if path.suffix == ".npy":
        return np.load(path).astype(np.float32)
    raw = read_uint16(path)
    if raw is None:
        raise ValueError(f"depth image {path} must be a 16-bit PNG in millimetres")
    return raw.astype(np.float32) / 1000.0


class FolderSequence:
    """One folder of ordered frames with intrinsics (see module docstring)."""

    def __init__(self, folder: str | Path, intrinsics: str | Path | None = None,
                 stereo_dir: str | None = None) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise FileNotFoundError(f"sequence folder not found: {self.folder}")
        self.files = list_images(self.folder)
        if not self.files:
            raise ValueError(f"no images ({', '.join(IMAGE_EXTS)}) in {self.folder}")
        first = read_rgb(self.files[0])
        self.size = first.shape[:2]
        local = self.folder / "intrinsics.yaml"
        source = local if local.is_file() else intrinsics
        if source is None:
            raise ValueError(f"{self.folder}: no intrinsics.yaml in the folder and no intrinsics file given")
        self.K, k_size = load_intrinsics(source)
        if k_size is not None and tuple(k_size) != tuple(self.size):
            raise ValueError(f"{source} is for {k_size[1]}x{k_size[0]} images but "
                             f"{self.files[0]} is {self.size[1]}x{self.size[0]}")
        self.depth_dir = self.folder / "depth"
        self.right_dir = self.folder / (stereo_dir or "right")
        self.has_stereo = stereo_dir is not None

    def __len__(self) -> int:
        return len(self.files)

    def image(self, i: int) -> np.ndarray:
        img = read_rgb(self.files[i])
        if img.shape[:2] != self.size:
            raise ValueError(f"{self.files[i]} is {img.shape[1]}x{img.shape[0]}, "
                             f"expected {self.size[1]}x{self.size[0]} like {self.files[0].name}")
        return img

    def depth(self, i: int) -> np.ndarray | None:
        stem = self.files[i].stem
        for ext in (".npy", ".png"):
            path = self.depth_dir / f"{stem}{ext}"
            if path.is_file():
                return read_depth(path)
        return None

    def stereo(self, i: int) -> np.ndarray | None:
        if not self.has_stereo:
            return None
        return read_rgb(self.right_dir / self.files[i].name)


def read_poses(folder: Path) -> np.ndarray:
    """Camera-to-world poses [N,4,4] from ``folder/poses.txt``."""
    path = folder / "poses.txt"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: this needs each sequence's true camera poses")
    rows = np.atleast_2d(np.loadtxt(path))
    if rows.shape[1] != 12:
        raise ValueError(f"{path}: expected 12 numbers per line (a 3x4 camera-to-world matrix), got {rows.shape[1]}")
    poses = np.tile(np.eye(4), (len(rows), 1, 1))
    poses[:, :3] = rows.reshape(-1, 3, 4)
    return poses


def find_sequences(root: str | Path, intrinsics: str | Path | None = None,
                   stereo_dir: str | None = None) -> list[FolderSequence]:
    """``root`` itself if it holds images, else each subfolder that does."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data folder not found: {root}")
    if list_images(root):
        return [FolderSequence(root, intrinsics, stereo_dir)]
    subs = [d for d in sorted(root.iterdir(), key=_natural_key) if d.is_dir() and list_images(d)]
    if not subs:
        raise ValueError(f"no images in {root} or in its subfolders")
    return [FolderSequence(d, intrinsics, stereo_dir) for d in subs]


def video_to_folder(video: str | Path, out_dir: str | Path, every: int = 1) -> Path:
    """Decode a video once into numbered PNGs (skipped if already decoded). Needs OpenCV (the training
    install)."""
    import cv2
    video, out_dir = Path(video), Path(out_dir)
    done = out_dir / ".complete"
    if done.is_file():
        return out_dir
    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        raise ValueError(f"cannot open video {video}")
    out_dir.mkdir(parents=True, exist_ok=True)
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    n = kept = 0
    with tqdm(total=total, desc=f"decoding {video.name}", unit="frame") as bar:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            if n % every == 0:
                cv2.imwrite(str(out_dir / f"{kept:06d}.png"), frame)
                kept += 1
            n += 1
            bar.update(1)
    cap.release()
    if kept == 0:
        raise ValueError(f"no frames decoded from {video}")
    done.touch()
    return out_dir
