"""Evaluation sets: (image RGB uint8, GT depth metres) pairs in each benchmark's released layout."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from .cityscapes import read_split as read_city_split
from .folder import read_rgb
from .kitti import image_path, read_split


def kitti_eigen(root: str | Path, split: str | Path, gt: str | Path) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Eigen test frames with the gt_depths.npz written by ``spidepth export-gt``."""
    rows = read_split(split)
    if not Path(gt).is_file():
        raise FileNotFoundError(f"{gt} not found: make it with `spidepth export-gt`")
    depths = np.load(gt)
    if len(depths.files) != len(rows):
        raise ValueError(f"{gt} holds {len(depths.files)} depth maps but {split} lists {len(rows)} frames")
    for i, (drive, frame, side) in enumerate(rows):
        yield read_rgb(image_path(Path(root), drive, frame, side)), depths[str(i)]


def cityscapes(root: str | Path, split: str | Path | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """ROOT/leftImg8bit/test/<city>/<frame>_leftImg8bit.png with ROOT/gt_depths/NNN_depth.npy.

    The n-th GT file belongs to the n-th line ("<city> <frame>") of the split file (ManyDepth's
    splits/cityscapes/test_files.txt); without a split the images are taken in sorted order."""
    root = Path(root)
    if split:
        images = [root / "leftImg8bit" / "test" / city / f"{frame}_leftImg8bit.png"
                  for city, frame in read_city_split(split)]
    else:
        images = sorted((root / "leftImg8bit" / "test").glob("*/*.png"))
    if not images:
        raise FileNotFoundError(f"no images under {root / 'leftImg8bit' / 'test'}")
    for i, path in enumerate(images):
        gt = root / "gt_depths" / f"{i:03d}_depth.npy"
        if not path.is_file():
            raise FileNotFoundError(f"test image not found: {path}")
        if not gt.is_file():
            raise FileNotFoundError(f"ground truth {gt} missing for {path.name}")
        yield read_rgb(path), np.load(gt).astype(np.float32)


def make3d(root: str | Path) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """ROOT/Test134/img-*.jpg with ROOT/Gridlaserdata/depth_sph_corr-*.mat (Position3DGrid[..., 3])."""
    from scipy.io import loadmat
    root = Path(root)
    images = sorted((root / "Test134").glob("img-*.jpg"))
    if not images:
        raise FileNotFoundError(f"no Make3D images under {root / 'Test134'}")
    for path in images:
        mat = root / "Gridlaserdata" / f"depth_sph_corr-{path.stem[4:]}.mat"
        if not mat.is_file():
            raise FileNotFoundError(f"ground truth {mat} missing for {path.name}")
        yield read_rgb(path), loadmat(str(mat))["Position3DGrid"][:, :, 3].astype(np.float32)
