"""Runtime benchmark: the node on the bundled model from an install without PyTorch, against this one.

    python -m spidepth_ros.bench_runtime --runtime /path/to/runtime-venv/bin/python

For each interpreter (the runtime one, and this one as the baseline, in the same run): the time and the
resident memory of ``import spidepth_ros.depth_node`` in a fresh process (median of 3) and whether it loaded
torch or timm; the environment's size on disk; and the time from starting the node to its first depth
image, with a camera publishing at 10 Hz. Make the runtime environment with:

    python3 -m venv /tmp/rt && /tmp/rt/bin/pip install . ros-rclpy ros-sensor-msgs ros-std-msgs \\
        ros-geometry-msgs ros-diagnostic-msgs ros-rmw-fastrtps-cpp
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from .demo import local_dds_env

IMPORT_PROBE = ("import resource, sys, time; t = time.perf_counter(); import spidepth_ros.depth_node; "
                "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "
                "'torch' in sys.modules or 'timm' in sys.modules)")


def import_cost(python: str, runs: int = 3) -> dict:
    """Median seconds and peak RSS (MB) of importing the node module in a fresh process."""
    rows = []
    for _ in range(runs):
        out = subprocess.run([python, "-c", IMPORT_PROBE], capture_output=True, text=True, cwd="/",
                             env=_clean_env(), check=True).stdout.split()
        rows.append((float(out[0]), float(out[1]), out[2] == "True"))
    return {"import_s": float(np.median([r[0] for r in rows])), "import_rss_mb": float(np.median([r[1] for r in rows])),
            "imports_torch": any(r[2] for r in rows)}


def env_size_mb(python: str) -> float:
    """Disk use of the interpreter's environment (its sys.prefix, followed links not counted twice)."""
    prefix = subprocess.run([python, "-c", "import sys; print(sys.prefix)"], capture_output=True, text=True,
                            check=True).stdout.strip()
    total, seen = 0, set()
    for root, _, files in os.walk(prefix):
        for name in files:
            st = os.lstat(os.path.join(root, name))
            if st.st_ino not in seen:
                seen.add(st.st_ino)
                total += st.st_blocks * 512
    return total / 1e6


def first_depth_s(python: str, timeout: float = 120.0) -> float:
    """Seconds from starting the node (bundled model) to the first depth image, a camera sending at 10 Hz."""
    import rclpy
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header

    from .conversions import rgb_to_msg
    rgb = np.random.default_rng(0).integers(0, 255, (192, 640, 3), dtype=np.uint8)
    if not rclpy.ok():
        rclpy.init()
    node = rclpy.create_node(f"bench_runtime_{os.getpid()}")
    got: list[float] = []
    pub = node.create_publisher(Image, "/bench_rt/image", 10)
    node.create_subscription(Image, "/bench_rt/depth", lambda m: got.append(time.monotonic()), 10)
    start = time.monotonic()
    proc = subprocess.Popen([python, "-m", "spidepth_ros.depth_node", "--ros-args", "-r", "__ns:=/bench_rt"],
                            env=_clean_env(), cwd="/", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not got and time.monotonic() - start < timeout:
            pub.publish(rgb_to_msg(rgb, Header()))
            end = time.monotonic() + 0.1
            while time.monotonic() < end and not got:
                rclpy.spin_once(node, timeout_sec=0.02)
    finally:
        proc.terminate()
        proc.wait(10)
        node.destroy_node()
    if not got:
        raise RuntimeError(f"no depth from the node within {timeout:.0f} s")
    return got[0] - start


def _clean_env() -> dict:
    """DDS on loopback, and no PYTHONPATH: each interpreter imports its own install."""
    env = {**local_dds_env(), "OMP_NUM_THREADS": "2"}
    env.pop("PYTHONPATH", None)
    return env


def measure(python: str) -> dict:
    return {"python": python, **import_cost(python), "env_mb": env_size_mb(python),
            "first_depth_s": first_depth_s(python)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runtime", required=True, help="python of the runtime environment (no PyTorch)")
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args(argv)
    rows = {"runtime": measure(args.runtime), "full (this install)": measure(sys.executable)}
    print("| install | node import | import RSS | loads torch/timm | environment | start -> first depth |")
    print("|---|---|---|---|---|---|")
    for name, r in rows.items():
        torch = "yes" if r["imports_torch"] else "no"
        print(f"| {name} | {r['import_s']:.2f} s | {r['import_rss_mb']:.0f} MB | {torch} | {r['env_mb']:.0f} MB | "
              f"{r['first_depth_s']:.2f} s |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
