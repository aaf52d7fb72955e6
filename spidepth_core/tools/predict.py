"""``spidepth predict``: depth PNG (uint16 mm), .npy (metres) and a colour preview per image."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..data.folder import list_images, read_rgb
from ..data.intrinsics import load_intrinsics
from ..image_codec import MAX_PIXELS
from ..imaging import write_png
from ..inference import Predictor
from ..inference.predictor import NO_UNCERTAINTY
from ..pinhole import resize_intrinsics
from ..pipeline import DepthPolicy, fallback_intrinsics
from ..viz import preview


def write_depth(out_dir: Path, stem: str, depth: np.ndarray, image: np.ndarray | None = None,
                uncertainty: np.ndarray | None = None) -> None:
    """<stem>_depth.png (uint16 mm, 0 = invalid), <stem>_depth.npy, <stem>_preview.png (camera above depth,
    960 px wide, with a colour bar in metres), and <stem>_uncertainty.npy (metres) when given."""
    out_dir.mkdir(parents=True, exist_ok=True)
    mm = np.where(np.isfinite(depth), np.clip(depth * 1000.0, 0, 65535), 0).astype(np.uint16)
    write_png(out_dir / f"{stem}_depth.png", mm)
    np.save(out_dir / f"{stem}_depth.npy", depth.astype(np.float32))
    if uncertainty is not None:
        np.save(out_dir / f"{stem}_uncertainty.npy", uncertainty.astype(np.float32))
    picture = preview(image, depth)
    write_png(out_dir / f"{stem}_preview.png", picture)


def predict_path(input_path: str | Path, output: str | Path, model: str | None = None,
                 backend: str = "auto", policy: DepthPolicy | None = None,
                 intrinsics: str | None = None, uncertainty: bool = False,
                 max_pixels: int = MAX_PIXELS) -> tuple[int, list[tuple[Path, str]]]:
    """Depth for one image or every image of a folder (in name order), with the node's scale and range
    ``policy`` (default: unscaled, unmasked). ``intrinsics``: a YAML for the camera_height policy's ground
    fit (default: KITTI's normalised intrinsics). ``uncertainty``: also write each pixel's uncertainty.
    Images that cannot be read or exceed ``max_pixels`` (checked from the file's header, before decoding) are
    skipped: returns (images written, [(skipped image, reason)]); a single image raises instead."""
    src = Path(input_path)
    if src.is_dir():
        files = list_images(src)
        if not files:
            raise ValueError(f"no images in {src}")
    elif src.is_file():
        files = [src]
    else:
        raise FileNotFoundError(f"input not found: {src}")
    predictor = Predictor(model, backend)
    policy = policy or DepthPolicy(min_depth=0.0, max_depth=float("inf"))
    K_file = load_intrinsics(intrinsics) if intrinsics else None
    out = Path(output)
    skipped: list[tuple[Path, str]] = []
    for path in tqdm(files, desc="predict", unit="img", disable=len(files) < 2):
        try:
            image = read_rgb(path, max_pixels)
        except ValueError as exc:
            if src.is_file():
                raise
            skipped.append((path, str(exc)))
            continue
        K = fallback_intrinsics(image.shape[:2]) if K_file is None else _for_size(K_file, image.shape[:2])
        result = policy.run(predictor, image, K, uncertainty)
        if uncertainty and result.uncertainty is None:
            raise ValueError(f"{predictor.model_path} {NO_UNCERTAINTY}")
        write_depth(out, path.stem, result.depth, image, result.uncertainty)
    return len(files) - len(skipped), skipped


def _for_size(calibration: tuple[np.ndarray, tuple[int, int] | None], hw: tuple[int, int]) -> np.ndarray:
    """A calibration's K for images of size hw (scaled when the calibration states another size)."""
    K, size = calibration
    return K if size is None else resize_intrinsics(K, size, hw)
