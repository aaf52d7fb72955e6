"""Swap the model of a running node over real DDS: no gap in output; a corrupt file is rejected."""
import time

import numpy as np
import pytest
import torch
from rcl_interfaces.srv import SetParameters, SetParametersAtomically
from rclpy.parameter import Parameter

from ros_helpers import Client, image_msg, start_node, stop_node
from spidepth_core.checkpoint import save_model
from spidepth_core.models import create_model

pytestmark = pytest.mark.slow  # each test starts its own ROS node process


def test_live_model_swap(tiny_checkpoint, tmp_path):
    torch.manual_seed(1)
    other = tmp_path / "near.pt"
    save_model(other, create_model("spidepth_tiny", min_depth=1.0, max_depth=2.0), "spidepth_tiny")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(other.read_bytes()[:2000])
    foreign = tmp_path / "foreign.pt"  # a valid file whose config does not describe its weights
    ckpt = torch.load(other, weights_only=True)
    ckpt["config"]["channels"] *= 2
    torch.save(ckpt, foreign)
    proc = start_node({"model_path": str(tiny_checkpoint), "backend": "torch", "min_depth": 0.0,
                       "max_depth": 1000.0}, extra=["-r", "__node:=swap_node"], log=tmp_path / "log")
    client = Client("swap_client")
    try:
        assert client.wait_for_node(90)
        srv = client.node.create_client(SetParameters, "/swap_node/set_parameters")
        atomic = client.node.create_client(SetParametersAtomically, "/swap_node/set_parameters_atomically")
        assert srv.wait_for_service(timeout_sec=10) and atomic.wait_for_service(timeout_sec=10)
        rgb = np.random.default_rng(0).integers(0, 255, (64, 192, 3), dtype=np.uint8)
        arrivals = []
        client.node.create_subscription(type(image_msg(rgb)), "depth", lambda m: arrivals.append(
            (time.monotonic(), float(np.nanmax(np.frombuffer(bytes(m.data), np.float32))))), 10)

        def stream(seconds):
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                client.pub_image.publish(image_msg(rgb))
                client.spin_until(lambda: False, 0.1)

        def set_model(path):
            fut = srv.call_async(SetParameters.Request(
                parameters=[Parameter("model_path", value=str(path)).to_parameter_msg()]))
            assert client.spin_until(fut.done, 15)
            return fut.result().results[0]

        stream(2.0)
        assert arrivals and arrivals[-1][1] > 2.0  # the original model's depths reach beyond 2 m
        bad = set_model(corrupt)
        assert not bad.successful and "cannot read checkpoint" in bad.reason
        bad = set_model(foreign)  # rejected in the call itself, with a short reason
        assert not bad.successful and "does not match its weights" in bad.reason and len(bad.reason) < 300
        stream(1.0)
        assert set_model(other).successful
        start = len(arrivals)
        stream(6.0)
        new = arrivals[start:]
        times = [t for t, _ in arrivals]
        assert max(np.diff(times)) < 1.5  # output never stopped during the swap
        assert new[-1][1] <= 2.0 + 1e-4   # now served by the swapped-in model
        # An atomic update whose other values are bad is rejected whole: no swap back starts.
        fut = atomic.call_async(SetParametersAtomically.Request(parameters=[
            Parameter("model_path", value=str(tiny_checkpoint)).to_parameter_msg(),
            Parameter("min_depth", value=5.0).to_parameter_msg(),
            Parameter("max_depth", value=1.0).to_parameter_msg()]))
        assert client.spin_until(fut.done, 15) and not fut.result().result.successful
        start = len(arrivals)
        stream(4.0)
        assert arrivals[start:] and all(d <= 2.0 + 1e-4 for _, d in arrivals[start:])
        assert proc.poll() is None
    finally:
        client.close()
        stop_node(proc)
