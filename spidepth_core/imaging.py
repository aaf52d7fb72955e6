"""Image files and resampling for the runtime, on Pillow (a few MB, where OpenCV is 176 MB).

Decoding follows what camera drivers and OpenCV give: 8-bit RGB, the EXIF orientation applied, 16-bit
images brought to 8 bits by their high byte, alpha dropped. Resampling is NumPy: downsizing averages the
area each output pixel covers (as OpenCV's INTER_AREA does, which training used), and depth is resized
bilinearly between pixel centres (OpenCV's INTER_LINEAR).
"""
from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError


def decode(raw: bytes) -> np.ndarray:
    """PNG/JPEG bytes -> HxWx3 uint8 RGB; raises ValueError when they are not a readable image."""
    try:
        with Image.open(io.BytesIO(raw)) as img:
            img = ImageOps.exif_transpose(img)
            if _sixteen_bit(img):
                high = (np.asarray(img, np.uint32) >> 8).astype(np.uint8)
                return np.repeat(high[..., None], 3, axis=2)
            return np.array(img.convert("RGB"), np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"cannot decode the image ({len(raw)} bytes): {exc}") from None


def read_uint16(path: str | Path) -> np.ndarray | None:
    """A single-channel 16-bit PNG as HxW uint16, or None when the file is something else."""
    try:
        with Image.open(path) as img:
            return np.array(img, np.uint16) if _sixteen_bit(img) else None
    except (UnidentifiedImageError, OSError):
        return None


def _sixteen_bit(img: Image.Image) -> bool:
    """A 16-bit single-channel PNG: mode I;16 (older Pillow opens it as I)."""
    return img.mode.startswith("I;16") or (img.mode == "I" and img.format == "PNG")


def write_png(path: str | Path, image: np.ndarray) -> None:
    """HxWx3 uint8 RGB or HxW uint16 (e.g. depth in millimetres) -> a PNG file."""
    if (image.dtype == np.uint16 and image.ndim == 2) or (image.dtype == np.uint8 and image.shape[2:] == (3,)):
        Image.fromarray(np.ascontiguousarray(image)).save(path, format="PNG")
    else:
        raise ValueError(f"write_png takes HxWx3 uint8 or HxW uint16, got {image.shape} {image.dtype}")


def resize_area(rgb: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """HxWxC uint8 brought to hw (height, width): each output pixel the mean of the input area it covers."""
    if rgb.shape[:2] == tuple(hw):
        return rgb
    out = _resample(_resample(rgb, 0, _area_taps(rgb.shape[0], hw[0])), 1, _area_taps(rgb.shape[1], hw[1]))
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def resize_nearest(rgb: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """HxWxC brought to hw by repeating pixels (for enlarging pictures without blur)."""
    if rgb.shape[:2] == tuple(hw):
        return rgb
    rows = (np.arange(hw[0]) * rgb.shape[0] // hw[0])[:, None]
    cols = (np.arange(hw[1]) * rgb.shape[1] // hw[1])[None, :]
    return rgb[rows, cols]


def resize_linear(channel: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """HxW float32 (depth, uncertainty) brought to hw by bilinear interpolation between pixel centres."""
    channel = np.ascontiguousarray(channel, dtype=np.float32)
    if channel.shape == tuple(hw):
        return channel
    out = _resample(_resample(channel, 0, _linear_taps(channel.shape[0], hw[0])), 1,
                    _linear_taps(channel.shape[1], hw[1]))
    return np.ascontiguousarray(out, dtype=np.float32)


Taps = tuple[np.ndarray, np.ndarray]  # (input indices [n_out, T], weights [n_out, T])


def _resample(x: np.ndarray, axis: int, taps: Taps) -> np.ndarray:
    """Each output line along ``axis`` is the weighted sum of the input lines its taps name."""
    index, weight = taps
    shape = [1] * x.ndim
    shape[axis] = -1
    out = np.take(x, index[:, 0], axis=axis) * weight[:, 0].reshape(shape)
    for t in range(1, index.shape[1]):
        out += np.take(x, index[:, t], axis=axis) * weight[:, t].reshape(shape)
    return out


@lru_cache(maxsize=32)
def _area_taps(n_in: int, n_out: int) -> Taps:
    """Output pixel k covers input [k s, (k+1) s), s = n_in / n_out: each input pixel weighs its overlap."""
    scale = n_in / n_out
    lo = np.arange(n_out) * scale
    first = np.floor(lo).astype(np.int64)
    count = int((np.ceil(lo + scale - 1e-9) - first).max())  # input pixels the widest output pixel touches
    index = first[:, None] + np.arange(count)[None, :]
    overlap = np.minimum(lo[:, None] + scale, index + 1) - np.maximum(lo[:, None], index)
    weight = np.clip(overlap, 0, None) / scale
    weight[index >= n_in] = 0.0
    return np.minimum(index, n_in - 1), weight.astype(np.float32)


@lru_cache(maxsize=32)
def _linear_taps(n_in: int, n_out: int) -> Taps:
    """Output pixel centre k + 0.5 sits at input (k + 0.5) n_in / n_out; clamped at the edges."""
    pos = np.clip((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0, n_in - 1)
    left = np.floor(pos).astype(np.int64)
    frac = (pos - left).astype(np.float32)
    index = np.stack([left, np.minimum(left + 1, n_in - 1)], axis=1)
    return index, np.stack([1 - frac, frac], axis=1)
