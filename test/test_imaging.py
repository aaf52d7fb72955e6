"""The runtime's image files and resampling (Pillow and NumPy) give what OpenCV gave, which training uses."""
import io

import cv2
import numpy as np
import pytest
from PIL import Image

from spidepth_core import imaging
from spidepth_core.synth import render_sequence


@pytest.fixture(scope="module")
def scene():
    return next(iter(render_sequence(7, 1, 480, 640)))[0]


@pytest.mark.parametrize("hw", [(96, 320), (192, 640), (100, 333), (240, 427), (480, 640)])
def test_area_resize_matches_opencv_inter_area(scene, hw):
    ours = imaging.resize_area(scene, hw)
    theirs = cv2.resize(scene, (hw[1], hw[0]), interpolation=cv2.INTER_AREA)
    assert ours.shape == theirs.shape and ours.dtype == np.uint8
    assert np.abs(ours.astype(int) - theirs).max() <= 1  # rounding of the same area means


@pytest.mark.parametrize("hw", [(480, 640), (192, 640), (50, 100), (97, 1001)])
def test_linear_resize_matches_opencv_inter_linear(hw):
    depth = np.random.default_rng(0).uniform(1, 80, (96, 320)).astype(np.float32)
    ours = imaging.resize_linear(depth, hw)
    theirs = cv2.resize(depth, (hw[1], hw[0]), interpolation=cv2.INTER_LINEAR)
    assert ours.dtype == np.float32 and ours.flags.c_contiguous
    assert np.allclose(ours, theirs, rtol=1e-6, atol=1e-5)


def test_nearest_resize_repeats_pixels():
    small = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    big = imaging.resize_nearest(small, (4, 6))
    assert np.array_equal(big[::2, ::2], small) and np.array_equal(big[1::2, 1::2], small)


def test_png_and_jpeg_decode_as_opencv_decodes_them(scene, tmp_path):
    for ext in (".png", ".jpg"):
        ok, data = cv2.imencode(ext, cv2.cvtColor(scene, cv2.COLOR_RGB2BGR))
        ours = imaging.decode(data.tobytes())
        theirs = cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        assert ok and ours.shape == scene.shape and np.abs(ours.astype(int) - theirs).max() <= 1, ext
    deep = (np.random.default_rng(1).random((20, 30)) * 65535).astype(np.uint16)
    ok, data = cv2.imencode(".png", deep)
    assert np.array_equal(imaging.decode(data.tobytes()), cv2.imdecode(data, cv2.IMREAD_COLOR))  # high byte
    with pytest.raises(ValueError, match="cannot decode"):
        imaging.decode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)


def test_decode_turns_the_picture_upright_as_its_exif_says(scene):
    buf = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: the camera was turned; show it rotated 90 degrees clockwise
    Image.fromarray(scene).save(buf, format="JPEG", exif=exif, quality=95)
    ours = imaging.decode(buf.getvalue())
    theirs = cv2.cvtColor(cv2.imdecode(np.frombuffer(buf.getvalue(), np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    assert ours.shape == (640, 480, 3) and ours.shape == theirs.shape
    assert np.abs(ours.astype(int) - theirs).mean() < 1.0


def test_png_files_round_trip_depth_millimetres_and_colour(scene, tmp_path):
    mm = (np.random.default_rng(2).random((20, 30)) * 65535).astype(np.uint16)
    imaging.write_png(tmp_path / "d.png", mm)
    assert np.array_equal(imaging.read_uint16(tmp_path / "d.png"), mm)
    assert np.array_equal(cv2.imread(str(tmp_path / "d.png"), cv2.IMREAD_UNCHANGED), mm)
    imaging.write_png(tmp_path / "c.png", scene)
    assert np.array_equal(cv2.imread(str(tmp_path / "c.png"))[..., ::-1], scene)
    assert imaging.read_uint16(tmp_path / "c.png") is None  # colour, not 16-bit depth
    with pytest.raises(ValueError, match="uint8 or HxW uint16"):
        imaging.write_png(tmp_path / "f.png", mm.astype(np.float32))
