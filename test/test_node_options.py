"""Node options that need a node of their own (and no other node on the same topics): QoS overrides,
the idle state, exact camera_info pairing."""
import time

import pytest
from test_node import K_CAM, H, W, _rgb

from ros_helpers import Client, image_msg, info_msg, start_node, stop_node

pytestmark = pytest.mark.slow  # each test starts its own ROS node process


def test_qos_follows_rep_2003_and_can_be_overridden(tiny_checkpoint, tmp_path):
    from rclpy.qos import ReliabilityPolicy
    overrides = tmp_path / "qos.yaml"
    overrides.write_text("/**:\n  ros__parameters:\n    qos_overrides:\n      /depth:\n        publisher:\n"
                         "          reliability: best_effort\n")
    proc = start_node({"model_path": str(tiny_checkpoint), "backend": "torch"},
                      extra=["-r", "__node:=depth_node_q", "--params-file", str(overrides)], log=tmp_path / "log")
    client = Client("test_client_q")
    try:
        assert client.wait_for_node(90), (tmp_path / "log").read_text()

        def reliability(topic):
            infos = [i for i in client.node.get_publishers_info_by_topic(topic) if i.node_name == "depth_node_q"]
            return infos[0].qos_profile.reliability if infos else None

        assert client.spin_until(lambda: reliability("/depth") is not None, 10)
        assert reliability("/depth") == ReliabilityPolicy.BEST_EFFORT  # changed from the parameters file
        assert reliability("/depth/camera_info") == ReliabilityPolicy.RELIABLE  # the default
        # the camera publishes best effort; a reliable subscriber (depth_image_proc's default) gets depth
        cam = client.node.get_publishers_info_by_topic("/image")
        assert all(i.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT for i in cam)
        for _ in range(30):
            client.pub_image.publish(image_msg(_rgb(5)))
            if client.spin_until(lambda: bool(client.received["depth/camera_info"]), 0.3):
                break
        subs = [i for i in client.node.get_subscriptions_info_by_topic("/depth/camera_info")
                if i.node_name == "test_client_q"]
        assert subs[0].qos_profile.reliability == ReliabilityPolicy.RELIABLE
        assert client.received["depth/camera_info"]
    finally:
        client.close()
        stop_node(proc)


def test_idle_without_subscribers_and_back(tiny_checkpoint, tmp_path):
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image
    proc = start_node({"model_path": str(tiny_checkpoint), "backend": "torch"},
                      extra=["-r", "__node:=depth_node_idle"], log=tmp_path / "log")
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("camera_only", context=context)  # publishes images, listens to diagnostics only
    executor = rclpy.executors.SingleThreadedExecutor(context=context)
    executor.add_node(node)
    camera = node.create_publisher(Image, "image", qos_profile_sensor_data)
    diags: list = []
    node.create_subscription(DiagnosticArray, "/diagnostics", lambda m: diags.append(
        {kv.key: kv.value for kv in m.status[0].values} | {"message": m.status[0].message}), 10)

    def stream(seconds, until=lambda: False):
        end = time.monotonic() + seconds
        while time.monotonic() < end and not until():
            camera.publish(image_msg(_rgb(6)))
            executor.spin_once(timeout_sec=0.1)

    try:
        stream(90, until=lambda: camera.get_subscription_count() > 0)
        stream(4)
        assert diags and diags[-1]["message"] == "idle: no subscribers"
        assert float(diags[-1]["input_rate_hz"]) > 0 and float(diags[-1]["output_rate_hz"]) == 0
        got: list = []
        node.create_subscription(Image, "depth", got.append, 10)
        stream(30, until=lambda: len(got) >= 3)
        assert len(got) >= 3  # inference resumed for the new subscriber
        stream(3)
        assert diags[-1]["message"] == "ok" and float(diags[-1]["output_rate_hz"]) > 0
        assert "idle, not running the network" in (tmp_path / "log").read_text()
    finally:
        node.destroy_node()
        rclpy.shutdown(context=context)
        stop_node(proc)


def test_exact_camera_info_sync_pairs_by_stamp(tiny_checkpoint, tmp_path):
    proc = start_node({"model_path": str(tiny_checkpoint), "backend": "torch", "camera_info_sync": "exact"},
                      extra=["-r", "__node:=depth_node_sync"], log=tmp_path / "log")
    client = Client("test_client_sync")
    # two calibrations, told apart by the focal length (10% apart: a larger jump is held until it repeats)
    K_a, K_b = K_CAM, K_CAM * [[1.1], [1.1], [1.0]]

    def send(msg):
        if hasattr(msg, "encoding"):
            client.pub_image.publish(msg)
        else:
            client.pub_info.publish(msg)
        client.spin_until(lambda: False, 0.3)

    def stamped(msg, sec):
        msg.header.stamp.sec = sec
        return msg

    def answered(sec, topic="depth"):
        return [m for m in client.received[topic] if m.header.stamp.sec == sec]

    def unmatched():
        n = len(client.received["/diagnostics"])
        assert client.spin_until(lambda: len(client.received["/diagnostics"]) > n + 1, 10)
        return int({kv.key: kv.value for kv in client.received["/diagnostics"][-1].status[0].values}
                   ["unmatched_frames"])

    try:
        assert client.wait_for_node(90), (tmp_path / "log").read_text()
        # Best-effort topics and discovery both ways (the node runs only once it sees our subscriptions):
        # repeat one matched pair until its depth comes back, so a loaded machine cannot drop the test's frames.
        for _ in range(20):
            send(stamped(info_msg(K_a, H, W), 50))
            send(stamped(image_msg(_rgb(6)), 50))
            if client.spin_until(lambda: answered(50), 2):
                break
        assert answered(50), (tmp_path / "log").read_text()
        before = unmatched()
        send(stamped(info_msg(K_a, H, W), 100))
        send(stamped(info_msg(K_b, H, W), 200))  # the newest camera_info is not the image's
        send(stamped(image_msg(_rgb(7)), 100))
        assert client.spin_until(lambda: answered(100, "depth/camera_info"), 20)
        first = answered(100, "depth/camera_info")[-1]
        assert first.k[0] == pytest.approx(K_a[0, 0] * 192 / W)
        send(stamped(image_msg(_rgb(8)), 300))  # its camera_info comes later: the image waits for it
        assert not any(m.header.stamp.sec == 300 for m in client.received["depth"])
        send(stamped(info_msg(K_b, H, W), 300))
        assert client.spin_until(lambda: any(m.header.stamp.sec == 300 for m in client.received["depth"]), 20)
        assert client.received["depth/camera_info"][-1].k[0] == pytest.approx(K_b[0, 0] * 192 / W)
        send(stamped(image_msg(_rgb(9)), 400))  # never matched: replaced by the next waiting image
        send(stamped(image_msg(_rgb(9)), 500))
        assert unmatched() == before + 1
    finally:
        client.close()
        stop_node(proc)
