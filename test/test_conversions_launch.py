import numpy as np
import pytest

pytest.importorskip("sensor_msgs")
from sensor_msgs.msg import CameraInfo  # noqa: E402

from ros_helpers import ROOT, image_msg, png_bomb  # noqa: E402
from spidepth_ros import conversions as conv  # noqa: E402


def test_encodings_roundtrip_to_rgb():
    rgb = np.random.default_rng(0).integers(0, 255, (6, 8, 3), dtype=np.uint8)
    assert np.array_equal(conv.image_to_rgb(image_msg(rgb, encoding="rgb8")), rgb)
    assert np.array_equal(conv.image_to_rgb(image_msg(rgb, encoding="bgr8")), rgb)
    mono = conv.image_to_rgb(image_msg(rgb, encoding="mono8"))
    assert np.array_equal(mono[..., 1], rgb[..., 0])
    m16 = image_msg(rgb, encoding="mono8")
    m16.encoding, m16.step = "mono16", 16
    m16.data = (np.arange(48, dtype="<u2") * 256).tobytes()
    assert conv.image_to_rgb(m16)[0, 1, 0] == 1


def test_padded_rows_are_accepted():
    rgb = np.random.default_rng(1).integers(0, 255, (4, 5, 3), dtype=np.uint8)
    msg = image_msg(rgb)
    msg.step = 16
    msg.data = np.pad(rgb.reshape(4, 15), ((0, 0), (0, 1))).tobytes()
    assert np.array_equal(conv.image_to_rgb(msg), rgb)


def test_bad_images_are_clear_errors():
    msg = image_msg(np.zeros((4, 4, 3), np.uint8))
    msg.data = msg.data[:-1]
    with pytest.raises(ValueError, match="data length"):
        conv.image_to_rgb(msg)
    with pytest.raises(ValueError, match="pixel limit"):
        conv.image_to_rgb(image_msg(np.zeros((4, 4, 3), np.uint8)), max_pixels=10)


def test_compressed_size_is_read_before_decoding():
    import cv2
    from sensor_msgs.msg import CompressedImage

    from spidepth_core.image_codec import compressed_size
    rgb = np.random.default_rng(2).integers(0, 255, (30, 50, 3), dtype=np.uint8)
    for ext in (".jpg", ".png"):
        data = cv2.imencode(ext, rgb)[1].tobytes()
        assert compressed_size(data) == (50, 30)
        assert conv.image_to_rgb(CompressedImage(format=ext[1:], data=data)).shape == (30, 50, 3)
    progressive = cv2.imencode(".jpg", rgb, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1].tobytes()
    assert compressed_size(progressive) == (50, 30)
    bomb = png_bomb(12000)
    assert len(bomb) < 100_000 and compressed_size(bomb) == (12000, 12000)
    assert cv2.imdecode(np.frombuffer(bomb, np.uint8), cv2.IMREAD_GRAYSCALE).shape == (12000, 12000)  # real
    with pytest.raises(ValueError, match="12000x12000 exceeds the 12582912 pixel limit"):
        conv.image_to_rgb(CompressedImage(format="png", data=bomb))
    # The node's default limit fits a 4096x3072 camera and refuses a 5 KB PNG of 25 MP (over 225 MB decoded).
    from spidepth_ros.params import PARAMETERS
    limit = PARAMETERS["max_image_pixels"][0]
    assert 4096 * 3072 <= limit < 5000 * 5000
    with pytest.raises(ValueError, match="5000x5000 exceeds"):
        conv.image_to_rgb(CompressedImage(format="png", data=png_bomb(5000)), limit)
    camera = cv2.imencode(".jpg", np.zeros((3072, 4096, 3), np.uint8))[1].tobytes()
    assert conv.image_to_rgb(CompressedImage(format="jpeg", data=camera), limit).shape == (3072, 4096, 3)
    with pytest.raises(ValueError, match="neither PNG nor JPEG"):
        conv.image_to_rgb(CompressedImage(format="bmp", data=cv2.imencode(".bmp", rgb)[1].tobytes()))
    with pytest.raises(ValueError, match="no frame header"):
        conv.image_to_rgb(CompressedImage(format="jpeg", data=b"\xff\xd8\xff\xda\x00\x02"))


def test_camera_info_scaling_matches_image_proc():
    info = CameraInfo()
    info.k = [700.0, 0, 640, 0, 710, 360, 0, 0, 1]
    info.p = [700.0, 0, 640, 10, 0, 710, 360, 20, 0, 0, 1, 0]
    out = conv.scaled_camera_info(np.reshape(info.k, (3, 3)), (720, 1280), (192, 640), info.header, info)
    sx, sy = 0.5, 192 / 720
    assert np.allclose(out.k, [700 * sx, 0, 640 * sx, 0, 710 * sy, 360 * sy, 0, 0, 1])
    assert np.allclose(out.p, [700 * sx, 0, 640 * sx, 10 * sx, 0, 710 * sy, 360 * sy, 20, 0, 0, 1, 0])
    # camera_info calibrated at 1280x720 while the images arrive at 640x360: P is scaled from its own size
    info.width, info.height = 1280, 720
    K_image = np.reshape(info.k, (3, 3)) * [[0.5], [0.5], [1]]
    half = conv.scaled_camera_info(K_image, (360, 640), (192, 640), info.header, info)
    assert np.allclose(half.k, out.k) and np.allclose(half.p, out.p)
    assert conv.camera_info_K(CameraInfo()) is None


def test_launch_file_describes_the_node():
    launch = pytest.importorskip("launch", reason="launch/launch_ros are not installable from PyPI here")
    pytest.importorskip("launch_ros")
    import importlib.util
    spec = importlib.util.spec_from_file_location("depth_launch", ROOT / "launch" / "depth.launch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert isinstance(module.generate_launch_description(), launch.LaunchDescription)


def test_launch_file_remaps_every_topic_of_the_node():
    import re
    node = (ROOT / "spidepth_ros" / "depth_node.py").read_text()
    topics = set(re.findall(r'publisher\((?:Image|CameraInfo|PointCloud2), "([^"]+)"\)', node))
    topics |= set(re.findall(r'create_subscription\(\w+, "([^"]+)"', node))
    assert {"depth", "depth/uncertainty", "points", "image", "camera_info"} <= topics
    launch = (ROOT / "launch" / "depth.launch.py").read_text()
    assert all(f'("{topic}",' in launch for topic in topics), sorted(t for t in topics if f'("{t}",' not in launch)
    assert "-r camera_info:=" in (ROOT / "README.md").read_text()  # the README's ros2 run remaps both inputs


def test_parameter_defaults_agree_in_code_yaml_and_readme():
    import re

    import yaml

    from spidepth_ros.params import PARAMETERS
    yaml_values = yaml.safe_load((ROOT / "config" / "depth.yaml").read_text())["/**"]["ros__parameters"]
    assert yaml_values == {name: spec[0] for name, spec in PARAMETERS.items()}
    table = (ROOT / "README.md").read_text().split("Parameters (`config/depth.yaml`")[1].split("\n\n")[1]
    documented = {n for row in table.splitlines()[2:] for n in re.findall(r"`(\w+)`", row.split("|")[1])}
    assert documented == set(PARAMETERS)


def test_params_file_prefers_an_installed_copy(tmp_path, monkeypatch):
    import sys

    from spidepth_ros.params import params_file
    assert params_file() == ROOT / "config" / "depth.yaml"  # the source tree, when nothing is installed
    installed = tmp_path / "share" / "spidepth_ros" / "config" / "depth.yaml"
    installed.parent.mkdir(parents=True)
    installed.write_text((ROOT / "config" / "depth.yaml").read_text())
    monkeypatch.setattr(sys, "prefix", str(tmp_path))  # as after `pip install .` into that prefix
    assert params_file() == installed
    pytest.importorskip("ament_index_python")
    colcon = tmp_path / "install"  # a colcon install: the ament index marks the package's prefix
    (colcon / "share" / "ament_index" / "resource_index" / "packages").mkdir(parents=True)
    (colcon / "share" / "ament_index" / "resource_index" / "packages" / "spidepth_ros").touch()
    (colcon / "share" / "spidepth_ros" / "config").mkdir(parents=True)
    (colcon / "share" / "spidepth_ros" / "config" / "depth.yaml").write_text(installed.read_text())
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(colcon))
    assert params_file() == colcon / "share" / "spidepth_ros" / "config" / "depth.yaml"
