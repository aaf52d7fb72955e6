"""Intrinsics YAML: either {fx, fy, cx, cy[, width, height]} or a ROS camera_info YAML."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from ..geometry import intrinsics_matrix, valid_intrinsics


def load_intrinsics(path: str | Path) -> tuple[np.ndarray, tuple[int, int] | None]:
    """Returns (K 3x3 in pixels, (height, width) the K refers to, or None if not stated)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"intrinsics file not found: {path}")
    d = yaml.safe_load(path.read_text()) or {}
    if "camera_matrix" in d:  # camera_calibration / camera_info_manager format
        K = np.asarray(d["camera_matrix"]["data"], dtype=np.float64).reshape(3, 3)
        size = (int(d["image_height"]), int(d["image_width"])) if "image_height" in d else None
    elif all(k in d for k in ("fx", "fy", "cx", "cy")):
        K = intrinsics_matrix(float(d["fx"]), float(d["fy"]), float(d["cx"]), float(d["cy"]))
        size = (int(d["height"]), int(d["width"])) if "height" in d and "width" in d else None
    else:
        raise ValueError(f"{path}: need fx, fy, cx, cy (and width, height) or a camera_info YAML")
    check_intrinsics(K, str(path))
    return K, size


def check_intrinsics(K: np.ndarray, where: str = "intrinsics") -> None:
    if not valid_intrinsics(K):
        raise ValueError(f"{where}: focal lengths must be finite and positive, got K={K.tolist()}")
