"""Issue 3: metrics, protocols, KITTI / Cityscapes / Make3D layouts, metric fine-tuning."""
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from scipy.io import savemat

from conftest import tiny_overrides
from spidepth_core.cli import main
from spidepth_core.config import load_config
from spidepth_core.data import benchmarks
from spidepth_core.data.kitti import kitti_dataset_parts, overlap, read_split, velodyne_depth, warn_overlap
from spidepth_core.data.sample import TripletDataset
from spidepth_core.metrics import depth_errors
from spidepth_core.protocols import GARG_CROP, PROTOCOLS, cityscapes, kitti_eigen, make3d, make3d_input, score
from spidepth_core.trainer import Trainer


def test_metrics_by_hand():
    gt, pred = np.array([2.0, 4.0]), np.array([1.0, 5.0])
    e = depth_errors(gt, pred)
    assert e["abs_rel"] == pytest.approx((0.5 + 0.25) / 2)
    assert e["sq_rel"] == pytest.approx((1 / 2 + 1 / 4) / 2)
    assert e["rmse"] == pytest.approx(np.sqrt((1 + 1) / 2))
    assert e["rmse_log"] == pytest.approx(np.sqrt((np.log(2) ** 2 + np.log(1.25) ** 2) / 2))
    assert e["a1"] == 0.0 and e["a2"] == 0.5 and e["a3"] == 0.5  # ratios 2 and 1.25; 1.25**3 < 2
    assert e["log10"] == pytest.approx((np.log10(2) + np.log10(1.25)) / 2)
    with pytest.raises(ValueError):
        depth_errors(np.array([]), np.array([]))


def test_kitti_eigen_crop_and_mask():
    h, w = 375, 1242
    gt = np.full((h, w), 10.0)
    gt[200, 600] = 90.0          # beyond 80 m: masked
    gt[200, 601] = 0.0           # no lidar: masked
    g, p = kitti_eigen(gt, np.full((h, w), 5.0))
    r0, r1, c0, c1 = (np.array(GARG_CROP) * [h, h, w, w]).astype(int)
    assert g.size == (r1 - r0) * (c1 - c0) - 2
    errors, scale = score(PROTOCOLS["kitti_eigen"], gt, np.full((94, 310), 5.0), median_scaling=True)
    assert scale == pytest.approx(2.0) and errors["abs_rel"] == pytest.approx(0.0, abs=1e-9)
    errors, _ = score(PROTOCOLS["kitti_eigen"], gt, np.full((94, 310), 5.0), median_scaling=False)
    assert errors["abs_rel"] == pytest.approx(0.5)


def test_cityscapes_crop():
    gt = np.zeros((1024, 2048))
    gt[256:768, 192:1856] = 20.0     # exactly the evaluated window
    g, p = cityscapes(gt, np.full((192, 512), 7.0))
    assert g.size == 512 * 1664 and (g == 20).all() and np.allclose(p, 7.0)


def test_make3d_crop_and_cap():
    gt = np.full((55, 305), 30.0)
    gt[:17] = gt[38:] = 1.0          # outside the band: ignored
    gt[20, 5] = 75.0                 # beyond 70 m: masked
    g, _ = make3d(gt, np.ones((64, 128)))
    assert g.size == 21 * 305 - 1 and (g == 30).all()
    assert make3d_input(np.zeros((2272, 1704, 3))).shape == (852, 1704, 3)
    assert PROTOCOLS["make3d"].metrics == ("abs_rel", "sq_rel", "rmse", "log10")


def _kitti_fixture(root, frames=6, size=(40, 124)):
    date, drive = "2011_09_26", "2011_09_26_drive_0001_sync"
    rng = np.random.default_rng(0)
    for cam in ("image_02", "image_03"):
        folder = root / date / drive / cam / "data"
        folder.mkdir(parents=True)
        for i in range(frames):
            cv2.imwrite(str(folder / f"{i:010d}.png"), rng.integers(0, 255, (*size, 3), dtype=np.uint8))
    (root / date / "calib_cam_to_cam.txt").write_text(
        "calib_time: 09-Jan-2012 13:57:47\nR_rect_00: 1 0 0 0 1 0 0 0 1\n"
        f"P_rect_02: 100 0 60 0 0 100 20 0 0 0 1 0\nS_rect_02: {size[1]} {size[0]}\n")
    (root / date / "calib_velo_to_cam.txt").write_text("R: 0 -1 0 0 0 -1 1 0 0\nT: 0 0 0\n")
    velo = root / date / drive / "velodyne_points" / "data"
    velo.mkdir(parents=True)
    # Scanner frame: x forward, y left, z up. A point 10 m ahead, 1 m left, 0.5 m up.
    np.array([[10.0, 1.0, 0.5, 1.0], [-5.0, 0, 0, 1.0]], np.float32).tofile(velo / f"{2:010d}.bin")
    return f"{date}/{drive}"


def test_kitti_velodyne_projection(tmp_path):
    drive = _kitti_fixture(tmp_path)
    depth = velodyne_depth(tmp_path / "2011_09_26", tmp_path / drive / "velodyne_points/data/0000000002.bin")
    # camera: x = -y_velo = -1, y = -z_velo = -0.5, z = 10 -> u = 100*-1/10+60 = 50, v = 100*-0.5/10+20 = 15
    assert depth.shape == (40, 124)
    v, u = np.nonzero(depth)
    assert list(zip(v, u)) == [(14, 49)] and depth[14, 49] == pytest.approx(10.0)  # KITTI's 1-based rounding


def test_kitti_splits_training_and_overlap(tmp_path, caplog):
    drive = _kitti_fixture(tmp_path)
    train = tmp_path / "train.txt"
    train.write_text(f"{drive} 1 l\n{drive} 2 r\n{drive} 3 l\n")
    test = tmp_path / "test.txt"
    test.write_text(f"{drive} 2 l\n{drive} 5 l\n")
    assert overlap(read_split(train), read_split(test)) == 1
    with caplog.at_level(logging.WARNING):
        assert warn_overlap(train, test) == 1
    assert "1 of the test frames" in caplog.text
    seqs, idx = kitti_dataset_parts(tmp_path, train, stereo=True)
    ds = TripletDataset(seqs, 32, 96, indices=idx, stereo_baseline=0.1)
    left, right = ds[0], ds[1]
    assert left["frames"].shape == (3, 3, 32, 96) and left["stereo_T"][0, 3] == pytest.approx(-0.1)
    assert right["stereo_T"][0, 3] == pytest.approx(0.1)  # right camera as target: partner at -x
    bad = tmp_path / "bad.txt"
    bad.write_text(f"{drive} x l\n")
    with pytest.raises(ValueError, match="bad.txt:1"):
        read_split(bad)


def test_kb_crop_updates_intrinsics(world_dir):
    from spidepth_core.data import find_sequences
    seq = find_sequences(world_dir)[0]
    ds = TripletDataset([seq], 32, 96, crop=(48, 144))
    K = ds[0]["K"]
    # crop: top 16, left 24 of 64x192, then resize 48x144 -> 32x96
    assert K[0, 2] == pytest.approx((96 - 24) * 96 / 144) and K[1, 2] == pytest.approx((32 - 16) * 32 / 48)
    with pytest.raises(ValueError, match="larger"):
        TripletDataset([seq], 32, 96, crop=(352, 1216))[0]


def test_cityscapes_and_make3d_loaders_and_evaluate(tmp_path, tiny_checkpoint, capsys):
    city = tmp_path / "city"
    (city / "leftImg8bit" / "test" / "berlin").mkdir(parents=True)
    (city / "gt_depths").mkdir()
    for i in range(2):
        cv2.imwrite(str(city / "leftImg8bit/test/berlin" / f"b_{i}.png"), np.full((128, 256, 3), 90, np.uint8))
        np.save(city / "gt_depths" / f"{i:03d}_depth.npy", np.full((1024, 2048), 12.0, np.float32))
    assert len(list(benchmarks.cityscapes(city))) == 2
    assert main(["evaluate", "--protocol", "cityscapes", "--data", str(city), "--model", str(tiny_checkpoint),
                 "--backend", "torch"]) == 0
    out = capsys.readouterr().out
    assert "median scaling: on" in out and "abs_rel" in out
    m3 = tmp_path / "make3d"
    (m3 / "Test134").mkdir(parents=True)
    (m3 / "Gridlaserdata").mkdir()
    cv2.imwrite(str(m3 / "Test134" / "img-op29-p-1.jpg"), np.full((227, 170, 3), 120, np.uint8))
    grid = np.zeros((55, 305, 4))
    grid[..., 3] = 20.0
    savemat(str(m3 / "Gridlaserdata" / "depth_sph_corr-op29-p-1.mat"), {"Position3DGrid": grid})
    (image, gt), = list(benchmarks.make3d(m3))
    assert gt.shape == (55, 305) and gt[0, 0] == 20.0
    assert main(["evaluate", "--protocol", "make3d", "--data", str(m3), "--model", str(tiny_checkpoint),
                 "--backend", "torch", "--json", str(tmp_path / "m.json")]) == 0
    assert set(yaml.safe_load((tmp_path / "m.json").read_text())) == {"abs_rel", "sq_rel", "rmse", "log10", "images"}
    assert main(["evaluate", "--protocol", "kitti_eigen", "--data", str(city), "--model", str(tiny_checkpoint)]) == 2


@pytest.mark.slow
def test_metric_finetuning_lowers_silog(world_dir, tmp_path):
    cfg = load_config(None, tiny_overrides(world_dir, tmp_path / "sup", **{
        "train.supervised": True, "train.lr": 3e-3, "train.max_steps": 60, "train.epochs": 100,
        "train.batch_size": 4, "train.flip": 0.0, "train.color_jitter": 0.0}))
    trainer = Trainer(cfg, resume=False)
    assert isinstance(trainer.optimizer, torch.optim.AdamW) and trainer.optim.clip_grad == 0.1
    assert cfg.train.clip_grad is None  # in effect, without changing the caller's config
    batch = next(iter(trainer.loader(trainer.train_ds)))

    def silog():
        trainer.depth_net.eval()
        with torch.no_grad():
            value = trainer.objective(trainer.depth_net, trainer.pose_net, batch).loss.item()
        trainer.depth_net.train()
        return value

    before = silog()
    trainer.fit()
    after = silog()
    assert after < 0.8 * before, (before, after)
    from spidepth_core.checkpoint import read_checkpoint
    assert read_checkpoint(tmp_path / "sup" / "last.pt")["metric"] is True


def test_cityscapes_gt_follows_the_split_order(tmp_path):
    city = tmp_path / "city"
    (city / "leftImg8bit" / "test" / "bonn").mkdir(parents=True)
    (city / "gt_depths").mkdir()
    names = ["bonn_000000_000019", "bonn_000000_000005"]  # split order, not sorted order
    for i, name in enumerate(names):
        image = np.full((8, 16, 3), 10 * i, np.uint8)
        cv2.imwrite(str(city / "leftImg8bit/test/bonn" / f"{name}_leftImg8bit.png"), image)
        np.save(city / "gt_depths" / f"{i:03d}_depth.npy", np.full((8, 16), float(i + 1), np.float32))
    split = tmp_path / "test_files.txt"
    split.write_text("".join(f"bonn {n}\n" for n in names))
    pairs = list(benchmarks.cityscapes(city, split))
    assert [int(img[0, 0, 0]) for img, _ in pairs] == [0, 10] and [gt[0, 0] for _, gt in pairs] == [1.0, 2.0]
    split.write_text("bonn bonn_000000_000007\n")
    with pytest.raises(FileNotFoundError, match="000007_leftImg8bit.png"):
        list(benchmarks.cityscapes(city, split))


def test_latency_benchmark_reports_every_backend(tiny_checkpoint, tmp_path, capsys):
    import json

    from spidepth_core.cli import main
    out = tmp_path / "lat"
    assert main(["benchmark", "latency", "--model", str(tiny_checkpoint), "--backends", "torch,onnxruntime",
                 "--runs", "3", "--warmup", "1", "--size", "64x192", "--output", str(out)]) == 0
    report = json.loads((out / "latency.json").read_text())
    assert report["size"] == [64, 192] and [r["backend"] for r in report["rows"]] == ["torch", "onnxruntime"]
    assert all(r["median_ms"] > 0 and r["with_uncertainty_ms"] > 0 for r in report["rows"])
    assert "onnxruntime" in capsys.readouterr().out


@pytest.mark.slow  # renders a world and trains arms
def test_accuracy_benchmark_gathers_arms_run_apart_into_one_report(tmp_path, capsys):
    import json

    from spidepth_core.cli import main
    out = tmp_path / "acc"

    def run(poses: str, steps: str) -> dict:
        assert main(["benchmark", "accuracy", "--poses", poses, "--seeds", "0", "--steps", steps,
                     "--train-sequences", "1", "--val-sequences", "1", "--frames", "8", "--size", "64x192",
                     "--output", str(out), "model.name=spidepth_tiny", "model.pretrained=false",
                     "pose.backbone=resnet10t", "train.batch_size=2", "train.workers=0", "run.device=cpu"]) == 0
        return json.loads((out / "accuracy.json").read_text())

    first = run("standard", "2")["runs"]["standard"][0]["abs_rel"]
    best = out / "runs" / "standard_seed0" / "best.pt"
    ckpt = torch.load(best, map_location="cpu", weights_only=False)
    ckpt["state_dict"] = {k: v * 0.5 if v.is_floating_point() else v for k, v in ckpt["state_dict"].items()}
    torch.save(ckpt, best)  # a best.pt unlike the final weights: the benchmark scores the final weights
    assert run("standard", "2")["runs"]["standard"][0]["abs_rel"] == first
    report = run("strengthened", "2")  # a second process, another arm: both in one table, in arm order
    assert list(report["summary"]) == ["strengthened", "standard"]
    assert all(len(report["runs"][arm]) == 1 and report["runs"][arm][0]["abs_rel"] > 0 for arm in report["runs"])
    assert list(run("standard", "1")["summary"]) == ["standard"]  # other settings: the old rows are dropped
    assert "| pose net |" in capsys.readouterr().out


def _add_row(path: str, name: str) -> None:
    import time

    from spidepth_core.tools.report import update_report

    def merge(old):
        time.sleep(0.2)  # read, then write later: without the lock a concurrent writer's row would be lost
        return {"rows": sorted(((old or {}).get("rows") or []) + [name])}
    update_report(Path(path), merge)


def test_report_updates_from_processes_finishing_together_keep_every_row(tmp_path):
    import json
    import multiprocessing

    path = tmp_path / "report.json"
    ctx = multiprocessing.get_context("fork")  # the worker needs no torch
    procs = [ctx.Process(target=_add_row, args=(str(path), f"arm{i}")) for i in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0] * 4
    assert json.loads(path.read_text())["rows"] == ["arm0", "arm1", "arm2", "arm3"]


@pytest.mark.slow  # trains two arms and profiles them
def test_training_benchmark_times_each_arm_and_profiles_a_step(world_dir, tmp_path, capsys):
    import json

    from spidepth_core.cli import main
    config = tmp_path / "tiny.yaml"
    config.write_text("model: {name: spidepth_tiny, pretrained: false}\npose: {kind: standard, pretrained: false}\n"
                      "train: {batch_size: 2, workers: 0}\n")
    assert main(["benchmark", "training", "--config", str(config), "--data", str(world_dir), "--steps", "2",
                 "--warmup", "1", "--arms", "baseline,all", "--output", str(tmp_path / "out"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["arms"]) == {"baseline", "all"}
    for row in report["arms"].values():
        assert row["images_per_s"] > 0
        assert {"data", "depth net", "pose net", "warping", "photometric", "optimiser", "other"} <= set(row["ms"])
        assert all(v >= 0 for v in row["ms"].values())
    assert (tmp_path / "out" / "training_speed.json").is_file()
