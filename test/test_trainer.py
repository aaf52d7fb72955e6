import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import ROOT, tiny_overrides
from spidepth_core.config import load_config
from spidepth_core.trainer import Trainer


def _weights(trainer):
    return {k: v.clone() for k, v in trainer.depth_model().state_dict().items()}


@pytest.mark.slow
def test_training_lowers_photometric_loss(world_dir, tmp_path):
    cfg = load_config(None, tiny_overrides(world_dir, tmp_path / "run", **{
        "train.max_steps": 240, "train.epochs": 100, "train.lr": 5e-4, "train.batch_size": 4,
        "train.flip": 0.0, "train.color_jitter": 0.0, "pose.kind": "standard", "run.image_every": 120}))
    trainer = Trainer(cfg, resume=False)
    batch = next(iter(trainer.loader(trainer.train_ds)))

    def photometric():
        with torch.no_grad():
            return trainer.objective(trainer.depth_net, trainer.pose_net, batch).photometric.item()

    trainer.depth_net.eval()
    trainer.pose_net.eval()
    before = photometric()
    trainer.fit()
    trainer.depth_net.eval()
    trainer.pose_net.eval()
    after = photometric()
    assert trainer.global_step == 240
    assert after < 0.8 * before, (before, after)
    run = tmp_path / "run"
    assert (run / "config.yaml").is_file() and (run / "last.pt").is_file()
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    assert {"input", "depth", "warped_source"} <= set(events.Tags()["images"])


@pytest.mark.slow
def test_resume_continues_exactly(world_dir, tmp_path):
    common = {"train.epochs": 2, "run.checkpoint_every": 1000, "train.flip": 0.5, "train.color_jitter": 0.5}
    full = Trainer(load_config(None, tiny_overrides(world_dir, tmp_path / "a", **common)), resume=False)
    full.fit()
    assert full.global_step == 2 * 22  # 44 samples / batch 2 per epoch

    # Same run, interrupted mid-epoch 2 (as after a crash), then resumed by a new process state.
    part_cfg = load_config(None, tiny_overrides(world_dir, tmp_path / "b", **common, **{"train.max_steps": 29}))
    Trainer(part_cfg, resume=False).fit()
    resumed = Trainer(load_config(None, tiny_overrides(world_dir, tmp_path / "b", **common)), resume=True)
    assert (resumed.epoch, resumed.step_in_epoch, resumed.global_step) == (1, 7, 29)
    resumed.fit()
    assert resumed.global_step == full.global_step
    a, b = _weights(full), _weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_two_process_ddp_keeps_ranks_identical(world_dir, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
           str(Path(__file__).parent / "ddp_worker.py"), str(tmp_path),
           *tiny_overrides(world_dir, tmp_path / "run", **{"train.max_steps": 3})]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0, r1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    init = Trainer(load_config(None, tiny_overrides(world_dir, tmp_path / "fresh")), resume=False)
    start = _weights(init)
    params = {f"depth.{n}" for n, _ in init.depth_model().named_parameters()}
    params |= {f"pose.{n}" for n, _ in init.pose_model().named_parameters()}
    assert params <= set(r0)
    # Every learned weight is identical; BatchNorm running statistics are per-rank buffers on CPU
    # (DDP re-broadcasts them from rank 0 each step, and rank 0 writes the checkpoint).
    assert all(torch.equal(r0[k], r1[k]) for k in params)
    assert any(not torch.equal(r0[f"depth.{k}"], v) for k, v in start.items())  # it did train
    assert (tmp_path / "run" / "last.pt").is_file()  # rank 0 wrote the checkpoint


@pytest.mark.slow
def test_resume_follows_a_changed_step_size(world_dir, tmp_path, caplog):
    def trainer(step_size, epochs):
        cfg = load_config(None, tiny_overrides(world_dir, tmp_path / "run", **{
            "train.epochs": epochs, "train.step_size": step_size, "train.gamma": 0.1, "train.lr": 1e-4}))
        return Trainer(cfg, resume=True)

    first = trainer(1, 1)
    first.fit()  # the rate drops after epoch 1
    assert first.optimizer.param_groups[0]["lr"] == pytest.approx(1e-5)
    same = trainer(1, 2)
    assert same.optimizer.param_groups[0]["lr"] == pytest.approx(1e-5) and same.scheduler.step_size == 1
    later = trainer(3, 4)  # the drop now comes after epoch 3
    assert later.scheduler.step_size == 3 and later.optimizer.param_groups[0]["lr"] == pytest.approx(1e-4)
    assert "train.step_size/gamma changed" in caplog.text
    later.fit()
    assert later.optimizer.param_groups[0]["lr"] == pytest.approx(1e-5)  # dropped after epoch 3, once


def _params(trainer):
    return {k: v.detach().clone() for k, v in trainer.depth_model().named_parameters()}


@pytest.mark.parametrize("warmup, share", [(0, 1.0), (4, 0.25)])
def test_warmup_scales_the_first_steps_and_leaves_the_schedule(world_dir, tmp_path, warmup, share):
    """Adam's first update moves every weight with a gradient by the rate it was given, so the largest
    change after one step is the warmed-up rate."""
    cfg = load_config(None, tiny_overrides(world_dir, tmp_path / "run", **{
        "train.max_steps": 1, "train.lr": 1e-3, "train.warmup_steps": warmup}))
    trainer = Trainer(cfg, resume=False)
    before = _params(trainer)
    trainer.fit()
    after = _params(trainer)
    moved = max((after[k] - before[k]).abs().max().item() for k in before)
    assert moved == pytest.approx(1e-3 * share, rel=1e-3)
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(1e-3)  # the scheduled rate is kept
    resumed = Trainer(load_config(None, tiny_overrides(world_dir, tmp_path / "run", **{
        "train.max_steps": 2, "train.lr": 1e-3, "train.warmup_steps": warmup})))
    assert resumed.warmup_factor(resumed.global_step) == (2 / warmup if warmup else 1.0)


def test_warmup_steps_must_not_be_negative(world_dir, tmp_path):
    with pytest.raises(ValueError, match="warmup_steps must be >= 0"):  # when the config is read
        load_config(None, tiny_overrides(world_dir, tmp_path / "run", **{"train.warmup_steps": -1}))


def test_forward_start_biases_a_new_pose_net_only(world_dir, tmp_path):
    """pose.forward_start sets up a fresh pose net; a fine-tune keeps its --init's pose net as it is."""
    start = Trainer(load_config(None, tiny_overrides(world_dir, tmp_path / "start", **{
        "train.max_steps": 1, "pose.forward_start": 0.05})))
    assert start.pose_model().head.bias[5].item() == pytest.approx(-5.0, abs=0.1)  # init bias is ~0.06
    start.fit()
    stored = start.pose_model().head.bias.detach().clone()
    tune = Trainer(load_config(None, tiny_overrides(world_dir, tmp_path / "tune", **{
        "model.init": tmp_path / "start" / "last.pt", "pose.forward_start": 0.5})))
    assert torch.equal(tune.pose_model().head.bias, stored)


def test_anchor_needs_a_starting_model(world_dir, tmp_path):
    """Refused when the config is read, before anything is built or written."""
    with pytest.raises(ValueError, match="needs one"):
        load_config(None, tiny_overrides(world_dir, tmp_path / "run", **{"train.anchor_weight": 1.0}))
    with pytest.raises(ValueError, match=">= 0"):
        load_config(None, tiny_overrides(world_dir, tmp_path / "run", **{"train.anchor_weight": -1}))
    with pytest.raises(ValueError, match="anchor_weight > 0"):
        load_config(None, tiny_overrides(world_dir, tmp_path / "run", **{"train.anchor_gate": True}))
    assert not (tmp_path / "run").exists()


def test_anchored_fine_tune_holds_the_start_as_its_teacher(world_dir, tmp_path):
    start = Trainer(load_config(None, tiny_overrides(world_dir, tmp_path / "start", **{"train.max_steps": 1})))
    start.fit()
    init = tmp_path / "start" / "last.pt"
    cfg = load_config(None, tiny_overrides(world_dir, tmp_path / "tune", **{
        "model.init": init, "train.anchor_weight": 1.0, "train.max_steps": 2, "train.lr": 1e-3}))
    tune = Trainer(cfg)
    scalars = tune.fit()
    assert scalars["anchor"] > 0  # the student has moved away from its (frozen) start
    teacher = tune.objective.anchor.teacher.state_dict()
    started = torch.load(init, map_location="cpu", weights_only=False)["state_dict"]
    assert all(torch.equal(teacher[k], v) for k, v in started.items())
    moved = tune.depth_model().state_dict()
    assert any(not torch.equal(moved[k], v) for k, v in started.items() if v.is_floating_point())


def test_a_fine_tune_resumes_with_the_pose_backbone_of_its_init(world_dir, tmp_path):
    """The pose backbone comes from the --init checkpoint, not from pose.backbone: resuming must accept it."""
    pose = {"pose.kind": "strengthened", "train.max_steps": 1}
    start = Trainer(load_config(None, tiny_overrides(world_dir, tmp_path / "start", **pose,
                                                     **{"pose.backbone": "tf_efficientnet_lite0"})))
    start.fit()
    tune = {**pose, "model.init": tmp_path / "start" / "last.pt", "pose.backbone": "resnet18"}
    first = Trainer(load_config(None, tiny_overrides(world_dir, tmp_path / "tune", **tune)))
    first.fit()
    assert first.pose_model().config["backbone"] == "tf_efficientnet_lite0"
    again = Trainer(load_config(None, tiny_overrides(world_dir, tmp_path / "tune", **{**tune, "train.max_steps": 2})))
    assert again.global_step == 1 and again.pose_model().config["backbone"] == "tf_efficientnet_lite0"



@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before")  # no training steps here
@pytest.mark.parametrize("best_by, expected", [("validation", 2), ("last", 3)])
def test_best_checkpoint_is_picked_by_run_best_by(world_dir, tmp_path, monkeypatch, best_by, expected):
    """best.pt (what deploy and the benchmarks take) is the epoch of lowest validation photometric error,
    or with run.best_by=last the last epoch."""
    run = tmp_path / "run"
    cfg = load_config(None, tiny_overrides(world_dir, run, **{"data.val_path": str(world_dir), "run.best_by": best_by}))
    trainer = Trainer(cfg, resume=False)
    scores = iter([0.5, 0.3, 0.4])  # validation photometric error after epochs 1, 2, 3
    monkeypatch.setattr(trainer, "validate", lambda: {"photometric": next(scores)})
    for _ in range(3):
        trainer.end_epoch()
    best = torch.load(run / "best.pt", weights_only=False)
    assert best["epoch"] == expected and best["validation"]["photometric"] == [0.5, 0.3, 0.4][expected - 1]


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before")
def test_resume_with_another_best_by_rewrites_best_checkpoint(world_dir, tmp_path, monkeypatch):
    """Scores kept by one rule do not compare with the other's: switching run.best_by on resume lets the
    next epoch write best.pt (a run begun with 'last' would otherwise never take a validation score)."""
    run = tmp_path / "run"
    over = tiny_overrides(world_dir, run, **{"data.val_path": str(world_dir), "run.best_by": "last"})
    trainer = Trainer(load_config(None, over), resume=False)
    monkeypatch.setattr(trainer, "validate", lambda: {"photometric": 0.5})
    trainer.end_epoch()
    trainer.end_epoch()
    trainer.save_state()
    resumed = Trainer(load_config(None, over + ["run.best_by=validation"]), resume=True)
    monkeypatch.setattr(resumed, "validate", lambda: {"photometric": 0.4})
    resumed.end_epoch()
    best = torch.load(run / "best.pt", weights_only=False)
    assert best["epoch"] == 3 and best["validation"]["photometric"] == 0.4


@pytest.mark.slow
@pytest.mark.parametrize("max_steps", [11, 4])
def test_a_run_stopped_by_max_steps_validates_its_final_weights(world_dir, tmp_path, max_steps):
    """An epoch whose last step reaches train.max_steps still ends (scheduler, validation, best.pt); a run
    ended within an epoch has its final weights validated and, by run.best_by=last, kept as best.pt."""
    run = tmp_path / "run"
    cfg = load_config(None, tiny_overrides(world_dir, run, **{
        "data.val_path": str(world_dir), "run.best_by": "last", "train.batch_size": 4, "train.epochs": 3,
        "train.max_steps": max_steps, "train.step_size": 1}))
    trainer = Trainer(cfg, resume=False)
    assert trainer.steps_per_epoch() == 11  # 2 sequences x 22 triplets, batches of 4
    trainer.fit()
    best = torch.load(run / "best.pt", weights_only=False)
    assert best["step"] == max_steps == trainer.global_step and "photometric" in best["validation"]
    if max_steps == 11:
        assert (trainer.epoch, trainer.step_in_epoch, trainer.scheduler.last_epoch) == (1, 0, 1)
        assert best["epoch"] == 1
    else:
        assert (trainer.epoch, trainer.step_in_epoch) == (0, 4) and best["epoch"] == pytest.approx(4 / 11)
    final = trainer.depth_model().state_dict()
    assert all(torch.equal(v, final[k]) for k, v in best["state_dict"].items())  # the final weights


@pytest.mark.parametrize("scale", [0.0, 0.5])
def test_pose_lr_scale_sets_the_pose_nets_rate_and_zero_freezes_it(world_dir, tmp_path, scale):
    run = tmp_path / "run"
    overrides = {"train.max_steps": 2, "pose.kind": "strengthened", "pose.backbone": "resnet10t",
                 "train.pose_lr_scale": scale}
    trainer = Trainer(load_config(None, tiny_overrides(world_dir, run, **overrides)))
    depth_lr, pose_lr = (group["lr"] for group in trainer.optimizer.param_groups)
    assert pose_lr == pytest.approx(scale * depth_lr)
    pose_before = {k: v.clone() for k, v in trainer.pose_model().state_dict().items()}
    depth_before = {k: v.clone() for k, v in trainer.depth_model().state_dict().items()}
    trainer.fit()
    pose_after, depth_after = trainer.pose_model().state_dict(), trainer.depth_model().state_dict()
    assert any(not torch.equal(depth_before[k], depth_after[k]) for k in depth_before)
    pose_kept = all(torch.equal(pose_before[k], pose_after[k]) for k in pose_before)  # batch norm buffers too
    assert pose_kept == (scale == 0.0)
    changed = load_config(None, tiny_overrides(world_dir, run, **{**overrides, "train.pose_lr_scale": 1.0}))
    with pytest.raises(ValueError, match="pose_lr_scale"):
        Trainer(changed)  # a run keeps the rates it began with
    with pytest.raises(ValueError, match=">= 0"):
        Trainer(load_config(None, tiny_overrides(world_dir, tmp_path / "bad", **{"train.pose_lr_scale": -1})))


def test_photometric_loss_at_twice_the_input_size(world_dir, tmp_path):
    """The networks see frames pooled to their input size; the loss sees the frames at twice it (here the
    world's own 64x192), with the depth upsampled, and its gradient reaches the depth net."""
    cfg = load_config(None, tiny_overrides(world_dir, tmp_path / "run", **{
        "train.photometric_resolution": 2, "model.overrides": "{height: 32, width: 96}"}))
    trainer = Trainer(cfg, resume=False)
    h, w = trainer.depth_cfg.height, trainer.depth_cfg.width
    batch = next(iter(trainer.loader(trainer.train_ds)))
    assert batch["frames"].shape[-2:] == (2 * h, 2 * w)
    out = trainer.objective(trainer.depth_net, trainer.pose_net, batch)
    assert out.depth.shape[-2:] == (h, w) and out.warped.shape[-2:] == (2 * h, 2 * w)
    out.loss.backward()
    grads = [p.grad for p in trainer.depth_model().parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads) and any(g.abs().sum() > 0 for g in grads)


def test_photometric_resolution_is_checked(world_dir, tmp_path, caplog):
    with pytest.raises(ValueError, match=">= 1"):  # when the config is read
        load_config(None, tiny_overrides(world_dir, tmp_path / "run", **{"train.photometric_resolution": 0}))
    assert not (tmp_path / "run").exists()
    cfg = load_config(None, tiny_overrides(world_dir, tmp_path / "gt", **{
        "train.photometric_resolution": 2, "train.supervised": True, "model.overrides": "{height: 32, width: 96}"}))
    caplog.set_level(logging.INFO, logger="spidepth.train")
    trainer = Trainer(cfg, resume=False)  # GT depth is at the input size: the frames stay there too
    assert trainer.train_ds.loss_factor == 1 and "photometric_resolution: for self-supervised" in caplog.text


def test_the_pose_input_scale_trains_and_is_kept_in_the_checkpoint(world_dir, tmp_path):
    from spidepth_core.checkpoint import load_pose_net, read_checkpoint
    run = tmp_path / "run"
    trainer = Trainer(load_config(None, tiny_overrides(world_dir, run, **{
        "pose.input_scale": 0.5, "train.max_steps": 1, "train.cpu_bf16": True, "train.channels_last": True})))
    seen = []
    trainer.pose_model().convs[0].register_forward_pre_hook(lambda m, args: seen.append(args[0].shape[-2:]))
    trainer.fit()
    assert seen and tuple(seen[0]) == (32, 96)  # the 64x192 frames at half size
    ckpt = read_checkpoint(run / "last.pt")
    assert ckpt["pose_config"]["input_scale"] == 0.5
    assert load_pose_net(ckpt, run / "last.pt").config["input_scale"] == 0.5
    with pytest.raises(ValueError, match="input_scale"):
        load_config(None, tiny_overrides(world_dir, run, **{"pose.input_scale": 2}))


def test_frames_are_decoded_once_and_the_cache_keeps_to_its_budget(world_dir):
    from spidepth_core.data import FolderSequence, TripletDataset
    seq = FolderSequence(world_dir / "seq_0000")
    reads = []
    original = seq.image
    seq.image = lambda i: reads.append(i) or original(i)  # type: ignore[method-assign]
    data = TripletDataset([seq], 32, 96, cache_mb=64)
    first = [data[i]["frames"] for i in range(len(data))]
    assert len(reads) == len(seq)  # each frame once, though each serves up to three triplets
    again = [data[i]["frames"] for i in range(len(data))]
    assert len(reads) == len(seq) and all(torch.equal(a, b) for a, b in zip(first, again))
    small = TripletDataset([seq], 32, 96, cache_mb=32 * 96 * 3 * 5 / 2**20)  # room for five frames
    for i in range(len(small)):
        small[i]
    kept = [key for key, frame in small.cache.frames.items() if frame.size]
    assert len(kept) == 5 and small.cache.used <= small.cache.budget


def test_a_supervised_run_names_its_validation_figure_silog(world_dir, tmp_path):
    run = tmp_path / "run"
    trainer = Trainer(load_config(None, tiny_overrides(world_dir, run, **{
        "train.supervised": True, "train.max_steps": 1, "data.val_path": str(world_dir)})))
    trainer.fit()
    from spidepth_core.checkpoint import read_checkpoint
    validation = read_checkpoint(run / "best.pt")["validation"]
    assert "silog" in validation and "photometric" not in validation
