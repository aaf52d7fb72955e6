"""Node benchmark: end-to-end latency (image published -> depth received) against the bare Predictor
on the same frames in the same run, and the PointCloud2 build time.

    python -m spidepth_ros.bench [--model M] [--backend B] [--frames N] [--size HxW]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import numpy as np

from spidepth_core.geometry import kitti_intrinsics

from .demo import ROOT, local_dds_env


def cloud_build_ms(height: int, width: int, runs: int = 50) -> float:
    from spidepth_core.pointcloud import depth_to_points, pack_cloud
    from std_msgs.msg import Header

    from .conversions import cloud_to_msg
    rng = np.random.default_rng(0)
    depth = rng.uniform(1, 50, (height, width)).astype(np.float32)
    rgb = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    K = kitti_intrinsics(height, width)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        cloud_to_msg(pack_cloud(depth_to_points(depth, K), rgb), Header())
        times.append((time.perf_counter() - t) * 1000)
    return float(np.median(times))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="")
    ap.add_argument("--backend", default="onnxruntime")
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--size", default="192x640", help="camera image HxW")
    args = ap.parse_args(argv)
    h, w = (int(v) for v in args.size.split("x"))
    env = local_dds_env()
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    node = subprocess.Popen([sys.executable, "-m", "spidepth_ros.depth_node", "--ros-args", "--params-file",
                             str(ROOT / "config/depth.yaml"), *(["-p", f"model_path:={args.model}"] if args.model else []),
                             "-p", f"backend:={args.backend}", "-p", "camera_info_timeout:=1000.0"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        node_ms = _node_latency(args.frames, h, w, node)
    finally:
        node.terminate()
        node.wait(10)
    from spidepth_core.inference import Predictor
    pred = Predictor(args.model or None, args.backend)
    frames = _frames(args.frames, h, w)
    for f in frames[:5]:
        pred.predict(f, output_size="model")
    bare = []
    for f in frames:
        t = time.perf_counter()
        pred.predict(f, output_size="model")
        bare.append((time.perf_counter() - t) * 1000)
    bare_ms = float(np.median(bare))
    cloud_ms = cloud_build_ms(192, 640)
    print(f"| camera {w}x{h}, model {pred.input_size[1]}x{pred.input_size[0]}, {pred.backend.name} | median ms |")
    print("|---|---|")
    print(f"| bare Predictor | {bare_ms:.1f} |")
    print(f"| node end to end (publish -> depth received) | {node_ms:.1f} |")
    print(f"| node overhead | {node_ms - bare_ms:+.1f} ms ({100 * (node_ms - bare_ms) / bare_ms:+.0f}%) |")
    print(f"| PointCloud2 xyzrgb build, 192x640 | {cloud_ms:.2f} |")
    return 0


def _frames(n: int, h: int, w: int) -> list[np.ndarray]:
    from spidepth_core.synth import render_sequence
    return [rgb for rgb, _, _ in render_sequence(7, n, h, w)]


def _node_latency(n: int, h: int, w: int, node: subprocess.Popen) -> float:
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import CameraInfo, Image
    rclpy.init()
    client = rclpy.create_node("spidepth_bench")
    pub = client.create_publisher(Image, "image", qos_profile_sensor_data)
    info_pub = client.create_publisher(CameraInfo, "camera_info", qos_profile_sensor_data)
    arrivals = {}
    client.create_subscription(Image, "depth", lambda m: arrivals.setdefault(m.header.stamp.sec, time.perf_counter()),
                               10)
    while pub.get_subscription_count() == 0:
        rclpy.spin_once(client, timeout_sec=0.1)
        if node.poll() is not None:
            raise RuntimeError("depth_node exited during start-up")
    info = CameraInfo(height=h, width=w)
    info.k = kitti_intrinsics(h, w).reshape(-1).tolist()
    sent = {}
    for i, rgb in enumerate(_frames(n + 5, h, w)):
        msg = Image(height=h, width=w, encoding="rgb8", step=w * 3, data=rgb.tobytes())
        msg.header.stamp.sec = i + 1
        info_pub.publish(info)
        sent[i + 1] = time.perf_counter()
        pub.publish(msg)
        end = time.perf_counter() + 0.5  # one frame at a time: no queueing in the measurement
        while i + 1 not in arrivals and time.perf_counter() < end:
            rclpy.spin_once(client, timeout_sec=0.005)
    lat = [1000 * (arrivals[k] - sent[k]) for k in sent if k in arrivals and k > 5]
    client.destroy_node()
    rclpy.shutdown()
    if not lat:
        raise RuntimeError("the node sent no depth back")
    return float(np.median(lat))


if __name__ == "__main__":
    sys.exit(main())
