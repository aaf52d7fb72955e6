"""Cameras other than the training one: the canonical camera rule in inference and training, the synthetic
world's cameras, looks and styles, and the cameras benchmark."""
import json

import numpy as np
import pytest
import torch
import yaml

from spidepth_core.camera_space import KITTI_FY, focal_factor
from spidepth_core.checkpoint import save_model
from spidepth_core.cli import main
from spidepth_core.inference import Predictor
from spidepth_core.models import create_model, create_pose_net
from spidepth_core.objective import SelfSupervisedObjective
from spidepth_core.pinhole import kitti_intrinsics
from spidepth_core.synth import Camera, Scene, generate, render_sequence
from spidepth_core.synth.textures import WALLS, Ground
from spidepth_core.synth.world import FACADE, GROUND, SKY, StreetWorld, camera_path, render, surface_kinds

H, W = 64, 192


def test_depth_follows_the_cameras_focal_length(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "canonical1.pt"
    save_model(path, create_model("spidepth_tiny", canonical_fy=1.0), "spidepth_tiny")
    predictor = Predictor(path, "torch")
    assert predictor.canonical_fy == 1.0
    image = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    raw = predictor.predict(image).depth  # no K: the image is taken to be from the canonical camera
    K = np.array([[240.0, 0, 80], [0, 240.0, 60], [0, 0, 1]])  # fy = 2 x image height
    assert np.allclose(predictor.predict(image, K).depth, 2.0 * raw, rtol=1e-6)
    assert focal_factor(K, 120, 1.0) == pytest.approx(2.0)
    batch = torch.tensor(np.stack([K, K * [[1], [0.5], [1]]]))
    assert torch.allclose(focal_factor(batch, 120, 1.0), torch.tensor([2.0, 1.0], dtype=torch.float64))
    assert focal_factor(kitti_intrinsics(96, 320), 96, KITTI_FY) == pytest.approx(1.0)


def test_training_learns_depth_in_the_canonical_camera():
    torch.manual_seed(0)
    depth_net, pose_net = create_model("spidepth_tiny").eval(), create_pose_net("standard", "resnet18", None)
    frames = torch.rand(2, 3, 3, H, W)
    K = torch.tensor(np.stack([kitti_intrinsics(H, W), kitti_intrinsics(H, W) * [[1], [0.5], [1]]]),
                     dtype=torch.float32)
    out = SelfSupervisedObjective(canonical_fy=KITTI_FY)(depth_net, pose_net, {"frames": frames,
                                                                               "frames_aug": frames, "K": K})
    with torch.no_grad():
        raw = depth_net(frames[:, 0])
    assert torch.allclose(out.depth[0], raw[0], rtol=1e-5)        # the canonical camera: as the network says
    assert torch.allclose(out.depth[1], 0.5 * raw[1], rtol=1e-5)  # half the focal length: half the depth


def test_synthetic_cameras_looks_and_styles(tmp_path):
    cam = Camera(hfov=90, aspect=4 / 3, mount=0.5, pitch=5)
    K = cam.K(96, 320)
    assert K[0, 0] == pytest.approx(160) and K[1, 1] == pytest.approx(96 * 4 / 3 / 2)  # squashed 4:3 sensor
    assert np.allclose(Camera().K(96, 320), kitti_intrinsics(96, 320))
    folder = generate(tmp_path / "w", [4], 3, 48, 64, workers=1, scene=Scene(camera=cam))[0]
    stored = yaml.safe_load((folder / "intrinsics.yaml").read_text())
    assert stored["fy"] == pytest.approx(cam.K(48, 64)[1, 1]) and stored["scene"]["camera"]["mount"] == 0.5
    poses = np.loadtxt(folder / "poses.txt").reshape(-1, 3, 4)
    assert -poses[:, 1, 3].mean() == pytest.approx(0.5, abs=0.03)
    assert (poses[:, 1, 2] > 0.05).all()  # looking down: the optical axis points toward the ground (y down)
    with pytest.raises(ValueError, match="another camera or world"):
        generate(tmp_path / "w", [4], 3, 48, 64, workers=1, scene=Scene(variety=True))
    plain = np.stack([f[0] for f in render_sequence(9, 3, H, W)])
    again = np.stack([f[0] for f in render_sequence(9, 3, H, W)])
    varied = np.stack([f[0] for f in render_sequence(9, 3, H, W, scene=Scene(variety=True))])
    assert np.array_equal(plain, again) and not np.array_equal(plain, varied)
    assert len(StreetWorld(9, 100, variety=True).boxes.kind) > len(StreetWorld(9, 100).boxes.kind)
    varied_world = StreetWorld(9, 100, variety=True)  # walls of every family, and other road surfaces
    assert set(varied_world.walls.family) == set(range(len(WALLS))) and varied_world.ground != Ground()
    assert StreetWorld(9, 100).walls is None and StreetWorld(9, 100, variety=True, style="unseen").walls is None
    street_road = StreetWorld(9, 100, variety=True, street_road=True)  # the same walls on the street's road
    assert street_road.ground == Ground() and np.array_equal(street_road.walls.family, varied_world.walls.family)
    unseen = StreetWorld(9, 100, style="unseen")
    assert unseen.style == "unseen" and not np.array_equal(unseen.boxes.lo[:5], StreetWorld(9, 100).boxes.lo[:5])


def test_surface_kinds_name_what_each_pixel_of_a_render_sees():
    world, K = StreetWorld(9, 100, variety=True), Camera().K(96, 320)
    pose = camera_path(9, 1)[0]
    _, depth = render(world, pose, K, 96, 320)
    kinds = surface_kinds(world, pose, K, 96, 320)
    assert np.array_equal(kinds == SKY, depth == 0) and {GROUND, FACADE, SKY} <= set(np.unique(kinds))
    v, u = np.nonzero(kinds == GROUND)
    points = (np.stack([u, v, np.ones_like(u)], 1) @ np.linalg.inv(K).T) * depth[v, u, None]
    world_y = points @ pose[:3, :3].T[:, 1] + pose[1, 3]
    assert np.abs(world_y).max() < 1e-3  # the ground pixels lie on the road plane (y = 0)


def test_synth_kitti_camera_keeps_the_training_camera_in_a_varied_world(tmp_path):
    main(["synth", str(tmp_path / "w"), "--sequences", "1", "--frames", "2", "--size", "48x160", "--variety",
          "--kitti-camera", "--seed", "3", "--workers", "1"])
    stored = yaml.safe_load((tmp_path / "w" / "seq_0003" / "intrinsics.yaml").read_text())
    assert stored["fy"] == pytest.approx(kitti_intrinsics(48, 160)[1, 1]) and stored["scene"]["variety"]
    assert stored["scene"]["camera"]["hfov"] is None  # not a camera drawn per drive


@pytest.mark.slow  # renders a world per camera
def test_cameras_benchmark_scores_every_camera(tiny_checkpoint, tmp_path, capsys):
    report = tmp_path / "cams.json"
    assert main(["benchmark", "cameras", "--model", str(tiny_checkpoint), "--backend", "torch", "--sequences",
                 "1", "--frames", "3", "--workers", "0", "--output", str(tmp_path / "world"),
                 "--by-surface", "--seed", "5", "--json", str(report)]) == 0
    assert sorted(p.name for p in (tmp_path / "world").glob("camera_*/seq_*")) == ["seq_0005"] * 4
    out = capsys.readouterr().out
    assert "| camera | median-scaled | no scaling | camera_height |" in out
    surfaces = json.loads(report.read_text())["surfaces"]
    assert len(surfaces) == 4 and all("ground" in row and "sky" not in row for row in surfaces.values())
    assert all(sum(r["pixels"] for r in row.values()) == pytest.approx(1) for row in surfaces.values())
    got = json.loads(report.read_text())["cameras"]
    assert len(got) == 4 and all(row["frames"] == 3 for row in got.values())
    assert all(0 < row[mode] < 10 for row in got.values() for mode in ("median-scaled", "no scaling"))
