"""Cityscapes training triplets, preprocessed as ManyDepth and SfMLearner write them.

Layout: ROOT/<city>/<frame>.jpg is three frames side by side (t-1 | t | t+1), each already cut to
the top 75% of the image (the ego car removed), 1024x384 by default; ROOT/<city>/<frame>_cam.txt
holds that frame's 3x3 K in pixels, nine comma-separated numbers, row by row. Cities have their
own cameras, so K is read per triplet. Split lines: "<city> <frame>".
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..pinhole import valid_intrinsics
from .folder import read_rgb
from .splits import read_split_lines

TRIPLET_IDS = (0, -1, 1)


def _city_line(parts: list[str]) -> tuple[str, str] | None:
    return (parts[0], parts[1]) if len(parts) == 2 and parts[1].startswith(parts[0] + "_") else None


def read_split(path: str | Path) -> list[tuple[str, str]]:
    """[(city, frame)]; raises on malformed lines, naming the line."""
    rows = read_split_lines(path, _city_line, "<city> <city>_<seq>_<frame>")
    if not rows:
        raise ValueError(f"split file {path} lists no frames")
    return rows


def read_cam(path: Path) -> np.ndarray:
    """3x3 K from a preprocessed *_cam.txt."""
    if not path.is_file():
        raise FileNotFoundError(f"intrinsics file not found: {path}")
    try:
        values = np.array([float(v) for v in path.read_text().replace(",", " ").split()])
    except ValueError as exc:
        raise ValueError(f"{path}: not a list of numbers ({exc})") from None
    if values.size != 9 or not valid_intrinsics(values.reshape(3, 3)):
        raise ValueError(f"{path}: expected 9 numbers (3x3 K, fx and fy > 0), got {values.tolist()}")
    return values.reshape(3, 3)


class CityscapesTriplet:
    """One preprocessed triplet as a 3-frame Sequence: frame 0 = t-1, 1 = t, 2 = t+1."""

    def __init__(self, root: Path, city: str, frame: str, size: tuple[int, int] | None) -> None:
        self.image_path = root / city / f"{frame}.jpg"
        self.cam_path = root / city / f"{frame}_cam.txt"
        self._size = size
        self._K: np.ndarray | None = None
        self._frames: list[np.ndarray] | None = None

    @property
    def K(self) -> np.ndarray:
        if self._K is None:
            self._K = read_cam(self.cam_path)
        return self._K

    @property
    def size(self) -> tuple[int, int]:
        if self._size is None:
            self._size = self._split()[0].shape[:2]
        return self._size

    def __len__(self) -> int:
        return 3

    def _split(self) -> list[np.ndarray]:
        if self._frames is None:
            if not self.image_path.is_file():
                raise FileNotFoundError(f"triplet image not found: {self.image_path}")
            wide = read_rgb(self.image_path)
            h, w3 = wide.shape[:2]
            if w3 % 3:
                raise ValueError(f"{self.image_path} is {w3} wide: not three frames side by side")
            w = w3 // 3
            if self._size is not None and (h, w) != tuple(self._size):
                raise ValueError(f"{self.image_path} holds {w}x{h} frames, expected {self._size[1]}x{self._size[0]}")
            self._frames = [wide[:, i * w:(i + 1) * w] for i in range(3)]
        return self._frames

    def image(self, i: int) -> np.ndarray:
        frames = self._split()
        self._frames = None if i == 2 else frames  # keep the decoded triplet for the next frame only
        return frames[i]

    def depth(self, i: int) -> None:
        return None

    def stereo(self, i: int) -> None:
        return None


def cityscapes_dataset_parts(root: str | Path, split: str | Path,
                             frame_ids=TRIPLET_IDS, stride: int = 1) -> tuple[list, list[tuple[int, int]]]:
    """(sequences, indices) for TripletDataset: every listed triplet with its own K."""
    if tuple(frame_ids) != TRIPLET_IDS or stride != 1:
        raise ValueError(f"Cityscapes triplets hold frames {list(TRIPLET_IDS)} with stride 1; "
                         f"got frame_ids {list(frame_ids)}, stride {stride}")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"Cityscapes root not found: {root}")
    rows = read_split(split)
    first = CityscapesTriplet(root, *rows[0], None)
    size = first.size  # every triplet must match the first
    sequences = [first] + [CityscapesTriplet(root, city, frame, size) for city, frame in rows[1:]]
    return sequences, [(i, 1) for i in range(len(sequences))]
