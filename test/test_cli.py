import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
import yaml

from conftest import ROOT, tiny_overrides
from spidepth_core.cli import main


def test_predict_writes_depth_outputs(tiny_checkpoint, world_dir, tmp_path):
    folder = world_dir / "seq_0000"
    assert main(["predict", str(folder / "000003.png"), "--model", str(tiny_checkpoint), "--backend", "torch",
                 "--output", str(tmp_path)]) == 0
    png = cv2.imread(str(tmp_path / "000003_depth.png"), cv2.IMREAD_UNCHANGED)
    npy = np.load(tmp_path / "000003_depth.npy")
    assert png.dtype == np.uint16 and png.shape == (64, 192) and npy.shape == (64, 192)
    assert np.allclose(png / 1000.0, npy, atol=1e-3)
    # readable: camera above depth at 960 px wide, then a 44 px colour bar
    assert cv2.imread(str(tmp_path / "000003_preview.png")).shape == (320 + 320 + 44, 960, 3)


def test_preview_colour_bar_matches_the_depth_colours():
    from spidepth_core.viz import colorize_depth, depth_limits, preview
    depth = np.tile(np.geomspace(2.0, 40.0, 192, dtype=np.float32), (64, 1))
    gt = depth * 1.1
    picture = preview(None, depth, gt=gt)
    assert picture.shape == (320 + 320 + 44, 960, 3)  # prediction, ground truth, bar
    near, far = depth_limits(gt)
    bar = picture[640:640 + 22].astype(int)
    assert bar[:, 0].mean() < bar[:, -1].mean()  # far (left, dark) to near (right, bright)
    # the pixel of the depth panel whose depth is ~near has the bar's right-end colour
    same = colorize_depth(np.full((1, 1), near, np.float32), near, far)[0, 0]
    assert np.abs(bar[10, -1] - same).max() <= 2


def test_predict_folder_and_errors(tiny_checkpoint, world_dir, tmp_path, capsys):
    assert main(["predict", str(world_dir / "seq_0001"), "--model", str(tiny_checkpoint), "--output",
                 str(tmp_path)]) == 0
    assert len(list(tmp_path.glob("*_depth.npy"))) == 24
    assert main(["predict", str(tmp_path / "none.png"), "--model", str(tiny_checkpoint)]) == 2
    assert "input not found" in capsys.readouterr().err
    assert main(["predict", str(world_dir / "seq_0001"), "--model", str(tmp_path / "x.pt")]) == 2


def test_train_command(world_dir, tmp_path):
    out = tmp_path / "run"
    assert main(["train", *tiny_overrides(world_dir, out, **{"train.max_steps": 2})]) == 0
    assert (out / "last.pt").is_file()


@pytest.mark.slow  # imports every module in a fresh interpreter
def test_core_imports_no_ros():
    code = ("import sys, spidepth_core, spidepth_core.cli, spidepth_core.trainer, spidepth_core.inference, "
            "spidepth_core.synth; bad=[m for m in sys.modules if m.split('.')[0] in "
            "('rclpy','sensor_msgs','std_msgs','launch','launch_ros','diagnostic_msgs')]; print(bad); "
            "sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for path in (ROOT / "spidepth_core").rglob("*.py"):
        for line in path.read_text().splitlines():
            words = line.strip().split()
            if words[:1] in (["import"], ["from"]) and len(words) > 1:
                assert words[1].split(".")[0] not in ("rclpy", "sensor_msgs", "std_msgs", "launch_ros"), path


def test_overrides_may_follow_options(world_dir, tmp_path):
    """`spidepth train --init CKPT section.key=value`: overrides after options are taken, not rejected."""
    from spidepth_core.cli import main
    out = tmp_path / "run"
    args = tiny_overrides(world_dir, out, **{"train.max_steps": 1})
    assert main(["train", "--restart", *args]) == 0
    assert main(["train", "--restart", "run.device=cpu", "--init", str(out / "last.pt"), *args[1:]]) == 0
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["model"]["init"] == str(out / "last.pt") and saved["train"]["max_steps"] == 1
    with pytest.raises(SystemExit):
        main(["train", "--restart", "--no-such-option", *args])


def test_predict_applies_the_nodes_scale_and_range_policy(tiny_checkpoint, world_dir, tmp_path):
    image = str(world_dir / "seq_0000" / "000003.png")
    base = ["predict", image, "--model", str(tiny_checkpoint), "--backend", "torch"]
    assert main([*base, "--output", str(tmp_path / "raw")]) == 0
    raw = np.load(tmp_path / "raw" / "000003_depth.npy")
    assert main([*base, "--output", str(tmp_path / "x2"), "--scale-policy", "fixed", "--depth-scale", "2"]) == 0
    assert np.allclose(np.load(tmp_path / "x2" / "000003_depth.npy"), 2 * raw, rtol=1e-6)
    cut = float(np.median(raw))
    assert main([*base, "--output", str(tmp_path / "cut"), "--max-depth", str(cut)]) == 0
    masked = np.load(tmp_path / "cut" / "000003_depth.npy")
    assert np.isnan(masked[raw > cut]).all() and np.allclose(masked[raw < cut], raw[raw < cut])
    # the uncertainty is scaled with the depth and invalid where the depth is
    assert main([*base, "--output", str(tmp_path / "u"), "--uncertainty"]) == 0
    assert main([*base, "--output", str(tmp_path / "u2"), "--uncertainty", "--scale-policy", "fixed",
                 "--depth-scale", "2", "--max-depth", str(2 * cut)]) == 0
    spread = np.load(tmp_path / "u" / "000003_uncertainty.npy")
    spread2 = np.load(tmp_path / "u2" / "000003_uncertainty.npy")
    assert spread.shape == raw.shape and (spread > 0).all()
    assert np.isnan(spread2[raw > cut]).all() and np.allclose(spread2[raw < cut], 2 * spread[raw < cut], rtol=1e-6)
    # the bundled model sees the road: the ground fit scales its depth to the camera height given
    bundled = ["predict", image, "--backend", "torch", "--intrinsics", str(world_dir / "seq_0000" / "intrinsics.yaml")]
    assert main([*bundled, "--output", str(tmp_path / "b")]) == 0
    assert main([*bundled, "--output", str(tmp_path / "h"), "--scale-policy", "camera_height",
                 "--camera-height", "3.2"]) == 0
    ratio = np.nanmedian(np.load(tmp_path / "h" / "000003_depth.npy") / np.load(tmp_path / "b" / "000003_depth.npy"))
    assert 1.5 < ratio < 2.5  # the world's camera is about 1.6 m high: twice that height, about twice the depth


def test_deploy_writes_onnx_and_the_swap_command(world_dir, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", *tiny_overrides(world_dir, run, **{"train.max_steps": 2})]) == 0
    assert main(["deploy", str(run)]) == 0
    out = capsys.readouterr().out
    assert (run / "deploy" / "model.onnx").is_file() and (run / "deploy" / "model.pt").is_file()
    assert f"ros2 param set /depth_node model_path {(run / 'deploy' / 'model.onnx').resolve()}" in out
    assert "optimizer" not in torch.load(run / "deploy" / "model.pt", weights_only=True)


def test_version_defaults_in_help_and_where_the_authors_weights_come_from(tmp_path, capsys):
    from spidepth_core import __version__
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == f"spidepth {__version__}"
    with pytest.raises(SystemExit):
        main(["synth", "--help"])
    assert "(default: 96x320)" in capsys.readouterr().out  # the bundled model's size, and shown
    with pytest.raises(SystemExit):
        main(["convert-checkpoint", "--help"])
    assert "encoder.pth" in capsys.readouterr().out
    assert main(["convert-checkpoint", str(tmp_path), str(tmp_path / "out.pt")]) == 2
    assert "the authors' released weights" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["synth", "out", "--frames", "0"], "--frames: must be >= 1, got 0"),
    (["benchmark", "finetune", "--bags", "two"], "--bags: must be a whole number, got 'two'"),
    (["benchmark", "latency", "--runs", "-3"], "--runs: must be >= 1, got -3"),
])
def test_counts_below_one_are_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2 and message in capsys.readouterr().err


def _all_parsers(parser):
    import argparse
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _all_parsers(sub)


def test_every_option_has_help_and_benchmark_lists_its_kinds(capsys):
    from spidepth_core.cli import build_parser
    parsers = list(_all_parsers(build_parser()))
    missing = [f"{p.prog} {a.dest}" for p in parsers for a in p._actions if not a.help]
    assert not missing
    assert not [p.prog for p in parsers if "``" in (p.description or "") + (p.epilog or "")]
    with pytest.raises(SystemExit):
        main(["benchmark", "--help"])
    text = capsys.readouterr().out
    assert all(kind in text for kind in ("accuracy", "finetune", "cameras", "latency"))


def test_json_alone_goes_to_stdout_and_with_a_path_to_that_file(tiny_checkpoint, world_dir, tmp_path, capsys):
    import json
    assert main(["predict", str(world_dir / "seq_0001"), "--model", str(tiny_checkpoint), "--output",
                 str(tmp_path / "d"), "--json"]) == 0
    out = capsys.readouterr()
    report = json.loads(out.out)  # nothing else on stdout
    assert report["written"] == 24 and report["skipped"] == [] and "wrote depth" in out.err
    assert main(["export", str(tiny_checkpoint), "--onnx", str(tmp_path / "m.onnx"), "--json",
                 str(tmp_path / "e.json")]) == 0
    report = json.loads((tmp_path / "e.json").read_text())
    assert report["onnx"] == str((tmp_path / "m.onnx").resolve()) and report["max_rel"] < 1e-3
    assert "wrote" in capsys.readouterr().out


def test_train_without_data_says_what_it_needs_before_writing_anything(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["train"]) == 2
    err = capsys.readouterr().err
    assert "nothing to train on" in err and "--bag" in err and "config" in err
    assert not (tmp_path / "runs").exists()


def test_built_in_defaults_train_offline_and_the_data_is_checked_first(world_dir, tmp_path, monkeypatch, capsys):
    """The defaults (Lite0 encoder and pose backbone) need no download; a wrong folder is named before
    any model is built."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from spidepth_core import trainer
    built = []
    monkeypatch.setattr(trainer, "build_depth_net", lambda *a: built.append(a) or pytest.fail("model built"))
    assert main(["train", f"data.path={tmp_path / 'missing'}", f"run.out_dir={tmp_path / 'r0'}"]) == 2
    assert str(tmp_path / "missing") in capsys.readouterr().err and not built
    monkeypatch.undo()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["train", f"data.path={world_dir}", "train.max_steps=1", "train.batch_size=2",
                 f"run.out_dir={tmp_path / 'r1'}"]) == 0
    assert (tmp_path / "r1" / "last.pt").is_file()


def test_the_bundled_model_and_shipped_configs_are_found_from_any_folder(tmp_path, monkeypatch):
    from spidepth_core.config import load_config
    from spidepth_core.shipped import default_model_path, model_file
    monkeypatch.chdir(tmp_path)
    assert model_file("bundled") == default_model_path() == model_file(None)
    assert load_config("config/finetune_bag.yaml", ["model.init=bundled"]).train.anchor_weight > 0
    before = sorted(default_model_path().parent.iterdir())
    assert main(["export", "bundled"]) == 0
    assert (tmp_path / "default_model.onnx").is_file()
    assert sorted(default_model_path().parent.iterdir()) == before  # nothing written into the package


@pytest.mark.slow  # two exports in subprocesses
def test_an_export_prints_its_result_and_no_exporter_notes(tiny_checkpoint, tmp_path):
    for extra in ([], ["--fp16"]):
        proc = subprocess.run([sys.executable, "-m", "spidepth_core.cli", "export", str(tiny_checkpoint), "--onnx",
                               str(tmp_path / f"m{len(extra)}.onnx"), *extra], capture_output=True, text=True,
                              cwd=ROOT)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert proc.stdout.startswith("wrote") and "TensorRT-checked" not in proc.stdout
        assert not any(note in proc.stderr for note in ("TracerWarning", "Constant folding", "onnxruntime"))
