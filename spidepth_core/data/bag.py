"""rosbag2 camera recordings (sqlite3 or mcap) read with ``rosbags``: Image, CompressedImage, CameraInfo."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
INFO_TYPE = "sensor_msgs/msg/CameraInfo"


def _typestore():
    from rosbags.typesys import Stores, get_typestore
    return get_typestore(Stores.LATEST)


def decode_image(msg) -> np.ndarray:
    """A deserialised Image or CompressedImage -> HxWx3 uint8 RGB."""
    if hasattr(msg, "format"):  # CompressedImage
        img = cv2.imdecode(np.asarray(msg.data, np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            raise ValueError(f"cannot decode compressed image ({msg.format})")
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    channels = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}
    if msg.encoding not in channels:
        raise ValueError(f"unsupported image encoding {msg.encoding!r} in the bag")
    c = channels[msg.encoding]
    data = np.asarray(msg.data, np.uint8)
    if data.size != msg.step * msg.height:
        raise ValueError(f"image data of {data.size} bytes does not match {msg.width}x{msg.height}, step {msg.step}")
    img = data.reshape(msg.height, msg.step)[:, : msg.width * c].reshape(msg.height, msg.width, c)
    if c == 1:
        return np.repeat(img, 3, axis=2)
    if msg.encoding.startswith("bgr"):
        return np.ascontiguousarray(img[..., 2::-1])
    return np.ascontiguousarray(img[..., :3])


def list_topics(path: str | Path) -> dict[str, str]:
    from rosbags.highlevel import AnyReader
    with AnyReader([Path(path)], default_typestore=_typestore()) as reader:
        return {c.topic: c.msgtype for c in reader.connections}


def read_camera(path: str | Path, image_topic: str, info_topic: str | None = None
                ) -> Iterator[tuple[int, np.ndarray | None, np.ndarray | None, object]]:
    """Yields (stamp_ns, rgb or None, K or None, raw message) in recording order.

    Image messages give rgb; CameraInfo messages give K (None if zero). Raises with the bag's
    topic list when a topic is missing.
    """
    from rosbags.highlevel import AnyReader
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"bag not found: {path}")
    try:
        reader = AnyReader([path], default_typestore=_typestore())
        reader.open()
    except Exception as exc:
        raise ValueError(f"cannot open bag {path}: {exc}") from exc
    try:
        topics = {c.topic: c.msgtype for c in reader.connections}
        wanted = [t for t in (image_topic, info_topic) if t]
        for topic in wanted:
            if topic not in topics:
                listing = ", ".join(f"{t} ({m})" for t, m in sorted(topics.items()))
                raise ValueError(f"topic {topic!r} is not in {path}; it has: {listing}")
        if topics[image_topic] not in IMAGE_TYPES:
            raise ValueError(f"{image_topic} is {topics[image_topic]}, not an Image or CompressedImage")
        conns = [c for c in reader.connections if c.topic in wanted]
        try:
            for conn, stamp, raw in reader.messages(connections=conns):
                msg = reader.deserialize(raw, conn.msgtype)
                if conn.topic == image_topic:
                    yield stamp, decode_image(msg), None, msg
                else:
                    K = np.asarray(msg.k, np.float64).reshape(3, 3)
                    yield stamp, None, (K if K[0, 0] > 0 and K[1, 1] > 0 else None), msg
        except ValueError:
            raise
        except Exception as exc:
            raise ValueError(f"bag {path} is truncated or corrupt: {exc}") from exc
    finally:
        reader.close()
