"""The demo: depth_node on the bundled model, fed the sample recording over DDS at camera rate.

    python -m spidepth_ros.demo [--model M] [--backend B] [--output DIR]

Prints input rate, output rate and latency; writes a preview PNG (camera above coloured depth)
and a PLY of one point cloud. DDS stays on this machine.
"""
from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from .params import params_file

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_SEED, SAMPLE_FRAMES, SAMPLE_SIZE = 2024, 60, (192, 640)
IMAGE_TOPIC, INFO_TOPIC = "/camera/image_raw", "/camera/camera_info"


def local_dds_env() -> dict:
    env = dict(os.environ)
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    env.setdefault("ROS_LOCALHOST_ONLY", "1")
    env.setdefault("ROS_DOMAIN_ID", str(random.randint(100, 200)))
    os.environ.update({k: env[k] for k in ("ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_LOCALHOST_ONLY", "ROS_DOMAIN_ID")})
    return env


def sample_recording(cache: Path | None = None) -> Path:
    """The sample rosbag2 (sqlite3), rendered from the synthetic world on first use."""
    from spidepth_core.cache import cache_dir
    from spidepth_core.data.bag import write_camera_bag
    from spidepth_core.pinhole import kitti_intrinsics
    from spidepth_core.synth import render_sequence
    cache = cache or cache_dir()
    bag = cache / "sample_camera_bag"
    if (bag / "metadata.yaml").is_file():
        return bag
    print(f"demo: rendering the sample recording into {bag} (first run only)")
    cache.mkdir(parents=True, exist_ok=True)
    tmp = cache / f".sample_{os.getpid()}"
    frames = (rgb for rgb, _, _ in render_sequence(SAMPLE_SEED, SAMPLE_FRAMES, *SAMPLE_SIZE))
    write_camera_bag(tmp, frames, kitti_intrinsics(*SAMPLE_SIZE), image_topic=IMAGE_TOPIC, info_topic=INFO_TOPIC)
    os.replace(tmp, bag)
    return bag


def to_ros(msg, kind):
    """rosbags message -> rclpy message of the same type."""
    from sensor_msgs.msg import CameraInfo, Image
    out = Image() if kind == "image" else CameraInfo()
    out.header.stamp.sec, out.header.stamp.nanosec = msg.header.stamp.sec, msg.header.stamp.nanosec
    out.header.frame_id = msg.header.frame_id
    out.height, out.width = msg.height, msg.width
    if kind == "image":
        out.encoding, out.is_bigendian, out.step = msg.encoding, msg.is_bigendian, msg.step
        out.data = np.asarray(msg.data, np.uint8).tobytes()
    else:
        out.k, out.p, out.r = [float(v) for v in msg.k], [float(v) for v in msg.p], [float(v) for v in msg.r]
        out.d, out.distortion_model = [float(v) for v in msg.d], msg.distortion_model
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="", help="model file (default: bundled)")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--output", default="demo_out")
    ap.add_argument("--bag", help="play this rosbag2 instead of the sample recording")
    ap.add_argument("--loops", type=int, default=2, help="times to play the recording")
    args = ap.parse_args(argv)
    env = local_dds_env()
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    bag = Path(args.bag) if args.bag else sample_recording()
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    model = ["-p", f"model_path:={args.model}"] if args.model else []
    node = subprocess.Popen([sys.executable, "-m", "spidepth_ros.depth_node", "--ros-args", "--params-file",
                             str(params_file()), *model,
                             "-p", f"backend:={args.backend}", "-r", f"image:={IMAGE_TOPIC}",
                             "-r", f"camera_info:={INFO_TOPIC}"], env=env)
    try:
        return _play(bag, out, args.loops, node)
    finally:
        node.terminate()
        node.wait(10)


def _play(bag: Path, out: Path, loops: int, node: subprocess.Popen) -> int:
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import CameraInfo, Image, PointCloud2

    from spidepth_core.data.bag import read_camera
    from spidepth_core.pointcloud import write_ply
    rclpy.init()
    player = rclpy.create_node("spidepth_demo_player")
    pub_img = player.create_publisher(Image, IMAGE_TOPIC, qos_profile_sensor_data)
    pub_info = player.create_publisher(CameraInfo, INFO_TOPIC, qos_profile_sensor_data)
    sent: dict = {}
    got: list = []
    last: dict = {}

    def on_depth(msg: Image) -> None:
        got.append((msg, time.monotonic()))
        last.update(depth=msg)

    player.create_subscription(Image, "depth", on_depth, 10)
    player.create_subscription(PointCloud2, "points", lambda m: last.update(points=m), 2)
    player.create_subscription(DiagnosticArray, "/diagnostics", lambda m: last.update(diag=m), 10)
    print("demo: waiting for depth_node to start (loading the model)...")
    start = time.monotonic()
    while pub_img.get_subscription_count() == 0:
        rclpy.spin_once(player, timeout_sec=0.1)
        if node.poll() is not None or time.monotonic() - start > 120:
            print("demo: depth_node did not start", file=sys.stderr)
            return 1
    messages = list(read_camera(bag, IMAGE_TOPIC, INFO_TOPIC))
    frames = {}
    t_play = time.monotonic()
    for loop in range(loops):
        t0, first = time.monotonic(), messages[0][0]
        for stamp, rgb, _, msg in messages:
            while time.monotonic() - t0 < (stamp - first) / 1e9:
                rclpy.spin_once(player, timeout_sec=0.002)
            if rgb is None:
                pub_info.publish(to_ros(msg, "info"))
                continue
            ros_msg = to_ros(msg, "image")
            ros_msg.header.stamp.sec += loop * 1000  # distinct stamps per loop
            key = (ros_msg.header.stamp.sec, ros_msg.header.stamp.nanosec)
            sent[key], frames[key] = time.monotonic(), rgb
            pub_img.publish(ros_msg)
    streaming_diag = last.get("diag")  # the node's own figures while frames still arrived
    end = time.monotonic() + 3
    while time.monotonic() < end and len(got) < len(sent):
        rclpy.spin_once(player, timeout_sec=0.05)
    duration = max(sent.values()) - t_play
    lat = [1000 * (t - sent[(m.header.stamp.sec, m.header.stamp.nanosec)]) for m, t in got
           if (m.header.stamp.sec, m.header.stamp.nanosec) in sent]
    print(f"demo: input {len(sent) / duration:.1f} Hz, output {len(got) / duration:.1f} Hz "
          f"({len(got)}/{len(sent)} frames), latency median {np.median(lat):.1f} ms, p90 "
          f"{np.percentile(lat, 90):.1f} ms" if lat else "demo: no depth received")
    if streaming_diag is not None:
        print("demo: node diagnostics while streaming " + ", ".join(f"{kv.key}={kv.value}"
                                                                  for kv in streaming_diag.status[0].values))
    _write_outputs(out, last, frames, write_ply)
    rclpy.shutdown()
    return 0 if got else 1


def _write_outputs(out: Path, last: dict, frames: dict, write_ply) -> None:
    from spidepth_core.imaging import write_png
    from spidepth_core.viz import preview
    if "depth" in last:
        m = last["depth"]
        depth = np.frombuffer(bytes(m.data), np.float32).reshape(m.height, m.width)
        rgb = frames.get((m.header.stamp.sec, m.header.stamp.nanosec))
        picture = preview(rgb, depth)
        write_png(out / "demo_preview.png", picture)
        print(f"demo: wrote {out / 'demo_preview.png'}")
    if "points" in last:
        c = last["points"]
        raw = np.frombuffer(bytes(c.data), np.float32).reshape(c.height, c.width, c.point_step // 4)
        rgb = None
        if c.point_step == 32:
            packed = raw[..., 4].view(np.uint32)
            rgb = np.stack([(packed >> 16) & 255, (packed >> 8) & 255, packed & 255], -1).astype(np.uint8)
        n = write_ply(out / "demo_cloud.ply", raw[..., :3], rgb)
        print(f"demo: wrote {out / 'demo_cloud.ply'} ({n} points)")


if __name__ == "__main__":
    sys.exit(main())
