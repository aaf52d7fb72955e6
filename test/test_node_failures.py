"""depth_node against hostile input over real DDS: a wrong CameraInfo, racing and broken model swaps, a stale
frame, an unwritable cache. Each node runs in its own process."""
import json
import time

import numpy as np
import onnx
import pytest
from rcl_interfaces.srv import GetParameters, SetParameters
from rclpy.parameter import Parameter, parameter_value_to_python

from ros_helpers import Client, image_msg, info_msg, rss_mb, start_node, stop_node
from spidepth_core.export import export_onnx
from spidepth_core.inference import default_model_path
from spidepth_core.pinhole import kitti_intrinsics
from spidepth_core.synth import render_sequence

pytestmark = pytest.mark.slow  # each test starts its own ROS node process

H, W = 96, 320  # the bundled model's input size
K_GOOD = kitti_intrinsics(H, W)


class _Node:
    """A running depth_node and a client to drive it, in a namespace of their own (the node's topics are
    relative, so other nodes of this module never see these frames)."""

    def __init__(self, name: str, params: dict, log, env: dict | None = None) -> None:
        self.name, self.log = name, log
        self.proc = start_node(params, extra=["-r", f"__node:={name}", "-r", f"__ns:=/{name}"], log=log, env=env)
        self.client = Client(f"{name}_client", namespace=f"/{name}")
        self.frames = [rgb for rgb, _, _ in render_sequence(11, 4, H, W)]

    def ready(self) -> bool:
        return self.client.wait_for_node(120)

    def service(self, kind, verb):
        srv = self.client.node.create_client(kind, f"/{self.name}/{self.name}/{verb}")
        assert srv.wait_for_service(timeout_sec=10)
        return srv

    def set(self, name, value):
        srv = self.service(SetParameters, "set_parameters")
        fut = srv.call_async(SetParameters.Request(parameters=[Parameter(name, value=value).to_parameter_msg()]))
        assert self.client.spin_until(fut.done, 15)
        return fut.result().results[0]

    def get(self, name):
        srv = self.service(GetParameters, "get_parameters")
        fut = srv.call_async(GetParameters.Request(names=[name]))
        assert self.client.spin_until(fut.done, 15)
        return parameter_value_to_python(fut.result().values[0])

    def diagnostics(self) -> dict:
        """This node's next /diagnostics values (other nodes publish there too)."""
        def mine():
            return [m.status[0] for m in self.client.received["/diagnostics"]
                    if m.status[0].name == f"{self.name}: depth"]
        n = len(mine())
        assert self.client.spin_until(lambda: len(mine()) > n, 10)
        return {kv.key: kv.value for kv in mine()[-1].values}

    def depth(self, sec: int):
        return next((m for m in self.client.received["depth"] if m.header.stamp.sec == sec), None)

    def frame(self, sec: int, K=K_GOOD, info: bool = True, wait: bool = True, info_sec: int | None = None):
        """Publish camera_info (stamped ``info_sec``, default ``sec``) then an image stamped ``sec``; with
        ``wait``, re-send until its depth comes back (best effort and discovery may lose the first)."""
        for _ in range(20 if wait else 1):
            if info:
                msg = info_msg(K, H, W)
                msg.header.stamp.sec = sec if info_sec is None else info_sec
                self.client.pub_info.publish(msg)
                self.client.spin_until(lambda: False, 0.1)
            self.client.pub_image.publish(image_msg(self.frames[sec % len(self.frames)], stamp=(sec, 0)))
            if not wait or self.client.spin_until(lambda: self.depth(sec) is not None, 3):
                return self.depth(sec)
        raise AssertionError(f"no depth for frame {sec}: {self.log.read_text()[-3000:]}")

    def close(self) -> None:
        self.client.close()
        stop_node(self.proc)


@pytest.fixture(scope="module")
def street_node(tmp_path_factory):
    """The bundled model on PyTorch, scaled by the camera_height policy (the node's default range)."""
    log = tmp_path_factory.mktemp("street") / "node.log"
    node = _Node("street_node", {"backend": "torch", "scale_policy": "camera_height", "camera_height": 1.65}, log)
    assert node.ready(), log.read_text()
    yield node
    node.close()


def _finite_share(msg) -> float:
    return float(np.isfinite(np.frombuffer(bytes(msg.data), np.float32)).mean())


def test_one_implausible_camera_info_neither_reaches_the_depth_nor_its_scale(street_node):
    node = street_node
    for sec in range(1, 9):
        node.frame(sec)
    before = float(node.diagnostics()["scale"])
    assert before != 1.0  # the ground fit ran
    bad = K_GOOD.copy()
    bad[1, 1] = 1e9
    node.frame(100, K=bad)
    for sec in range(101, 111):
        node.frame(sec)
    shares = [_finite_share(node.depth(sec)) for sec in range(100, 111)]
    assert min(shares) > 0.5, shares  # no frame came out all NaN
    after = node.diagnostics()
    assert before / 1.5 < float(after["scale"]) < before * 1.5
    assert int(after["refused_camera_info"]) >= 1
    assert "camera_info refused: focal lengths" in node.log.read_text()


def test_a_frame_left_waiting_never_comes_out_after_newer_ones(street_node):
    node = street_node
    assert node.set("camera_info_sync", "exact").successful
    for _ in range(3):  # best effort: send it more than once
        node.frame(40000, info=False, wait=False)  # no camera_info with its stamp yet: it waits
        node.client.spin_until(lambda: False, 0.3)
    assert node.set("camera_info_sync", "latest").successful
    for sec in range(40001, 40011):
        node.frame(sec)
    late = info_msg(K_GOOD, H, W)
    late.header.stamp.sec = 40000  # the waiting image's camera_info, late
    for _ in range(3):
        node.client.pub_info.publish(late)
        node.client.spin_until(lambda: False, 0.7)
    stamps = [m.header.stamp.sec for m in node.client.received["depth"] if m.header.stamp.sec >= 40000]
    assert stamps == sorted(stamps) and 40000 not in stamps


def test_the_model_path_parameter_always_names_the_model_served(street_node, tiny_checkpoint):
    node = street_node
    default = str(default_model_path())
    first = node.set("model_path", str(tiny_checkpoint))
    second = node.set("model_path", "")  # at once, while the first swap still loads
    assert first.successful
    assert not second.successful and "in progress" in second.reason
    deadline = time.monotonic() + 30
    while node.diagnostics()["model"] != str(tiny_checkpoint) and time.monotonic() < deadline:
        pass
    assert node.get("model_path") == str(tiny_checkpoint) and node.diagnostics()["model"] == str(tiny_checkpoint)
    assert node.set("model_path", "").successful  # after the swap: back to the bundled model
    deadline = time.monotonic() + 30
    while node.diagnostics()["model"] != default and time.monotonic() < deadline:
        pass
    assert node.get("model_path") == "" and node.diagnostics()["model"] == default


def _edited(src, dst, edit):
    proto = onnx.load(str(src))
    edit(proto)
    onnx.save(proto, str(dst))
    return dst


def _rename_input(proto):
    proto.graph.input[0].name = "pixels"
    for n in proto.graph.node:
        n.input[:] = ["pixels" if i == "image" else i for i in n.input]


def _input_size(size):
    def edit(proto):
        meta = next(p for p in proto.metadata_props if p.key == "spidepth")
        meta.value = json.dumps({**json.loads(meta.value), "input_size": size})
    return edit


def _transposed_output(proto):
    """A graph that passes every check but gives depth of another shape than it declares."""
    producer = next(n for n in proto.graph.node if "depth" in n.output)
    producer.output[:] = ["depth_raw" if o == "depth" else o for o in producer.output]
    proto.graph.initializer.append(onnx.numpy_helper.from_array(np.array([1, 1, 32, 384], np.int64), "odd_shape"))
    proto.graph.node.append(onnx.helper.make_node("Reshape", ["depth_raw", "odd_shape"], ["depth"]))


def test_an_onnx_file_that_cannot_run_is_refused_or_rolled_back(tiny_checkpoint, tmp_path):
    good = export_onnx(tiny_checkpoint, tmp_path / "tiny.onnx")
    renamed = _edited(good, tmp_path / "renamed.onnx", _rename_input)
    zero = _edited(good, tmp_path / "zero.onnx", _input_size([0, 0]))
    huge = _edited(good, tmp_path / "huge.onnx", _input_size([12000, 12000]))
    odd = _edited(good, tmp_path / "odd.onnx", _transposed_output)
    node = _Node("onnx_node", {"backend": "onnxruntime", "model_path": str(good)}, tmp_path / "log")
    try:
        assert node.ready(), node.log.read_text()
        node.frame(1)
        rss = rss_mb(node.proc.pid)
        for path, reason in ((renamed, "needs input 'image'"), (zero, "input_size 0x0"),
                             (huge, "input_size 12000x12000")):
            result = node.set("model_path", str(path))
            assert not result.successful and reason in result.reason, (path.name, result.reason)
        assert node.set("model_path", str(odd)).successful  # passes the checks; its test inference fails
        deadline = time.monotonic() + 30
        while "failed" not in node.diagnostics()["model_status"] and time.monotonic() < deadline:
            pass
        values = node.diagnostics()
        assert "swap to" in values["model_status"] and "shape" in values["model_status"]
        assert values["model"] == str(good)
        deadline = time.monotonic() + 10
        while node.get("model_path") != str(good) and time.monotonic() < deadline:
            node.client.spin_until(lambda: False, 0.2)
        assert node.get("model_path") == str(good)  # rolled back
        assert node.frame(2) is not None and rss_mb(node.proc.pid) - rss < 200
    finally:
        node.close()


def test_an_unwritable_cache_does_not_stop_the_node(tiny_checkpoint, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("the cache folder would have to be inside this file")
    node = _Node("cache_node", {"backend": "onnxruntime", "model_path": str(tiny_checkpoint)}, tmp_path / "log",
                 env={"SPIDEPTH_CACHE": str(blocker / "cache")})
    try:
        assert node.ready(), node.log.read_text()
        assert node.frame(1) is not None and node.proc.poll() is None
        assert "set SPIDEPTH_CACHE to a writable folder" in node.log.read_text()
    finally:
        node.close()
