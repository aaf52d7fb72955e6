"""The runtime install (`pip install .`, no PyTorch): `spidepth predict` and a real node run the bundled model
and give the same depth as the full install."""
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT
from ros_helpers import Client, image_msg, info_msg, start_node, stop_node

pytestmark = pytest.mark.slow  # builds an environment: pip installs the runtime requirements
ROS_WHEELS = ["ros-rclpy", "ros-sensor-msgs", "ros-std-msgs", "ros-geometry-msgs", "ros-diagnostic-msgs",
              "ros-rmw-fastrtps-cpp"]  # rclpy and the messages from PyPI, as scripts/setup.sh installs them


@pytest.fixture(scope="module")
def runtime_python(tmp_path_factory):
    venv = tmp_path_factory.mktemp("runtime") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    proc = subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(ROOT),
                           *ROS_WHEELS], capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return python


def _clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return {**env, "OMP_NUM_THREADS": "1", **extra}


def _scene():
    from spidepth_core.synth import render_sequence
    rgb, _, _ = next(iter(render_sequence(7, 1, 192, 640)))
    return rgb


def test_the_runtime_has_no_torch_and_predict_matches_the_full_install(runtime_python, tmp_path):
    import cv2
    probe = "import importlib.util as u; print([m for m in ('torch', 'timm', 'onnx', 'cv2') if u.find_spec(m)])"
    assert subprocess.run([str(runtime_python), "-c", probe], capture_output=True, text=True,
                          env=_clean_env()).stdout.strip() == "[]"
    image = tmp_path / "scene.png"
    cv2.imwrite(str(image), cv2.cvtColor(_scene(), cv2.COLOR_RGB2BGR))
    spidepth = runtime_python.parent / "spidepth"
    proc = subprocess.run([str(spidepth), "predict", str(image), "--output", str(tmp_path / "rt")], cwd=tmp_path,
                          capture_output=True, text=True, env=_clean_env(SPIDEPTH_CACHE=str(tmp_path / "c1")))
    assert proc.returncode == 0, proc.stderr[-2000:]
    full = subprocess.run([sys.executable, "-m", "spidepth_core.cli", "predict", str(image), "--output",
                           str(tmp_path / "full")], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "SPIDEPTH_CACHE": str(tmp_path / "c2")})
    assert full.returncode == 0, full.stderr[-2000:]
    a, b = np.load(tmp_path / "rt" / "scene_depth.npy"), np.load(tmp_path / "full" / "scene_depth.npy")
    assert a.shape == b.shape and np.allclose(a, b, rtol=1e-5, atol=1e-6)
    assert not list((tmp_path / "c1").rglob("*.onnx"))  # the bundled model's ONNX ships: nothing exported
    bad = subprocess.run([str(spidepth), "train", "config/finetune_bag.yaml"], cwd=ROOT, capture_output=True,
                         text=True, env=_clean_env())
    assert bad.returncode == 2 and "spidepth_ros[train]" in bad.stderr and len(bad.stderr.splitlines()) == 1


def test_a_runtime_node_publishes_the_full_installs_depth(runtime_python, tmp_path):
    from spidepth_core.inference import Predictor
    from spidepth_core.pinhole import kitti_intrinsics
    rgb = _scene()
    K = kitti_intrinsics(*rgb.shape[:2])
    expected = Predictor(None, "onnxruntime").predict(rgb, K).depth
    proc = start_node({"min_depth": 0.0, "max_depth": 1000.0, "output_size": "input"},
                      extra=["-r", "__node:=depth_node_rt"],
                      log=tmp_path / "log", python=runtime_python, env={"SPIDEPTH_CACHE": str(tmp_path / "cache")})
    client = Client("runtime_client")
    try:
        assert client.wait_for_node(120), (tmp_path / "log").read_text()
        got = client.received["depth"]
        for _ in range(50):
            client.pub_info.publish(info_msg(K, *rgb.shape[:2]))
            client.pub_image.publish(image_msg(rgb))
            if client.spin_until(lambda: bool(got), 0.5):
                break
        assert got, (tmp_path / "log").read_text()
        depth = np.frombuffer(bytes(got[-1].data), np.float32).reshape(got[-1].height, got[-1].width)
        assert depth.shape == expected.shape and np.allclose(depth, expected, rtol=1e-4, atol=1e-5)
        assert "onnxruntime" in (tmp_path / "log").read_text()
    finally:
        client.close()
        stop_node(proc)
