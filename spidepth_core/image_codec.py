"""Raw camera buffers (sensor_msgs/Image fields, from rclpy or rosbags) -> RGB uint8. No ROS imports."""
from __future__ import annotations

import cv2
import numpy as np

CHANNELS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1, "mono16": 1, "8UC3": 3, "8UC1": 1}
MAX_PIXELS = 40_000_000


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
    buf = np.frombuffer(data if isinstance(data, (bytes, bytearray, memoryview)) else bytes(data), np.uint8) \
        if not isinstance(data, np.ndarray) else data.astype(np.uint8, copy=False).reshape(-1)
    row = w * CHANNELS[encoding] * (2 if encoding == "mono16" else 1)
    if step < row or buf.size != step * h:
        raise ValueError(f"data length {buf.size} does not match {w}x{h} {encoding} with step {step}")
    rows = buf.reshape(h, step)[:, :row]
    if encoding == "mono16":
        px = rows.copy().view(">u2" if is_bigendian else "<u2").reshape(h, w)
        return np.repeat((px >> 8).astype(np.uint8)[..., None], 3, axis=2)
    img = rows.reshape(h, w, CHANNELS[encoding])
    if CHANNELS[encoding] == 1:
        return np.repeat(img, 3, axis=2)
    if encoding in ("bgr8", "bgra8"):
        return np.ascontiguousarray(img[..., 2::-1])
    return np.ascontiguousarray(img[..., :3])


def compressed_to_rgb(data, fmt: str = "") -> np.ndarray:
    """JPEG/PNG bytes -> HxWx3 uint8 RGB."""
    arr = np.frombuffer(bytes(data), np.uint8) if not isinstance(data, np.ndarray) else data.astype(np.uint8)
    img = cv2.imdecode(arr, cv2.IMREAD_COLOR) if arr.size else None
    if img is None:
        raise ValueError(f"cannot decode compressed image (format {fmt!r}, {arr.size} bytes)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def message_to_rgb(msg, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """An Image or CompressedImage message (any library's) -> RGB."""
    if hasattr(msg, "format"):
        return compressed_to_rgb(msg.data, msg.format)
    return raw_to_rgb(msg.encoding, msg.height, msg.width, msg.step, msg.data, msg.is_bigendian, max_pixels)
