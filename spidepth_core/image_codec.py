"""Raw camera buffers (sensor_msgs/Image fields, from rclpy or rosbags) -> RGB uint8. No ROS imports."""
from __future__ import annotations

import numpy as np

from .imaging import decode

CHANNELS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1, "mono16": 1, "8UC3": 3, "8UC1": 1}
# A 4096x3072 (12.6 MP) camera and anything smaller; such a frame decodes to 38 MB of RGB. Larger images are
# refused (compressed ones from their header, before decoding).
MAX_PIXELS = 4096 * 3072


def raw_to_rgb(encoding: str, height: int, width: int, step: int, data, is_bigendian: int = 0,
               max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Image fields -> HxWx3 uint8 RGB; raises ValueError naming what is wrong."""
    if encoding not in CHANNELS:
        raise ValueError(f"unsupported encoding {encoding!r}; supported: {', '.join(CHANNELS)}")
    h, w = height, width
    if h == 0 or w == 0:
        raise ValueError(f"empty image ({w}x{h})")
    if h * w > max_pixels:
        raise ValueError(f"image {w}x{h} exceeds the {max_pixels} pixel limit")
    rows = _pixel_rows(data, h, w, step, w * CHANNELS[encoding] * (2 if encoding == "mono16" else 1),
                       f"{encoding} with step {step}", "data length")
    if encoding == "mono16":
        px = rows.copy().view(">u2" if is_bigendian else "<u2").reshape(h, w)
        return np.repeat((px >> 8).astype(np.uint8)[..., None], 3, axis=2)
    img = rows.reshape(h, w, CHANNELS[encoding])
    if CHANNELS[encoding] == 1:
        return np.repeat(img, 3, axis=2)
    if encoding in ("bgr8", "bgra8"):
        return np.ascontiguousarray(img[..., 2::-1])
    return np.ascontiguousarray(img[..., :3])


def _pixel_rows(data, height: int, width: int, step: int, row: int, what: str, label: str) -> np.ndarray:
    """An Image's data as [height, row] bytes (padding after ``row`` dropped); raises when the length is wrong."""
    buf = np.frombuffer(data if isinstance(data, (bytes, bytearray, memoryview)) else bytes(data), np.uint8) \
        if not isinstance(data, np.ndarray) else data.astype(np.uint8, copy=False).reshape(-1)
    if step < row or buf.size != step * height:
        raise ValueError(f"{label} {buf.size} does not match {width}x{height} {what}")
    return buf.reshape(height, step)[:, :row]


def compressed_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG IHDR or JPEG SOF header, without decoding the pixels."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and len(data) >= 24:
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data[:2] == b"\xff\xd8":
        return _jpeg_size(data)
    raise ValueError(f"compressed image is neither PNG nor JPEG (starts with {data[:8]!r})")


_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_size(data: bytes) -> tuple[int, int]:
    """Walk the JPEG marker segments up to the frame header (SOF)."""
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            break
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:  # markers without a length
            i += 2
            continue
        length = int.from_bytes(data[i + 2:i + 4], "big")
        if marker in _JPEG_SOF and i + 9 <= len(data):
            h, w = int.from_bytes(data[i + 5:i + 7], "big"), int.from_bytes(data[i + 7:i + 9], "big")
            if h and w:
                return w, h
            break
        if marker == 0xDA or length < 2:  # scan data before any frame header
            break
        i += 2 + length
    raise ValueError("cannot read the size of the JPEG image (no frame header)")


def compressed_to_rgb(data, fmt: str = "", max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """JPEG/PNG bytes -> HxWx3 uint8 RGB; the size is checked against ``max_pixels`` before decoding."""
    raw = data.tobytes() if isinstance(data, np.ndarray) else bytes(data)
    if not raw:
        raise ValueError(f"empty compressed image (format {fmt!r})")
    w, h = compressed_size(raw)
    if w * h > max_pixels:
        raise ValueError(f"compressed image {w}x{h} exceeds the {max_pixels} pixel limit (not decoded)")
    try:
        return decode(raw)
    except ValueError as exc:
        raise ValueError(f"cannot decode compressed image (format {fmt!r}): {exc}") from None


def message_to_rgb(msg, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """An Image or CompressedImage message (any library's) -> RGB."""
    if hasattr(msg, "format"):
        return compressed_to_rgb(msg.data, msg.format, max_pixels)
    return raw_to_rgb(msg.encoding, msg.height, msg.width, msg.step, msg.data, msg.is_bigendian, max_pixels)


def depth_to_metres(encoding: str, height: int, width: int, step: int, data, is_bigendian: int = 0) -> np.ndarray:
    """A depth Image's fields -> HxW float32 metres, 0 where invalid: 16UC1 in millimetres (0 invalid) or
    32FC1 in metres (NaN, inf or <= 0 invalid), as RGB-D drivers publish them."""
    sizes = {"16UC1": 2, "mono16": 2, "32FC1": 4}
    if encoding not in sizes:
        raise ValueError(f"depth encoding {encoding!r}: use 16UC1 (millimetres) or 32FC1 (metres)")
    rows = _pixel_rows(data, height, width, step, width * sizes[encoding], f"{encoding} with step {step}",
                       "depth data length").copy()
    if sizes[encoding] == 2:
        return (rows.view(">u2" if is_bigendian else "<u2").reshape(height, width) / 1000.0).astype(np.float32)
    metres = rows.view(">f4" if is_bigendian else "<f4").reshape(height, width).astype(np.float32)
    return np.where(np.isfinite(metres) & (metres > 0), metres, 0.0).astype(np.float32)
