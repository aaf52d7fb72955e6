"""Real rclpy over real DDS: start depth_node in its own process and talk to it from the test."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def start_node(params: dict, extra: list[str] | None = None, log: Path | None = None,
               env: dict | None = None, python: Path | None = None) -> subprocess.Popen:
    """The node from this checkout, or with ``python`` the one installed in that interpreter's environment."""
    cmd = [str(python or sys.executable), "-m", "spidepth_ros.depth_node", "--ros-args", "--params-file",
           str(ROOT / "config" / "depth.yaml")]
    for k, v in params.items():
        cmd += ["-p", f"{k}:={v}"]
    cmd += extra or []
    env = {**os.environ, "PYTHONPATH": "" if python else str(ROOT), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1",
           **(env or {})}
    out = open(log, "w") if log else subprocess.DEVNULL
    return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)


def stop_node(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Client:
    """A test-side node: publishes camera topics, records what the depth node sends back."""

    def __init__(self, name: str = "test_client", namespace: str = "") -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
        self.rclpy = rclpy
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, namespace=namespace, context=self.context)
        self.executor = rclpy.executors.SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.pub_image = self.node.create_publisher(Image, "image", qos_profile_sensor_data)
        self.pub_compressed = self.node.create_publisher(CompressedImage, "image/compressed", qos_profile_sensor_data)
        self.pub_info = self.node.create_publisher(CameraInfo, "camera_info", qos_profile_sensor_data)
        types = {"depth": Image, "depth/camera_info": CameraInfo, "depth/colored": Image, "points": PointCloud2,
                 "depth/uncertainty": Image, "/diagnostics": DiagnosticArray}
        self.received: dict[str, list] = {k: [] for k in types}
        for topic, typ in types.items():
            self.node.create_subscription(typ, topic, lambda m, t=topic: self.received[t].append(m), 10)

    def spin_until(self, condition, timeout: float = 20.0) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=0.05)
            if condition():
                return True
        return False

    def spin_until_quiet(self, topic: str, quiet: float = 1.5, timeout: float = 15.0) -> None:
        """Spin until ``topic`` has had no new message for ``quiet`` seconds (at most ``timeout``)."""
        end = time.monotonic() + timeout
        n = -1
        while time.monotonic() < end and len(self.received[topic]) != n:
            n = len(self.received[topic])
            self.spin_until(lambda: len(self.received[topic]) > n, min(quiet, max(0.0, end - time.monotonic())))

    def wait_for_node(self, timeout: float = 60.0) -> bool:
        return self.spin_until(lambda: self.pub_image.get_subscription_count() > 0, timeout)

    def close(self) -> None:
        self.node.destroy_node()
        self.rclpy.shutdown(context=self.context)


def image_msg(rgb: np.ndarray, stamp: tuple[int, int] = (12, 345), frame_id: str = "cam_optical",
              encoding: str = "rgb8"):
    from sensor_msgs.msg import Image
    msg = Image()
    msg.header.stamp.sec, msg.header.stamp.nanosec = stamp
    msg.header.frame_id = frame_id
    msg.height, msg.width = rgb.shape[:2]
    msg.encoding = encoding
    data = {"rgb8": rgb, "bgr8": rgb[..., ::-1], "mono8": rgb[..., :1]}[encoding]
    msg.step = rgb.shape[1] * data.shape[2]
    msg.data = np.ascontiguousarray(data).tobytes()
    return msg


def info_msg(K: np.ndarray, height: int, width: int, frame_id: str = "cam_optical"):
    from sensor_msgs.msg import CameraInfo
    msg = CameraInfo()
    msg.header.frame_id = frame_id
    msg.height, msg.width = height, width
    msg.k = np.asarray(K, float).reshape(-1).tolist()
    P = np.zeros((3, 4))
    P[:, :3] = K
    msg.p = P.reshape(-1).tolist()
    return msg


def png_bomb(side: int) -> bytes:
    """A real PNG of side x side black pixels, 1 bit per pixel: a few KB that decode to side*side*3 bytes."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    row = b"\x00" + bytes((side + 7) // 8)  # filter byte + packed bits
    compressor = zlib.compressobj(9)
    pixels = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # bit depth 1, greyscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
