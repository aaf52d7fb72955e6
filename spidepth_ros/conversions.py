"""sensor_msgs <-> NumPy. Bad messages raise ValueError naming the problem."""
from __future__ import annotations

import sys

import numpy as np
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2, PointField

from spidepth_core.image_codec import MAX_PIXELS, message_to_rgb
from spidepth_core.pinhole import valid_intrinsics


def image_to_rgb(msg: Image | CompressedImage, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """sensor_msgs/Image or CompressedImage -> HxWx3 uint8 RGB."""
    return message_to_rgb(msg, max_pixels)


def camera_info_K(msg: CameraInfo) -> np.ndarray | None:
    """3x3 K, or None when it is zero / not finite."""
    K = np.asarray(msg.k, np.float64).reshape(3, 3)
    return K if valid_intrinsics(K) else None


def depth_to_msg(depth: np.ndarray, header) -> Image:
    """HxW float32 metres (NaN invalid) -> 32FC1 Image with the input's header."""
    msg = Image()
    msg.header = header
    msg.height, msg.width = depth.shape
    msg.encoding = "32FC1"
    msg.is_bigendian = int(sys.byteorder == "big")
    msg.step = depth.shape[1] * 4
    msg.data = np.ascontiguousarray(depth, np.float32).tobytes()
    return msg


def rgb_to_msg(rgb: np.ndarray, header) -> Image:
    msg = Image()
    msg.header = header
    msg.height, msg.width = rgb.shape[:2]
    msg.encoding = "rgb8"
    msg.step = rgb.shape[1] * 3
    msg.data = np.ascontiguousarray(rgb).tobytes()
    return msg


def scaled_camera_info(K: np.ndarray, src_hw: tuple[int, int], dst_hw: tuple[int, int], header,
                       info: CameraInfo | None = None) -> CameraInfo:
    """CameraInfo for a resized image: K and P scaled as image_proc's resize does.

    ``K`` is for the image (``src_hw``); ``info``'s P is for the size in ``info`` (which may differ from
    the image's), so each is scaled from its own size to ``dst_hw``.
    """
    sx, sy = dst_hw[1] / src_hw[1], dst_hw[0] / src_hw[0]
    out = CameraInfo()
    out.header = header
    out.height, out.width = dst_hw
    k = np.array(K, np.float64).reshape(-1)
    k[[0, 2]] *= sx
    k[[4, 5]] *= sy
    out.k = k.tolist()
    psx, psy = sx, sy
    if info is not None and any(info.p):
        p = np.asarray(info.p, np.float64).copy()
        if info.width and info.height:
            psx, psy = dst_hw[1] / info.width, dst_hw[0] / info.height
    else:
        p = np.zeros((3, 4))
        p[:, :3] = K
        p = p.reshape(-1)
    p[[0, 2, 3]] *= psx
    p[[5, 6]] *= psy
    out.p = p.tolist()
    out.r = list(info.r) if info is not None else np.eye(3).reshape(-1).tolist()
    out.distortion_model = info.distortion_model if info is not None else "plumb_bob"
    out.d = list(info.d) if info is not None else [0.0] * 5
    return out


def cloud_to_msg(cloud: np.ndarray, header) -> PointCloud2:
    """Structured HxW array (spidepth_core.pointcloud) -> organised PointCloud2."""
    msg = PointCloud2()
    msg.header = header
    msg.height, msg.width = cloud.shape
    fields: dict = dict(cloud.dtype.fields or {})
    msg.fields = [PointField(name=n, offset=fields[n][1], datatype=PointField.FLOAT32, count=1)
                  for n in cloud.dtype.names or ()]
    msg.is_bigendian = False
    msg.point_step = cloud.dtype.itemsize
    msg.row_step = msg.point_step * msg.width
    msg.is_dense = False
    msg.data = cloud.tobytes()
    return msg
