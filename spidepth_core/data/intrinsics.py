"""Intrinsics YAML: either {fx, fy, cx, cy[, width, height]} or a ROS camera_info YAML."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import first_line
from ..pinhole import intrinsics_matrix, valid_intrinsics
from ..yaml_file import read_yaml


def load_intrinsics(path: str | Path) -> tuple[np.ndarray, tuple[int, int] | None]:
    """Returns (K 3x3 in pixels, (height, width) the K refers to, or None if not stated)."""
    path = Path(path)
    d = read_yaml(path, "intrinsics file") or {}
    try:
        K, size = _parse(d)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"intrinsics file {path}: need fx, fy, cx, cy (and width, height) or a camera_info "
                         f"YAML with camera_matrix ({first_line(exc)})") from None
    check_intrinsics(K, str(path))
    if size is not None and min(size) < 1:
        raise ValueError(f"intrinsics file {path}: width and height must be >= 1, got {size[1]}x{size[0]}")
    return K, size


def _parse(d: dict) -> tuple[np.ndarray, tuple[int, int] | None]:
    if "camera_matrix" in d:  # camera_calibration / camera_info_manager format
        K = np.asarray(d["camera_matrix"]["data"], dtype=np.float64).reshape(3, 3)
        return K, ((int(d["image_height"]), int(d["image_width"])) if "image_height" in d else None)
    if not all(k in d for k in ("fx", "fy", "cx", "cy")):
        raise KeyError("fx, fy, cx, cy")
    K = intrinsics_matrix(float(d["fx"]), float(d["fy"]), float(d["cx"]), float(d["cy"]))
    return K, ((int(d["height"]), int(d["width"])) if "height" in d and "width" in d else None)


def check_intrinsics(K: np.ndarray, where: str = "intrinsics") -> None:
    if not valid_intrinsics(K):
        raise ValueError(f"{where}: focal lengths must be finite and positive, got K={K.tolist()}")
