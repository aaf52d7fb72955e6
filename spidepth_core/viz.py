"""Colour maps and readable previews for depth."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .imaging import resize_area, resize_nearest

PREVIEW_WIDTH = 960  # pixels: previews are scaled to this width so that they can be judged by eye
BAR_HEIGHT = 44


def depth_limits(depth: np.ndarray) -> tuple[float, float] | None:
    """(near, far) metres that a preview spans: the 5th and 95th percentiles of inverse depth."""
    valid = np.isfinite(depth) & (depth > 0)
    if not valid.any():
        return None
    inv = 1.0 / depth[valid]
    return 1.0 / float(np.percentile(inv, 95)), 1.0 / float(np.percentile(inv, 5))


@lru_cache(maxsize=1)
def _magma() -> np.ndarray:
    """The magma colour map (van der Walt and Smith, CC0) as 256 RGB entries, dark to bright."""
    return np.load(Path(__file__).parent / "assets" / "magma.npy")


def _colormap(norm: np.ndarray) -> np.ndarray:
    return _magma()[(np.clip(norm, 0, 1) * 255).astype(np.uint8)]


def colorize_depth(depth: np.ndarray, vmin: float | None = None, vmax: float | None = None) -> np.ndarray:
    """depth HxW metres -> HxWx3 uint8 RGB, linear in inverse depth (near = bright). NaN / non-positive ->
    black. ``vmin``/``vmax`` (metres) fix the range; by default it follows ``depth_limits``."""
    valid = np.isfinite(depth) & (depth > 0)
    limits = depth_limits(depth)
    if limits is None:
        return np.zeros((*depth.shape, 3), np.uint8)
    near, far = vmin or limits[0], vmax or limits[1]
    inv = np.zeros_like(depth, dtype=np.float32)
    inv[valid] = 1.0 / depth[valid]
    norm = (inv - 1.0 / far) / max(1.0 / near - 1.0 / far, 1e-9)
    rgb = _colormap(norm)
    rgb[~valid] = 0
    return rgb


def colour_bar(width: int, near: float, far: float) -> np.ndarray:
    """A BAR_HEIGHT x width strip: the colour scale from far (left) to near (right), labelled in metres."""
    strip = np.zeros((BAR_HEIGHT, width, 3), np.uint8)
    strip[:BAR_HEIGHT // 2] = _colormap(np.linspace(0, 1, width)[None, :])
    picture = Image.fromarray(strip)
    draw, font = ImageDraw.Draw(picture), _label_font()
    for frac in np.linspace(0, 1, 5):
        inv = 1.0 / far + frac * (1.0 / near - 1.0 / far)
        x = int(round(frac * (width - 1)))
        label = f"{1.0 / inv:.1f} m"
        left, top, right, bottom = draw.textbbox((0, 0), label, font=font)
        tw = right - left
        draw.text((min(max(x - tw // 2, 0), width - tw) - left, BAR_HEIGHT - 6 - bottom), label,
                  fill=(255, 255, 255), font=font)
    return np.asarray(picture).copy()


def _label_font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's own font at 13 px (Pillow >= 10.1), or its older bitmap font (e.g. Ubuntu 22.04's Pillow 9)."""
    try:
        return ImageFont.load_default(size=13)
    except TypeError:
        return ImageFont.load_default()


def preview(image: np.ndarray | None, depth: np.ndarray, gt: np.ndarray | None = None,
            width: int = PREVIEW_WIDTH) -> np.ndarray:
    """Camera image above coloured depth (and ground truth, same colours), scaled to ``width``, with a
    colour bar in metres: an RGB uint8 picture."""
    limits = depth_limits(gt if gt is not None else depth) or (1.0, 2.0)
    height = int(round(depth.shape[0] * width / depth.shape[1]))

    def fit(rgb: np.ndarray) -> np.ndarray:
        return (resize_area if rgb.shape[1] > width else resize_nearest)(rgb, (height, width))

    panels = [] if image is None else [fit(image)]
    panels.append(fit(colorize_depth(depth, *limits)))
    if gt is not None:
        panels.append(fit(colorize_depth(np.where(gt > 0, gt, np.nan), *limits)))
    return np.concatenate([*panels, colour_bar(width, *limits)], axis=0)
