"""Hostile input to the ``spidepth`` command and the core it runs on: real files, each of which used to give a
traceback, wrong figures or a runaway process. Every user-supplied file that is bad gets one line naming it
and exit 2 (a folder run of ``predict`` skips the bad image and exits 1)."""
import os
import pickle
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from conftest import ROOT
from ros_helpers import png_bomb
from spidepth_core.checkpoint import save_model
from spidepth_core.cli import main
from spidepth_core.data.bag import bag_sequences, write_camera_bag
from spidepth_core.files import TEMP_MARK
from spidepth_core.inference import Predictor
from spidepth_core.models import create_model
from spidepth_core.pinhole import kitti_intrinsics
from spidepth_core.scale import MAX_STEP, ScaleEstimator
from spidepth_core.synth import render_sequence

H, W = 64, 192


def _error(capsys) -> str:
    """The command's error: one line (after any progress bars), no traceback."""
    err = capsys.readouterr().err.strip()
    assert err and "Traceback" not in err, err
    line = err.splitlines()[-1]
    assert line.startswith("spidepth ") and ": error: " in line, err
    return line


def _frames(n: int, seed: int = 5) -> list[np.ndarray]:
    return [rgb for rgb, _, _ in render_sequence(seed, n, H, W)]


def _rgbd_bag(path, frames: int, depth_hw=(H, W), storage="sqlite3"):
    depths = [np.full(depth_hw, 5.0, np.float32) for _ in range(frames)]
    return write_camera_bag(path, _frames(frames), kitti_intrinsics(H, W), storage=storage, depths=depths)


def _evaluate_bag(checkpoint, bag) -> list[str]:
    return ["evaluate", "--model", str(checkpoint), "--backend", "torch", "--bag", str(bag), "--image-topic",
            "/camera/image_raw", "--camera-info-topic", "/camera/camera_info", "--depth-topic", "/camera/depth/image"]


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_evaluate_on_a_corrupt_bag_with_a_depth_topic_is_one_line(tiny_checkpoint, tmp_path, monkeypatch, capsys,
                                                                 storage):
    monkeypatch.setenv("SPIDEPTH_CACHE", str(tmp_path / "cache"))
    bag = _rgbd_bag(tmp_path / "rgbd", 6, storage=storage)
    data = next(p for p in bag.iterdir() if p.suffix in (".db3", ".mcap"))
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 3])  # cut off mid-recording
    assert main(_evaluate_bag(tiny_checkpoint, bag)) == 2
    err = _error(capsys)
    assert str(bag) in err and ("corrupt" in err or "cannot open" in err)


def test_a_bag_re_recorded_at_the_same_path_is_decoded_anew(tmp_path, caplog):
    cache = tmp_path / "cache"
    bag = tmp_path / "drive"
    _rgbd_bag(bag, 12)
    train, _ = bag_sequences(bag, "/camera/image_raw", "/camera/camera_info", cache_dir=str(cache), min_motion=0)
    assert len(train[0]) == 12
    with caplog.at_level("INFO", logger="spidepth.data"):
        train, _ = bag_sequences(bag, "/camera/image_raw", "/camera/camera_info", cache_dir=str(cache),
                                 min_motion=0)
    assert len(train[0]) == 12 and "reusing its frames decoded earlier" in caplog.text  # unchanged: reused, said
    for f in bag.iterdir():
        f.unlink()
    bag.rmdir()
    _rgbd_bag(bag, 8)  # the same path, a new recording
    caplog.clear()
    with caplog.at_level("INFO", logger="spidepth.data"):
        train, _ = bag_sequences(bag, "/camera/image_raw", "/camera/camera_info", cache_dir=str(cache),
                                 min_motion=0)
    assert len(train[0]) == 8 and "reusing" not in caplog.text


def test_ground_truth_too_small_to_score_is_refused(tiny_checkpoint, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SPIDEPTH_CACHE", str(tmp_path / "cache"))
    bag = _rgbd_bag(tmp_path / "pinhole", 6, depth_hw=(1, 1))  # 1x1 depth frames: median scaling fits them exactly
    assert main(_evaluate_bag(tiny_checkpoint, bag)) == 2
    err = _error(capsys)
    assert "too small or too sparse to score" in err and "abs_rel" not in capsys.readouterr().out


def _good_images(folder, n=3):
    folder.mkdir()
    for i, rgb in enumerate(_frames(n)):
        cv2.imwrite(str(folder / f"img{i}.png"), rgb[..., ::-1])


@pytest.mark.slow  # measures a process's peak memory over a decompression bomb
def test_predict_skips_an_image_over_the_pixel_limit_before_decoding_it(tiny_checkpoint, tmp_path, capsys):
    images = tmp_path / "images"
    _good_images(images)
    (images / "img1_bomb.png").write_bytes(png_bomb(20000))  # 48 KB that decode to 1.2 GB of RGB
    out = tmp_path / "out"
    code = subprocess.run([sys.executable, "-c", "import resource, sys\nfrom spidepth_core.cli import main\n"
                           f"code = main(['predict', {str(images)!r}, '--model', {str(tiny_checkpoint)!r}, "
                           f"'--backend', 'torch', '--output', {str(out)!r}])\n"
                           "print('peak_mb', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)\n"
                           "sys.exit(code)"],
                          env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"},
                          capture_output=True, text=True, timeout=300)
    assert code.returncode == 1, code.stderr[-2000:]  # the run went on past the bad image
    assert "skipped" in code.stderr and "20000x20000 exceeds" in code.stderr and "Traceback" not in code.stderr
    assert sorted(p.name for p in out.glob("*_depth.npy")) == ["img0_depth.npy", "img1_depth.npy",
                                                              "img2_depth.npy"]
    peak = int(code.stdout.split("peak_mb")[1].split()[0])
    assert peak < 1500, peak  # the bomb was never decoded (it would need > 1200 MB)
    bomb = tmp_path / "huge.png"
    bomb.write_bytes(png_bomb(40000))  # past OpenCV's own limit: used to be a raw cv2.error
    assert main(["predict", str(bomb), "--model", str(tiny_checkpoint), "--backend", "torch",
                 "--output", str(out)]) == 2
    assert str(bomb) in _error(capsys)
    capsys.readouterr()
    small = tmp_path / "small"
    assert main(["predict", str(images / "img0.png"), "--model", str(tiny_checkpoint), "--backend", "torch",
                 "--max-pixels", "1000", "--output", str(small)]) == 2
    assert "exceeds the 1000 pixel limit" in _error(capsys)


def test_predict_refuses_a_nan_scale_and_names_a_malformed_intrinsics_file(tiny_checkpoint, tmp_path, capsys):
    images = tmp_path / "images"
    _good_images(images, 1)
    args = ["predict", str(images), "--model", str(tiny_checkpoint), "--backend", "torch", "--output",
            str(tmp_path / "out")]
    for value in ("nan", "inf", "-1"):
        assert main([*args, "--scale-policy", "fixed", "--depth-scale", value]) == 2
        assert "depth_scale" in _error(capsys)
    assert not (tmp_path / "out").exists()  # nothing written
    bad = tmp_path / "camera.yaml"
    bad.write_text("fx: [1, 2\nfy: 3\n")
    assert main([*args, "--scale-policy", "camera_height", "--intrinsics", str(bad)]) == 2
    err = _error(capsys)
    assert str(bad) in err and "not valid YAML" in err and "line" in err
    bad.write_text("just a sentence")
    assert main([*args, "--scale-policy", "camera_height", "--intrinsics", str(bad)]) == 2
    assert str(bad) in _error(capsys)


class _Payload:
    """Pickled, it asks the loader to create a file: a stand-in for code a crafted .pth would run."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_convert_checkpoint_names_a_bad_weights_file(tmp_path, capsys):
    marker = tmp_path / "code_ran"
    contents = {"empty": b"", "text": b"these are not weights\n",
                "pickle": pickle.dumps({"weights": _Payload(marker)}, protocol=2),
                "zip_pickle": None}
    for name, data in contents.items():
        folder = tmp_path / name
        folder.mkdir()
        if data is None:  # torch.save's own zip format around the same payload
            torch.save({"weights": _Payload(marker)}, folder / "encoder.pth")
        else:
            (folder / "encoder.pth").write_bytes(data)
        torch.save({}, folder / "depth.pth")
        assert main(["convert-checkpoint", str(folder), str(tmp_path / f"{name}.pt")]) == 2, name
        err = _error(capsys)
        assert str(folder / "encoder.pth") in err, err
    assert not marker.exists()  # no pickled code ran
    folder = tmp_path / "tensor"  # a valid file that is not a dict of weights
    folder.mkdir()
    torch.save(torch.zeros(3), folder / "encoder.pth")
    torch.save({}, folder / "depth.pth")
    assert main(["convert-checkpoint", str(folder), str(tmp_path / "t.pt")]) == 2
    assert "not a dict of weights" in _error(capsys)


def test_a_config_file_that_is_not_utf8_is_named(tmp_path, capsys):
    config = tmp_path / "latin1.yaml"
    config.write_bytes("train:\n  lr: 1e-4  # r\xe9glage\n".encode("latin-1"))
    assert main(["train", str(config), f"run.out_dir={tmp_path / 'run'}"]) == 2
    err = _error(capsys)
    assert str(config) in err and "not UTF-8" in err
    assert not (tmp_path / "run").exists()


def test_an_export_killed_mid_write_leaves_nothing_behind(tiny_checkpoint, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("SPIDEPTH_CACHE", str(cache))
    (cache / "onnx").mkdir(parents=True)
    writer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    leftover = cache / "onnx" / f".tiny-0123456789abcdef-v2.onnx{TEMP_MARK}{writer.pid}-x1y2z3"
    leftover.write_bytes(b"\0" * 1000)  # what an export killed with -9 leaves: its temp file, named by its PID
    writer.kill()
    writer.wait()
    predictor = Predictor(tiny_checkpoint, "onnxruntime")
    assert not leftover.exists()
    assert predictor.backend.name == "onnxruntime" and str(predictor.plan.onnx).startswith(str(cache))
    alive = cache / "onnx" / f".other.onnx{TEMP_MARK}{os.getpid()}-a1b2c3"  # a live writer's file stays
    alive.write_bytes(b"\0")
    other = tmp_path / "other.pt"
    torch.manual_seed(3)
    save_model(other, create_model("spidepth_tiny"), "spidepth_tiny")
    Predictor(other, "onnxruntime")
    assert alive.exists()


def test_an_unwritable_cache_falls_back_to_a_temporary_folder(tiny_checkpoint, tmp_path, monkeypatch, caplog):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("SPIDEPTH_CACHE", str(blocker / "cache"))  # cannot be created, even by root
    with caplog.at_level("WARNING", logger="spidepth.inference"):
        predictor = Predictor(tiny_checkpoint, "onnxruntime")
    assert predictor.backend.name == "onnxruntime"
    assert "set SPIDEPTH_CACHE to a writable folder" in caplog.text
    depth = predictor.predict(_frames(1)[0]).depth
    assert depth.shape == (H, W) and np.isfinite(depth).all()


def test_compact_in_place_reports_the_size_it_started_from(tiny_checkpoint, tmp_path, capsys):
    ckpt = torch.load(tiny_checkpoint, weights_only=True)
    ckpt["optimizer"] = {"state": torch.zeros(500_000)}  # train state that compact drops (2 MB)
    path = tmp_path / "last.pt"
    torch.save(ckpt, path)
    before = path.stat().st_size / 2**20
    assert main(["compact", str(path), str(path)]) == 0
    out = capsys.readouterr().out
    assert f"(from {before:.1f} MB)" in out and path.stat().st_size / 2**20 < before - 1


def test_one_wrong_frame_cannot_move_the_camera_height_scale_far():
    K = kitti_intrinsics(H, W)
    _, depth, _ = next(iter(render_sequence(7, 1, H, W)))
    estimator = ScaleEstimator("camera_height", camera_height=1.65, smoothing=0.0)
    first = estimator.update(depth, K)
    bad = K.copy()
    bad[1, 1] = 1e9  # a CameraInfo with fy = 1e9 flattens the ground to a height of ~0
    assert estimator.update(depth, bad) <= first * MAX_STEP * 1.0001
    for _ in range(3):
        estimator.update(depth, K)
    assert estimator.scale == pytest.approx(first, rel=1e-6)
    with pytest.raises(ValueError, match="finite"):
        ScaleEstimator("fixed", depth_scale=float("nan"))
