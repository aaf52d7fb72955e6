"""`spidepth evidence`: the photometric error of a model's depth and motion against the truth's."""
import json
import shutil

import pytest
import torch

from spidepth_core.checkpoint import load_pose_net, read_checkpoint, save_model
from spidepth_core.cli import main
from spidepth_core.data.folder import find_sequences, read_poses
from spidepth_core.data.sample import TripletDataset
from spidepth_core.geometry import warp
from spidepth_core.losses import PhotometricLoss
from spidepth_core.models import create_model, create_pose_net
from spidepth_core.tools.evidence import true_depth, true_motion


@pytest.fixture(scope="module")
def posed_checkpoint(tmp_path_factory):
    """A tiny depth net with a (random) standard pose net, as a run's checkpoint holds them."""
    torch.manual_seed(0)
    pose = create_pose_net("standard")
    path = tmp_path_factory.mktemp("posed") / "tiny_posed.pt"
    save_model(path, create_model("spidepth_tiny"), "spidepth_tiny", pose_state_dict=pose.state_dict(),
               pose_config={"kind": "standard"})
    return path


def test_true_motion_and_depth_reproject_the_neighbouring_frames(world_dir):
    # The convention check: with the true depth (sky far away) and poses.txt, the frames before and after
    # warp onto the target far better than they match it unwarped, and better than with the motion reversed.
    seq = find_sequences(world_dir)[0]
    poses = read_poses(seq.folder)
    item = TripletDataset([seq], 64, 192)[10]
    t = 11  # index 10 of the triplets is frame 11 (the first triplet is centred on frame 1)
    gt = true_depth(item)
    target, K, photo = item["frames"][None, 0], item["K"][None], PhotometricLoss()
    for j, source in ((1, t - 1), (2, t + 1)):
        src = item["frames"][None, j]
        T = true_motion(poses, t, source)
        warped = photo(warp(src, gt, K, T), target).mean()
        reversed_ = photo(warp(src, gt, K, torch.linalg.inv(T)), target).mean()
        assert warped < 0.7 * photo(src, target).mean() and warped < 0.7 * reversed_


def test_evidence_compares_the_model_with_the_truth(world_dir, posed_checkpoint, tmp_path, capsys):
    out = tmp_path / "e.json"
    assert main(["evidence", "--model", str(posed_checkpoint), "--data", str(world_dir), "--samples", "4",
                 "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    photometric = report["photometric"]
    assert report["samples"] == 4 and list(photometric) == ["model", "model depth, true motion",
                                                             "true depth, model motion", "truth"]
    assert all(len(row["bands"]) == 8 for row in photometric.values())
    # An untrained model against the truth: the truth reprojects the frames better.
    assert photometric["truth"]["all"] < photometric["model depth, true motion"]["all"]
    assert photometric["truth"]["all"] < photometric["model"]["all"]
    rows = report["by_error"]
    assert rows[-1]["error_to"] is None and sum(r["pixels"] for r in rows) > 0
    assert all(r["truth_better"] is None or 0 <= r["truth_better"] <= 1 for r in rows)
    assert "truth better at" in capsys.readouterr().out


def test_evidence_needs_poses_and_a_pose_net(world_dir, posed_checkpoint, tiny_checkpoint, tmp_path, capsys):
    assert main(["evidence", "--model", str(tiny_checkpoint), "--data", str(world_dir)]) == 2
    assert "holds no pose net" in capsys.readouterr().err
    bare = tmp_path / "bare"
    shutil.copytree(world_dir, bare)
    for path in bare.glob("*/poses.txt"):
        path.unlink()
    assert main(["evidence", "--model", str(posed_checkpoint), "--data", str(bare)]) == 2
    assert "poses.txt not found" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        main(["evidence", "--model", str(posed_checkpoint), "--data", str(world_dir), "--samples", "0"])
    assert stop.value.code == 2 and "--samples: must be >= 1, got 0" in capsys.readouterr().err


def test_load_pose_net_rebuilds_the_stored_weights(posed_checkpoint):
    ckpt = read_checkpoint(posed_checkpoint)
    net = load_pose_net(ckpt, posed_checkpoint)
    assert all(torch.equal(v, ckpt["pose_state_dict"][k]) for k, v in net.state_dict().items())


def test_resolving_power_sees_a_large_depth_error_more_often(world_dir, posed_checkpoint, tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["evidence", "--resolving-power", "--data", str(world_dir), "--samples", "4",
                 "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["size"] == [64, 192] and report["samples"] == 4  # the images' own size, no model
    shares = {row["scale"]: row for row in report["truth_better"]}
    assert sorted(shares) == [0.9, 1.1, 1.5] and all(len(row["bands"]) == 8 for row in shares.values())
    # The true depth wins more often than not, and more often against a 50% error than a 10% one.
    assert 0.5 < shares[1.1]["all"] < shares[1.5]["all"] <= 1
    assert "scaled by" in capsys.readouterr().out
    assert main(["evidence", "--resolving-power", "--model", str(posed_checkpoint), "--data", str(world_dir)]) == 2
    assert "uses no model" in capsys.readouterr().err
