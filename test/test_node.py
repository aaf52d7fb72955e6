"""depth_node over real DDS, in its own process."""
import struct
import time

import cv2
import numpy as np
import pytest

from ros_helpers import Client, image_msg, info_msg, png_bomb, rss_mb, start_node, stop_node

pytestmark = pytest.mark.slow  # each test starts its own ROS node process

K_CAM = np.array([[200.0, 0, 200], [0, 210.0, 60], [0, 0, 1]])
H, W = 120, 400


@pytest.fixture(scope="module")
def node(tiny_checkpoint, tmp_path_factory):
    log = tmp_path_factory.mktemp("node") / "node.log"
    proc = start_node({"model_path": str(tiny_checkpoint), "backend": "torch", "camera_info_timeout": 1000.0,
                       "point_max_range": 1000.0, "max_depth": 1000.0, "min_depth": 0.0}, log=log)
    client = Client()
    assert client.wait_for_node(90), log.read_text()
    yield proc, client, log
    client.close()
    stop_node(proc)


def _send(client, msg, n=1, key="depth", info=True):
    start = len(client.received[key])
    for _ in range(n):
        if info:
            client.pub_info.publish(info_msg(K_CAM, H, W))
        client.pub_image.publish(msg)
        client.spin_until(lambda: False, 0.05)
    assert client.spin_until(lambda: len(client.received[key]) > start, 30)
    return client.received[key][-1]


def _rgb(seed=0):
    return np.random.default_rng(seed).integers(0, 255, (H, W, 3), dtype=np.uint8)


def test_depth_image_and_header(node):
    _, client, _ = node
    depth = _send(client, image_msg(_rgb(), stamp=(77, 123), frame_id="cam_optical"), n=3)
    assert depth.encoding == "32FC1" and (depth.height, depth.width) == (64, 192)
    assert depth.step == 192 * 4 and len(depth.data) == 64 * 192 * 4
    assert depth.header.frame_id == "cam_optical" and (depth.header.stamp.sec, depth.header.stamp.nanosec) == (77, 123)
    values = np.frombuffer(bytes(depth.data), np.float32)
    assert np.isfinite(values).all() and (values > 0).all()


def test_camera_info_is_scaled_like_image_proc(node):
    _, client, _ = node
    _send(client, image_msg(_rgb()), n=2, key="depth/camera_info")
    info = client.received["depth/camera_info"][-1]
    sx, sy = 192 / W, 64 / H
    assert (info.width, info.height) == (192, 64)
    assert np.allclose(info.k, [200 * sx, 0, 200 * sx, 0, 210 * sy, 60 * sy, 0, 0, 1])
    assert np.allclose(np.reshape(info.p, (3, 4))[:, :3], np.reshape(info.k, (3, 3)))


def test_point_cloud_layout_and_geometry(node):
    _, client, _ = node
    _send(client, image_msg(_rgb(1)), n=2, key="points")
    cloud = client.received["points"][-1]
    depth_msg = client.received["depth"][-1]
    info = client.received["depth/camera_info"][-1]
    assert (cloud.height, cloud.width) == (64, 192) and not cloud.is_dense
    fields = {f.name: (f.offset, f.datatype) for f in cloud.fields}
    assert fields == {"x": (0, 7), "y": (4, 7), "z": (8, 7), "rgb": (16, 7)}
    assert cloud.point_step == 32 and cloud.row_step == 32 * 192
    depth = np.frombuffer(bytes(depth_msg.data), np.float32).reshape(64, 192)
    k = np.reshape(info.k, (3, 3))
    data = bytes(cloud.data)
    for v, u in [(0, 0), (10, 150), (63, 191)]:
        x, y, z = struct.unpack_from("<fff", data, (v * 192 + u) * 32)
        if depth_msg.header.stamp == cloud.header.stamp:
            assert z == pytest.approx(depth[v, u], rel=1e-5)
        assert x == pytest.approx((u - k[0, 2]) * z / k[0, 0], rel=1e-4, abs=1e-4)
        assert y == pytest.approx((v - k[1, 2]) * z / k[1, 1], rel=1e-4, abs=1e-4)


@pytest.mark.parametrize("encoding", ["bgr8", "mono8"])
def test_other_encodings(node, encoding):
    _, client, _ = node
    depth = _send(client, image_msg(_rgb(2), encoding=encoding), n=2)
    assert depth.height == 64


def _bad_messages():
    good = image_msg(_rgb())
    wrong_enc = image_msg(_rgb())
    wrong_enc.encoding = "yuv422"
    short = image_msg(_rgb())
    short.data = bytes(short.data)[:-10]
    empty = image_msg(np.zeros((1, 1, 3), np.uint8))
    empty.height = empty.width = 0
    empty.data = b""
    return {"yuv422": wrong_enc, "data length": short, "empty image": empty}, good


def test_bad_input_never_kills_the_node(node):
    proc, client, log = node
    bad, good = _bad_messages()
    for msg in bad.values():
        client.pub_image.publish(msg)
        client.spin_until(lambda: False, 0.3)
    assert proc.poll() is None
    _send(client, good, n=2)
    text = log.read_text()
    # each reason is logged, though they came within one throttle period
    for reason in ("unsupported encoding", "data length", "empty image"):
        assert f"dropped a frame: {reason}" in text, reason
    n = len(client.received["/diagnostics"])
    assert client.spin_until(lambda: len(client.received["/diagnostics"]) > n, 5)
    values = {kv.key: kv.value for kv in client.received["/diagnostics"][-1].status[0].values}
    assert values["last_error"].startswith("dropped a frame: ")


def test_flood_keeps_output_and_memory_flat(node):
    proc, client, _ = node
    msg = image_msg(_rgb(3))
    client.pub_info.publish(info_msg(K_CAM, H, W))
    for _ in range(60):  # warm up
        client.pub_image.publish(msg)
        client.spin_until(lambda: False, 1 / 60)
    before_rss, before_n = rss_mb(proc.pid), len(client.received["depth"])
    end = time.monotonic() + 6.0
    while time.monotonic() < end:
        client.pub_image.publish(msg)
        client.spin_until(lambda: False, 1 / 60)
    assert proc.poll() is None
    assert len(client.received["depth"]) - before_n > 10
    assert rss_mb(proc.pid) - before_rss < 50


def test_burst_keeps_the_newest_and_counts_drops(node):
    from spidepth_ros.depth_node import _HAS_MESSAGE_INFO
    _, client, _ = node
    client.pub_info.publish(info_msg(K_CAM, H, W))

    def dropped():
        n = len(client.received["/diagnostics"])  # wait for a report made after everything before
        assert client.spin_until(lambda: len(client.received["/diagnostics"]) > n + 1, 10)
        return int({kv.key: kv.value for kv in client.received["/diagnostics"][-1].status[0].values}["dropped_frames"])

    _send(client, image_msg(_rgb(9)), info=False)  # the node has heard this publisher: gaps count from here
    before, start = dropped(), len(client.received["depth"])
    msgs = [image_msg(_rgb(10 + i)) for i in range(30)]
    for i, msg in enumerate(msgs):
        msg.header.stamp.sec = 1000 + i
        client.pub_image.publish(msg)  # all at once: far faster than the node infers
    client.spin_until(lambda: False, 3.0)
    client.spin_until_quiet("depth")  # a loaded machine may still be working through the burst
    got = [m.header.stamp.sec for m in client.received["depth"][start:]]
    assert 0 < len(got) < 30 and got == sorted(got)
    assert got[-1] >= 1025  # the newest frames win
    if _HAS_MESSAGE_INFO:  # every frame up to the last processed one was processed or counted as dropped
        assert dropped() - before + len(got) == got[-1] - 1000 + 1


def test_diagnostics(node):
    _, client, _ = node
    assert client.spin_until(lambda: len(client.received["/diagnostics"]) > 0, 5)
    status = client.received["/diagnostics"][-1].status[0]
    values = {kv.key: kv.value for kv in status.values}
    assert values["backend"] == "torch"
    assert {"input_rate_hz", "output_rate_hz", "latency_ms", "dropped_frames", "scale"} <= set(values)


def _param_setter(client):
    from rcl_interfaces.srv import SetParameters
    from rclpy.parameter import Parameter
    srv = client.node.create_client(SetParameters, "/depth_node/set_parameters")
    assert srv.wait_for_service(timeout_sec=10)

    def set_param(name, value):
        req = SetParameters.Request(parameters=[Parameter(name, value=value).to_parameter_msg()])
        fut = srv.call_async(req)
        assert client.spin_until(fut.done, 10)
        return fut.result().results[0]
    return set_param


def test_parameters_are_validated(node):
    _, client, _ = node
    set_param = _param_setter(client)
    assert not set_param("scale_policy", "magic").successful
    assert "model_path" in set_param("model_path", "/tmp/other.pt").reason
    res = set_param("backend", "torch")
    assert not res.successful and "read-only" in res.reason.lower()
    assert set_param("point_decimation", 2).successful
    cloud = _send(client, image_msg(_rgb(4)), n=2, key="points")
    assert (cloud.height, cloud.width) == (32, 96)
    assert set_param("point_decimation", 1).successful


def _image_array(msg) -> np.ndarray:
    return np.frombuffer(bytes(msg.data), np.float32).reshape(msg.height, msg.width)


def test_uncertainty_topic_and_point_filter(node, tiny_checkpoint):
    from spidepth_core.inference import Predictor
    _, client, _ = node
    rgb = _rgb(8)
    ref = Predictor(tiny_checkpoint, "torch").predict(rgb, K_CAM, output_size="model", uncertainty=True)
    msg = _send(client, image_msg(rgb, stamp=(5, 6)), n=2, key="depth/uncertainty")
    assert msg.encoding == "32FC1" and (msg.header.stamp.sec, msg.header.stamp.nanosec) == (5, 6)
    spread = _image_array(msg)
    assert spread.shape == ref.uncertainty.shape and (spread > 0).all()
    assert np.allclose(spread, ref.uncertainty, rtol=1e-4, atol=1e-4)
    # points whose uncertainty exceeds the fraction of their depth drop out, the rest stay
    relative = ref.uncertainty / ref.depth
    limit = float(np.median(relative))
    set_param = _param_setter(client)
    assert set_param("point_max_relative_uncertainty", limit).successful
    try:
        cloud = _send(client, image_msg(rgb), n=3, key="points")
    finally:
        assert set_param("point_max_relative_uncertainty", 0.0).successful
    z = np.frombuffer(bytes(cloud.data), np.float32).reshape(cloud.height, cloud.width, -1)[..., 2]
    clear = np.abs(relative - limit) > 1e-3 * limit  # pixels not on the threshold itself
    assert (np.isnan(z) == (relative > limit))[clear].all()
    assert 0.3 < np.isnan(z).mean() < 0.7


def test_compressed_input(tiny_checkpoint, tmp_path):
    proc = start_node({"model_path": str(tiny_checkpoint), "backend": "torch", "use_compressed": True},
                      extra=["-r", "__node:=depth_node_c"], log=tmp_path / "log")
    client = Client("test_client_c")
    try:
        assert client.spin_until(lambda: client.pub_compressed.get_subscription_count() > 0, 90)
        from sensor_msgs.msg import CompressedImage
        msg = CompressedImage(format="jpeg", data=cv2.imencode(".jpg", _rgb())[1].tobytes())
        start = time.monotonic()
        while not client.received["depth"] and time.monotonic() - start < 30:
            client.pub_compressed.publish(msg)
            client.spin_until(lambda: bool(client.received["depth"]), 0.2)
        assert client.received["depth"] and client.received["depth"][0].height == 64
        assert "no usable camera_info" in (tmp_path / "log").read_text()
        # a 12000x12000 PNG of 30 KB is rejected from its header, before decoding (432 MB of pixels)
        rss = rss_mb(proc.pid)
        bomb = CompressedImage(format="png", data=png_bomb(12000))
        bomb.header.stamp.sec = 4242
        for _ in range(3):
            client.pub_compressed.publish(bomb)
            client.spin_until(lambda: False, 0.5)
        client.pub_compressed.publish(msg)
        client.spin_until(lambda: False, 2.0)
        assert "12000x12000 exceeds" in (tmp_path / "log").read_text()
        assert all(m.header.stamp.sec != 4242 for m in client.received["depth"])
        assert rss_mb(proc.pid) - rss < 100 and proc.poll() is None
    finally:
        client.close()
        stop_node(proc)

