"""Hostile-user checks for training and the command line: one run per folder, crash leftovers, interrupts,
bad resumes and the one-line errors for disk and configuration mistakes."""
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import ROOT, tiny_overrides
from spidepth_core.checkpoint import atomic_save
from spidepth_core.cli import main
from spidepth_core.config import load_config
from spidepth_core.trainer import Trainer

ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _python(code: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kwargs)


def _wait_for(condition, timeout=60.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.05)
    return False


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err  # one line, no traceback
    return err


def test_a_second_run_on_a_folder_is_refused_and_a_stale_lock_is_taken_over(world_dir, tmp_path, capsys):
    run = tmp_path / "run"
    holder = _python(f"import time; from spidepth_core.run_lock import RunLock; RunLock({str(run)!r}).acquire(); "
                     "print('held', flush=True); time.sleep(120)")
    try:
        assert holder.stdout.readline().strip() == "held"
        assert main(["train", *tiny_overrides(world_dir, run, **{"train.max_steps": 1})]) == 2
        err = _error(capsys)
        assert f"pid {holder.pid}" in err and "in use by another training run" in err and "run.out_dir" in err
        assert sorted(p.name for p in run.iterdir()) == ["train.lock"]  # nothing else written
    finally:
        holder.kill()  # kill -9: the lock file stays behind, unlocked
        holder.wait()
    assert (run / "train.lock").is_file()
    assert main(["train", *tiny_overrides(world_dir, run, **{"train.max_steps": 1})]) == 0
    assert (run / "last.pt").is_file() and not (run / "train.lock").exists()  # released on exit


def _start_training(world_dir, run):
    cmd = [sys.executable, "-m", "spidepth_core.cli", "train",
           *tiny_overrides(world_dir, run, **{"train.epochs": 50, "run.checkpoint_every": 10_000})]
    return subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupted_run_saves_says_so_and_exits_non_zero(world_dir, tmp_path, sig, code):
    run = tmp_path / "run"
    proc = _start_training(world_dir, run)
    try:
        assert _wait_for(lambda: (run / "config.yaml").is_file(), 120)  # written just before the first step
        time.sleep(2.0)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == code, err[-2000:]
    assert f"interrupted ({sig.name})" in err and "run the same command to resume" in err
    assert "done:" not in out
    assert torch.load(run / "last.pt", weights_only=True)["progress"]["global_step"] > 0


@pytest.mark.slow
def test_a_save_killed_midway_leaves_a_temp_file_the_next_run_removes(world_dir, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    # pickling this object stalls, so the writer is killed while its temp file is open
    saver = _python("import time\nfrom spidepth_core.checkpoint import atomic_save\n"
                    "class Slow:\n    def __reduce__(self):\n        time.sleep(120)\n        return (int, ())\n"
                    f"atomic_save({{'x': Slow()}}, {str(run / 'last.pt')!r})\n")
    try:
        assert _wait_for(lambda: any(run.glob(".last.pt.part-*")), 60)
    finally:
        saver.kill()
        saver.wait()
    orphan = next(run.glob(".last.pt.part-*"))
    live = run / f".best.pt.part-{os.getpid()}-abc"  # a writer that is still running is left alone
    live.write_bytes(b"x")
    Trainer(load_config(None, tiny_overrides(world_dir, run)), resume=True)
    assert not orphan.exists() and live.exists()


def test_resuming_another_model_or_pose_is_refused_before_anything_is_written(world_dir, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", *tiny_overrides(world_dir, run, **{"train.max_steps": 1})]) == 0
    capsys.readouterr()
    config = (run / "config.yaml").read_bytes()
    assert main(["train", *tiny_overrides(world_dir, run, **{"pose.kind": "strengthened",
                                                              "pose.backbone": "resnet18"})]) == 2
    err = _error(capsys)
    assert str(run / "last.pt") in err and "pose kind standard -> strengthened" in err
    assert "--restart" in err and "run.out_dir" in err
    assert main(["train", *tiny_overrides(world_dir, run, **{"model.overrides": "{channels: 24}"})]) == 2
    err = _error(capsys)
    assert "do not fit this config" in err and "--restart" in err and len(err) < 500
    assert (run / "config.yaml").read_bytes() == config


@pytest.mark.parametrize("override, expected", [
    ("run.checkpoint_every=0", "run.checkpoint_every must be >= 1, got 0"),
    ("train.lr=-1e-4", "train.lr must be > 0"),
    ("train.epochs=1.7", "train.epochs: cannot use 1.7; it must be a whole number"),
    ("train.batch_size=0", "train.batch_size must be >= 1"),
])
def test_bad_values_name_their_key(world_dir, tmp_path, capsys, override, expected):
    assert main(["train", *tiny_overrides(world_dir, tmp_path / "run"), override]) == 2
    assert expected in _error(capsys)
    assert not (tmp_path / "run").exists()


def test_malformed_yaml_names_the_file_and_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  lr: 1.0e-4\n   epochs: 3\n")
    assert main(["train", str(bad)]) == 2
    err = _error(capsys)
    assert str(bad) in err and "not valid YAML" in err and "line 3" in err


@pytest.mark.parametrize("content, expected", [
    (b"", "the file is empty"),
    (b"hello, not weights\n", "not a PyTorch file (it starts with b'hello, n')"),
])
def test_empty_or_text_checkpoints_say_why(world_dir, tmp_path, capsys, content, expected):
    ckpt = tmp_path / "model.pt"
    ckpt.write_bytes(content)
    assert main(["train", *tiny_overrides(world_dir, tmp_path / "run"), "--init", str(ckpt)]) == 2
    err = _error(capsys)
    assert str(ckpt) in err and expected in err


def _without_root_file_powers() -> None:
    """In the child before exec: drop CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH, so that root, too, is
    refused by file permissions."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


@pytest.mark.slow
def test_a_read_only_run_folder_is_one_clear_line(tmp_path, world_dir):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    cmd = [sys.executable, "-m", "spidepth_core.cli", "train", "model.name=spidepth_tiny", f"data.path={world_dir}",
           f"run.out_dir={ro / 'run'}"]
    try:
        proc = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=120,
                              preexec_fn=_without_root_file_powers if os.geteuid() == 0 else None)
    except subprocess.SubprocessError as exc:
        pytest.skip(f"cannot drop root's file capabilities here: {exc}")
    finally:
        ro.chmod(0o755)
    err = proc.stderr.strip()
    assert proc.returncode == 2 and len(err.splitlines()) == 1, err
    assert f"cannot write to the run folder {ro / 'run'}: Permission denied" in err


@pytest.mark.slow
def test_a_full_disk_is_one_clear_error_and_keeps_the_old_file(tmp_path):
    target = tmp_path / "last.pt"
    atomic_save({"x": torch.zeros(10)}, target)
    before = target.read_bytes()
    # The file-size limit makes writes fail as a full disk does (EFBIG instead of ENOSPC).
    code = ("import resource, signal, torch\nfrom spidepth_core.checkpoint import atomic_save\n"
            "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
            "resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))\n"
            "try:\n"
            f"    atomic_save({{'x': torch.zeros(1 << 20)}}, {str(target)!r})\n"
            "except OSError as exc:\n    print(exc)\n")
    out, err = _python(code).communicate(timeout=120)
    assert out.startswith(f"cannot save {target}: File too large (") and "MB free there)" in out, (out, err)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]  # the temp file is gone


def test_predict_skips_bad_images_and_reports_them(tiny_checkpoint, world_dir, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    images = sorted((world_dir / "seq_0001").glob("*.png"))[:3]
    for p in images:
        (src / p.name).write_bytes(p.read_bytes())
    (src / "broken.png").write_text("not an image")
    out = tmp_path / "out"
    assert main(["predict", str(src), "--model", str(tiny_checkpoint), "--output", str(out)]) == 1
    captured = capsys.readouterr()
    assert "skipped" in captured.err and "broken.png" in captured.err
    assert "wrote depth for 3 image(s)" in captured.out and "skipped 1 unreadable image(s)" in captured.out
    assert len(list(out.glob("*_depth.npy"))) == 3


def test_init_from_another_model_says_which_model_is_trained(world_dir, tiny_checkpoint, tmp_path, caplog):
    caplog.set_level("INFO", logger="spidepth.train")
    cfg = load_config(None, tiny_overrides(world_dir, tmp_path / "run", **{"model.name": "spidepth_small"}))
    cfg.model.init = str(tiny_checkpoint)
    trainer = Trainer(cfg, resume=False)
    assert trainer.model_name == "spidepth_tiny"
    assert "holds a spidepth_tiny model: training spidepth_tiny (model.name spidepth_small is not used)" in caplog.text
    assert "training spidepth_tiny with the standard pose net" in caplog.text


def test_a_benchmark_run_takes_the_run_folder_lock(world_dir, tmp_path):
    """Two benchmarks given the same settings name the same run folder: the second is refused, not mixed in."""
    from spidepth_core.run_lock import RunFolderBusy, RunLock
    from spidepth_core.tools.bench_accuracy import run_one
    run = tmp_path / "run"
    with RunLock(run), pytest.raises(RunFolderBusy, match="in use by another training run"):
        run_one(load_config(None, tiny_overrides(world_dir, run, **{"train.max_steps": 1})), run, world_dir)
    assert sorted(p.name for p in run.iterdir()) == []  # nothing written; the lock file went with its holder
