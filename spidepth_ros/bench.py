"""Node benchmark: end-to-end latency (image published -> depth received) against the bare Predictor
on the same frames in the same run, the DDS transport floor, and the PointCloud2 build time.

    python -m spidepth_ros.bench [--model M] [--backend B] [--frames N] [--size HxW]

The transport floor is an echo node that decodes the image and publishes a model-sized depth image at
once: no node can be faster than that over DDS, so it is the part of the overhead that is not the node's.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import numpy as np

from spidepth_core.pinhole import kitti_intrinsics

from .demo import ROOT, local_dds_env
from .params import params_file

WARMUP = 5  # frames run before timing starts


def cloud_build_ms(height: int, width: int, runs: int = 50) -> float:
    from std_msgs.msg import Header

    from spidepth_core.pointcloud import depth_to_points, pack_cloud

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
    ap.add_argument("--echo", default="", help=argparse.SUPPRESS)  # internal: run the echo node, depth HxW
    args = ap.parse_args(argv)
    if args.echo:
        return _echo_node(*(int(v) for v in args.echo.split("x")))
    h, w = (int(v) for v in args.size.split("x"))
    from spidepth_core.inference import Predictor
    pred = Predictor(args.model or None, args.backend)
    frames = _frames(args.frames + WARMUP, h, w)  # every measurement: the same frames, the same warm-up
    node_ms, period_ms = _timed_node(["spidepth_ros.depth_node", "--ros-args", "--params-file",
                                      str(params_file()),
                                      *(["-p", f"model_path:={args.model}"] if args.model else []),
                                      "-p", f"backend:={args.backend}", "-p", "camera_info_timeout:=1000.0"],
                                     frames)
    floor_ms, _ = _timed_node(["spidepth_ros.bench", "--echo", "x".join(map(str, pred.input_size))], frames)
    bare_ms = _bare_ms(pred, frames, 0.0)
    # The node sees one frame per period, with its thread pool idle in between: pace the Predictor alike.
    paced_ms = _bare_ms(pred, frames, max(0.0, period_ms - node_ms) / 1000)
    code_ms = _node_code_ms(frames, args.model, args.backend)
    cloud_ms = cloud_build_ms(192, 640)

    def row(name: str, ms: float, base: float | None = None) -> None:
        extra = f" ({ms - base:+.1f} ms, {100 * (ms - base) / base:+.0f}%)" if base else ""
        print(f"| {name} | {ms:.2f}{extra} |")
    print(f"| camera {w}x{h}, model {pred.input_size[1]}x{pred.input_size[0]}, {pred.backend.name} | median ms |")
    print("|---|---|")
    row("bare Predictor, back to back", bare_ms)
    row(f"bare Predictor, one frame per {period_ms:.1f} ms as the node got them", paced_ms)
    row("node end to end (publish -> depth received), vs back to back", node_ms, bare_ms)
    row("node end to end, vs paced", node_ms, paced_ms)
    row("DDS transport floor (echo node: decode, publish depth, no model)", floor_ms)
    row("node's code without DDS (process() called directly), vs back to back", code_ms, bare_ms)
    row("PointCloud2 xyzrgb build, 192x640", cloud_ms)
    return 0


def _bare_ms(pred, frames: list[np.ndarray], gap_s: float) -> float:
    """Median Predictor.predict() time after the warm-up frames, sleeping gap_s before each frame."""
    times = []
    for i, f in enumerate(frames):
        time.sleep(gap_s)
        t = time.perf_counter()
        pred.predict(f, output_size="model")
        if i >= WARMUP:
            times.append((time.perf_counter() - t) * 1000)
    return float(np.median(times))


def _node_code_ms(frames: list[np.ndarray], model: str, backend: str) -> float:
    """Median DepthNode.process() time on the frames, called directly (publishers with no subscribers)."""
    import rclpy
    from rclpy.parameter import Parameter
    from std_msgs.msg import Header

    from .conversions import rgb_to_msg
    from .depth_node import DepthNode
    rclpy.init()
    node = DepthNode(parameter_overrides=[Parameter("backend", value=backend),
                                          *([Parameter("model_path", value=model)] if model else [])])
    msgs = [rgb_to_msg(f, Header()) for f in frames]
    times = []
    for i, msg in enumerate(msgs):
        t = time.perf_counter()
        node.process(msg, time.monotonic())
        if i >= WARMUP:
            times.append((time.perf_counter() - t) * 1000)
    node.destroy_node()
    rclpy.shutdown()
    return float(np.median(times))


def _timed_node(module_args: list[str], frames: list[np.ndarray]) -> tuple[float, float]:
    env = local_dds_env()
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    node = subprocess.Popen([sys.executable, "-m", *module_args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        return _node_latency(frames, node)
    finally:
        node.terminate()
        node.wait(10)


def _echo_node(h: int, w: int) -> int:
    """Decode each image and publish a constant HxW depth image: DDS and conversions, no model."""
    import rclpy
    from rclpy.qos import QoSProfile
    from sensor_msgs.msg import Image

    from .conversions import depth_to_msg, image_to_rgb
    from .depth_node import image_qos
    rclpy.init()
    node = rclpy.create_node("spidepth_echo")
    pub = node.create_publisher(Image, "depth", QoSProfile(depth=2))
    depth = np.ones((h, w), np.float32)

    def echo(msg: Image) -> None:
        image_to_rgb(msg)
        pub.publish(depth_to_msg(depth, msg.header))
    node.create_subscription(Image, "image", echo, image_qos())
    try:
        rclpy.spin(node)
    except BaseException:  # terminated by the benchmark
        pass
    return 0


def _frames(n: int, h: int, w: int) -> list[np.ndarray]:
    from spidepth_core.synth import render_sequence
    return [rgb for rgb, _, _ in render_sequence(7, n, h, w)]


def _node_latency(frames: list[np.ndarray], node: subprocess.Popen) -> tuple[float, float]:
    """(median latency, median period between published frames) after the warm-up frames, in ms."""
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import CameraInfo, Image
    from std_msgs.msg import Header

    from .conversions import rgb_to_msg
    rclpy.init()
    client = rclpy.create_node("spidepth_bench")
    pub = client.create_publisher(Image, "image", qos_profile_sensor_data)
    info_pub = client.create_publisher(CameraInfo, "camera_info", qos_profile_sensor_data)
    arrivals: dict[int, float] = {}

    def on_depth(msg: Image) -> None:
        arrivals.setdefault(msg.header.stamp.sec, time.perf_counter())

    client.create_subscription(Image, "depth", on_depth, 10)
    while pub.get_subscription_count() == 0:
        rclpy.spin_once(client, timeout_sec=0.1)
        if node.poll() is not None:
            raise RuntimeError("depth_node exited during start-up")
    h, w = frames[0].shape[:2]
    info = CameraInfo(height=h, width=w)
    info.k = kitti_intrinsics(h, w).reshape(-1).tolist()
    sent = {}
    for i, rgb in enumerate(frames):
        msg = rgb_to_msg(rgb, Header())
        msg.header.stamp.sec = i + 1
        info_pub.publish(info)
        sent[i + 1] = time.perf_counter()
        pub.publish(msg)
        end = time.perf_counter() + 0.5  # one frame at a time: no queueing in the measurement
        while i + 1 not in arrivals and time.perf_counter() < end:
            rclpy.spin_once(client, timeout_sec=0.005)
    lat = [1000 * (arrivals[k] - sent[k]) for k in sent if k in arrivals and k > WARMUP]
    client.destroy_node()
    rclpy.shutdown()
    if not lat:
        raise RuntimeError("the node sent no depth back")
    times = sorted(sent.values())
    return float(np.median(lat)), 1000 * float(np.median(np.diff(times)))


if __name__ == "__main__":
    sys.exit(main())
