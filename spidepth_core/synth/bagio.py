"""rosbag2 writing of camera streams (sensor_msgs/Image + CameraInfo) with ``rosbags``."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

STORAGES = {"sqlite3": StoragePlugin.SQLITE3, "mcap": StoragePlugin.MCAP}


def _header(ts, stamp_ns: int, frame_id: str):
    Time = ts.types["builtin_interfaces/msg/Time"]
    Header = ts.types["std_msgs/msg/Header"]
    return Header(stamp=Time(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9), frame_id=frame_id)


def camera_info_msg(ts, K: np.ndarray, height: int, width: int, stamp_ns: int, frame_id: str):
    P = np.zeros((3, 4))
    P[:, :3] = K
    return ts.types["sensor_msgs/msg/CameraInfo"](
        header=_header(ts, stamp_ns, frame_id), height=height, width=width, distortion_model="plumb_bob",
        d=np.zeros(5), k=np.asarray(K, np.float64).reshape(-1), r=np.eye(3).reshape(-1), p=P.reshape(-1),
        binning_x=0, binning_y=0,
        roi=ts.types["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0,
                                                         do_rectify=False))


def image_msg(ts, rgb: np.ndarray, stamp_ns: int, frame_id: str, encoding: str = "rgb8"):
    h, w = rgb.shape[:2]
    data = rgb[..., ::-1] if encoding == "bgr8" else rgb
    return ts.types["sensor_msgs/msg/Image"](
        header=_header(ts, stamp_ns, frame_id), height=h, width=w, encoding=encoding, is_bigendian=0,
        step=w * 3, data=np.ascontiguousarray(data).reshape(-1))


def write_camera_bag(path: str | Path, frames: Iterable[np.ndarray], K: np.ndarray, fps: float = 10.0,
                     storage: str = "sqlite3", image_topic: str = "/camera/image_raw",
                     info_topic: str = "/camera/camera_info", frame_id: str = "camera_optical_frame",
                     encoding: str = "rgb8", distro: Stores = Stores.ROS2_HUMBLE,
                     start_ns: int = 1_700_000_000 * 10**9) -> Path:
    """Write RGB frames (HxWx3 uint8) and matching CameraInfo at ``fps`` into a new rosbag2 folder."""
    if storage not in STORAGES:
        raise ValueError(f"storage must be one of {sorted(STORAGES)}, got {storage!r}")
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"bag already exists: {path}")
    ts = get_typestore(distro)
    with Writer(path, version=8, storage_plugin=STORAGES[storage]) as writer:
        img_conn = writer.add_connection(image_topic, "sensor_msgs/msg/Image", typestore=ts)
        info_conn = writer.add_connection(info_topic, "sensor_msgs/msg/CameraInfo", typestore=ts)
        for i, rgb in enumerate(frames):
            stamp = start_ns + int(round(i * 1e9 / fps))
            msg = image_msg(ts, rgb, stamp, frame_id, encoding)
            writer.write(img_conn, stamp, ts.serialize_cdr(msg, msg.__msgtype__))
            info = camera_info_msg(ts, K, rgb.shape[0], rgb.shape[1], stamp, frame_id)
            writer.write(info_conn, stamp, ts.serialize_cdr(info, info.__msgtype__))
    return path
