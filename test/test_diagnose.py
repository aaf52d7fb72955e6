"""`spidepth diagnose`: a run's pose and depth statistics, and the signs of a stuck run."""
import json
import math

import numpy as np
import pytest
import torch

from conftest import tiny_overrides
from spidepth_core.cli import main
from spidepth_core.geometry import pose_to_matrix
from spidepth_core.models import create_pose_net
from spidepth_core.models.pose_net import OUTPUT_SCALE
from spidepth_core.objective import relative_pose
from spidepth_core.synth import generate
from spidepth_core.tools.diagnose import camera_motion, depth_shape, findings


class _FixedPose(torch.nn.Module):
    """A pose net that always predicts one motion from the earlier to the later frame of a pair."""

    def __init__(self, axis_angle, translation):
        super().__init__()
        self.axis_angle, self.translation = torch.tensor([axis_angle]), torch.tensor([translation])

    def forward(self, pair):
        return self.axis_angle, self.translation


@pytest.mark.parametrize("frame_id", [-1, 1, 2])
def test_camera_motion_follows_the_objective_convention_for_past_and_future_frames(frame_id):
    # From a frame to the next, the camera moves 0.5 forward and turns 2 degrees: target points move to -z.
    turn = math.radians(2.0)
    net = _FixedPose([0.0, turn * abs(frame_id), 0.0], [0.0, 0.0, -0.5 * abs(frame_id)])
    frames = torch.zeros(1, 3, 8, 8)
    motion, angle = camera_motion(relative_pose(net, frames, frames, frame_id), frame_id)
    assert motion.shape == (1, 3) and angle == pytest.approx([2.0], rel=1e-3)
    assert np.linalg.norm(motion[0]) == pytest.approx(0.5, rel=1e-5)
    assert motion[0, 2] / np.linalg.norm(motion[0]) > 0.99  # forward, whichever frame is the source
    sideways = pose_to_matrix(torch.zeros(1, 3), torch.tensor([[0.3, 0.0, 0.0]]))
    assert camera_motion(sideways, 1)[0][0] == pytest.approx([-0.3, 0.0, 0.0])


def test_findings_name_the_setting_that_frees_each_kind_of_stuck_run():
    healthy = {"motion_per_depth": 0.05, "forward_share": 0.98, "rotation_deg": 0.3, "median_of_max": 0.2,
               "log_depth_std": 0.5, "explained_share": 0.8}
    assert findings(healthy) == []
    sideways = findings({**healthy, "forward_share": 0.1, "rotation_deg": 6.0})
    assert len(sideways) == 2 and "pose.forward_start" in sideways[0] and "rotation" in sideways[1]
    shrunk = findings({**healthy, "median_of_max": 0.002, "log_depth_std": 0.01})
    assert "train.detach_translation_scale=false" in shrunk[0] and "flat" in shrunk[1]
    assert "no motion" in findings({**healthy, "motion_per_depth": 1e-5})[0]
    assert "35%" in findings({**healthy, "explained_share": 0.35})[0]
    shape = depth_shape(np.full((4, 4), 0.2), 80.0)
    assert shape["median_of_max"] == pytest.approx(0.0025) and shape["log_depth_std"] == pytest.approx(0.0)


@pytest.mark.slow
def test_diagnose_reads_the_motion_a_run_learned_and_flags_sideways_motion(world_dir, tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", *tiny_overrides(world_dir, run, **{"data.val_path": str(world_dir), "train.max_steps": 1,
                                                        "pose.forward_start": 0.5})]
    assert main(args) == 0
    assert main(["diagnose", str(run), "--samples", "4", "--json", str(tmp_path / "d.json")]) == 0
    report = json.loads((tmp_path / "d.json").read_text())
    s = report["summary"]
    assert report["samples"] == 4 and report["data"] == "validation" and s["forward_share"] > 0.9 and "abs_rel" in s
    assert s["motion_per_depth"] == pytest.approx(0.5, rel=0.3)  # forward_start is in mean depths per frame
    assert "forward share +" in capsys.readouterr().out
    # A validation part with fewer triplets than asked for (a short bag's last 10%): the training frames serve.
    short = tmp_path / "short_val"
    generate(short, [7], 5, 64, 192, workers=1)
    assert main(["diagnose", str(run), "--samples", "4", "--json", str(tmp_path / "d2.json"),
                 f"data.val_path={short}"]) == 0
    fallback = json.loads((tmp_path / "d2.json").read_text())
    assert fallback["data"] == "training" and fallback["samples"] == 4
    assert "of its training data" in capsys.readouterr().out
    # The same run with its translation turned sideways: the report says so and names the setting.
    ckpt = torch.load(run / "last.pt", weights_only=True)
    net = create_pose_net("standard")
    head = next(name for name, module in net.named_modules() if module is net.head)
    bias = ckpt["pose_state_dict"][f"{head}.bias"]
    bias[3], bias[5] = -0.5 / OUTPUT_SCALE, 0.0
    torch.save(ckpt, run / "sideways.pt")
    assert main(["diagnose", str(run / "sideways.pt"), "--samples", "2"]) == 0
    out = capsys.readouterr().out
    assert "sideways or vertical" in out and "pose.forward_start=0.02" in out


def test_diagnose_needs_a_run_folder_with_a_pose_net(tmp_path, tiny_checkpoint, capsys):
    assert main(["diagnose", str(tiny_checkpoint)]) == 2
    assert "config.yaml not found" in capsys.readouterr().err
    (tiny_checkpoint.parent / "config.yaml").write_text("model:\n  name: spidepth_tiny\n")
    try:
        assert main(["diagnose", str(tiny_checkpoint)]) == 2
        assert "holds no pose net" in capsys.readouterr().err
    finally:
        (tiny_checkpoint.parent / "config.yaml").unlink()
    with pytest.raises(SystemExit) as stop:
        main(["diagnose", str(tmp_path), "--samples", "0"])
    assert stop.value.code == 2 and "--samples: must be >= 1, got 0" in capsys.readouterr().err
