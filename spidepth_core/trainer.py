"""Self-supervised training loop: single process, or many with torchrun (DDP)."""
from __future__ import annotations

import contextlib
import logging
import signal
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader
from tqdm import tqdm

from .checkpoint import atomic_save, model_metadata, read_checkpoint, save_model
from .config import TrainConfig
from .data.build import build_datasets
from .distributed import EpochSampler, all_reduce_mean, init_distributed
from .files import remove_stale_temps
from .models import DepthNet
from .parts import (
    WAYS_OUT,
    Objective,
    build_depth_net,
    build_objective,
    build_optimisation,
    build_pose_net,
    check_resume,
    depth_config,
    photometric_scores,
    read_init,
)

log = logging.getLogger("spidepth.train")


def _remove_stale_temps(folder: Path) -> None:
    removed = remove_stale_temps(folder)
    if removed:
        log.info("removed %d temp file(s) left by killed saves in %s", len(removed), folder)


def _unwrap(module: nn.Module) -> nn.Module:
    return module.module if isinstance(module, DDP) else module


def _to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


class _StopFlag:
    """Turns SIGINT / SIGTERM into a flag checked between steps."""

    def __init__(self) -> None:
        self.stop = False
        self.signal = 0

    @contextlib.contextmanager
    def installed(self):
        def handler(signum, frame):
            self.stop = True
            self.signal = signum
        old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for s, h in old.items():
                signal.signal(s, h)


class Trainer:
    """Owns the models, optimiser and state; ``fit()`` runs (or resumes) training."""

    objective: Objective
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler

    def __init__(self, cfg: TrainConfig, resume: bool = True) -> None:
        self.cfg = cfg
        self.dist, self.device = init_distributed(cfg.run.device)
        torch.manual_seed(cfg.train.seed + self.dist.rank)
        self.out_dir = Path(cfg.run.out_dir)
        if self.dist.is_main and self.out_dir.is_dir():
            _remove_stale_temps(self.out_dir)
        last = self.out_dir / "last.pt"
        resume_from = last if resume and last.is_file() else None
        resumed = read_checkpoint(resume_from) if resume_from is not None else None
        init_ckpt = read_init(cfg)
        self.model_name = cfg.model.name if init_ckpt is None else init_ckpt.get("model_name", "custom")
        self.depth_cfg = depth_config(cfg, init_ckpt, resumed)
        if resumed is not None:
            check_resume(resumed, last, self.model_name, cfg, init_ckpt)
        # the data first: a wrong path, topic or size is reported before any model is built or downloaded
        self.train_ds, self.val_ds = build_datasets(cfg.data, self.depth_cfg.height, self.depth_cfg.width, cfg.train)
        if self.dist.is_main:
            log.info("training %s with the %s pose net in %s", self.model_name, cfg.pose.kind, self.out_dir)
        self.depth_net = self._wrap(build_depth_net(cfg, self.depth_cfg, init_ckpt, resumed))
        self.pose_net = self._wrap(build_pose_net(cfg, resumed or init_ckpt))
        self.depth_cfg = self.depth_model().config  # with the pretrained weights' input normalisation
        self.sampler = EpochSampler(len(self.train_ds), cfg.train.seed, self.dist.rank, self.dist.world_size)
        anchor = self.depth_model() if cfg.train.anchor_weight else None  # the starting model, before any resume
        self.objective = build_objective(cfg, self.depth_cfg, anchor)
        self.optim = build_optimisation(cfg, self.depth_net, self.pose_net, self.steps_per_epoch())
        self.optimizer, self.scheduler = self.optim.optimizer, self.optim.scheduler
        if cfg.train.supervised and self.dist.is_main:
            _note_unused_by_supervised(cfg)
        self.use_amp = cfg.train.amp and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)  # float16 only: bfloat16 needs none
        self.use_bf16 = self.device.type == "cpu" and (cfg.train.cpu_bf16 is True or (
            cfg.train.cpu_bf16 == "auto" and torch.ops.mkldnn._is_mkldnn_bf16_supported()))
        self.epoch = self.step_in_epoch = self.global_step = 0
        self.best_val = float("inf")
        self.writer = None
        if resumed is not None:
            self.load_state(last, resumed)
        if self.dist.is_main:  # written only once the run is known to start (or resume) cleanly
            self.out_dir.mkdir(parents=True, exist_ok=True)
            cfg.save(self.out_dir / "config.yaml")

    # -- setup -------------------------------------------------------------
    def _wrap(self, module: nn.Module) -> nn.Module:
        module = module.to(self.device)
        if self.cfg.train.channels_last:
            module = module.to(memory_format=torch.channels_last)
            module.register_forward_pre_hook(_channels_last_inputs)
        if self.dist.enabled:
            ids = None
            if self.device.type == "cuda":  # one set of BatchNorm statistics across GPUs (CUDA only)
                module = nn.SyncBatchNorm.convert_sync_batchnorm(module)
                ids = [self.device.index]
            module = DDP(module, device_ids=ids)
        return module

    def loader(self, dataset, sampler=None, shuffle=False) -> DataLoader:
        """Batches of ``dataset`` with the run's batch size and workers."""
        return DataLoader(dataset, batch_size=self.cfg.train.batch_size, sampler=sampler, shuffle=shuffle,
                          num_workers=self.cfg.train.workers, drop_last=sampler is not None,
                          pin_memory=self.device.type == "cuda", generator=torch.Generator().manual_seed(0),
                          persistent_workers=False)

    # -- state ---------------------------------------------------------------
    def depth_model(self) -> DepthNet:
        """The depth net itself (unwrapped from DDP)."""
        return cast(DepthNet, _unwrap(self.depth_net))

    def pose_model(self) -> nn.Module:
        """The pose net itself (unwrapped from DDP)."""
        return _unwrap(self.pose_net)

    def state(self) -> dict:
        depth = self.depth_model()
        rng: dict[str, Any] = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return {
            **model_metadata(depth, self.model_name),
            "state_dict": {k: v.detach().cpu() for k, v in depth.state_dict().items()},
            "pose_state_dict": self.pose_model().state_dict(),
            "pose_kind": self.cfg.pose.kind,
            "pose_config": self.pose_model().config,
            "metric": self.cfg.train.supervised,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "progress": {"epoch": self.epoch, "step_in_epoch": self.step_in_epoch,
                         "global_step": self.global_step, "best_val": self.best_val},
            "rng": rng,
            "train_config": self.cfg.to_dict(),
        }

    def save_state(self) -> None:
        if self.dist.is_main:
            atomic_save(self.state(), self.out_dir / "last.pt")

    def load_state(self, path: Path, ckpt: dict | None = None) -> None:
        ckpt = ckpt if ckpt is not None else read_checkpoint(path)
        try:
            self.depth_model().load_state_dict(ckpt["state_dict"])
            self.pose_model().load_state_dict(ckpt["pose_state_dict"])
        except RuntimeError as exc:  # e.g. model.overrides changed the shapes since the run began
            first = str(exc).strip().splitlines()[-1].strip()[:160]
            raise ValueError(f"cannot resume from {path}: its weights do not fit this config ({first}). "
                             f"{WAYS_OUT}") from None
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self._follow_config_schedule()
        self.scaler.load_state_dict(ckpt["scaler"])
        p = ckpt["progress"]
        self.epoch, self.step_in_epoch, self.global_step = p["epoch"], p["step_in_epoch"], p["global_step"]
        self.best_val = p["best_val"]
        self._follow_config_best_by(ckpt["train_config"]["run"].get("best_by", "validation"))
        torch.set_rng_state(ckpt["rng"]["torch"])
        if "cuda" in ckpt["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(ckpt["rng"]["cuda"])
        if self.dist.is_main:
            log.info("resumed from %s at epoch %d, step %d", path, self.epoch, self.global_step)

    def _follow_config_schedule(self) -> None:
        """A resumed StepLR keeps the step size it was saved with; the config's step_size and gamma win."""
        sched, t = self.scheduler, self.cfg.train
        if not isinstance(sched, torch.optim.lr_scheduler.StepLR) or (sched.step_size, sched.gamma) == (
                t.step_size, t.gamma):
            return
        if self.dist.is_main:
            log.warning("train.step_size/gamma changed since the run began (%d/%g -> %d/%g): the learning rate "
                        "now follows the config's schedule", sched.step_size, sched.gamma, t.step_size, t.gamma)
        sched.step_size, sched.gamma = t.step_size, t.gamma
        for group, base in zip(self.optimizer.param_groups, sched.base_lrs):
            group["lr"] = base * t.gamma ** (sched.last_epoch // t.step_size)

    def _follow_config_best_by(self, stored: str) -> None:
        """Scores kept by another ``run.best_by`` rule do not compare: the next epoch writes best.pt."""
        if stored == self.cfg.run.best_by:
            return
        if self.dist.is_main:
            log.warning("run.best_by changed since the run began (%s -> %s): the next epoch writes best.pt",
                        stored, self.cfg.run.best_by)
        self.best_val = float("inf")

    # -- loop ------------------------------------------------------------------
    def _done(self) -> bool:
        max_steps = self.cfg.train.max_steps
        return self.epoch >= self.cfg.train.epochs or (max_steps is not None and self.global_step >= max_steps)

    def fit(self) -> dict:
        """Train until ``epochs`` (or ``max_steps``); returns the last logged scalars."""
        stop = _StopFlag()
        self.interrupted = 0  # the signal number that stopped the run, if any
        last: dict = {}
        with stop.installed():
            while not self._done():
                last = self.train_epoch(stop) or last
                if stop.stop:
                    self.interrupted = stop.signal
                    self.save_state()
                    if self.dist.is_main:
                        log.warning("interrupted: state saved to %s; run the same command to resume",
                                    self.out_dir / "last.pt")
                    break
                if self.step_in_epoch == 0:  # finished a whole epoch
                    self.end_epoch()
                elif self._done():  # train.max_steps ended the run within an epoch
                    self.keep_best(self.epoch + self.step_in_epoch / self.steps_per_epoch())
            if not stop.stop:
                self.save_state()
        if self.writer is not None:
            self.writer.close()
        return last

    def train_epoch(self, stop: _StopFlag) -> dict:
        self.train_ds.set_epoch(self.epoch)
        self.sampler.set_epoch(self.epoch, self.step_in_epoch * self.cfg.train.batch_size)
        loader = self.loader(self.train_ds, self.sampler)
        self._train_mode()
        scalars: dict = {}
        steps = self.steps_per_epoch() - self.step_in_epoch
        desc = f"epoch {self.epoch + 1}/{self.cfg.train.epochs}"
        if self.cfg.train.max_steps:  # the bar ends where the step budget ends the run
            steps = min(steps, self.cfg.train.max_steps - self.global_step)
            desc += f" (run ends at step {self.cfg.train.max_steps})"
        with tqdm(total=steps, desc=desc, disable=not self.dist.is_main, dynamic_ncols=True) as bar:
            for batch in loader:
                out = self.train_step(_to_device(batch, self.device))
                self.step_in_epoch += 1
                self.global_step += 1
                scalars = out.scalars()
                bar.update(1)
                bar.set_postfix(loss=f"{scalars['loss']:.4f}")
                self.log_step(scalars, out, batch)
                if self.global_step % self.cfg.run.checkpoint_every == 0:
                    self.save_state()
                if stop.stop:
                    return scalars  # an interrupted epoch resumes where it stopped
                if self._done():
                    break
        if self.step_in_epoch >= self.steps_per_epoch():  # every batch of the epoch was taken
            self.step_in_epoch = 0
        return scalars

    def steps_per_epoch(self) -> int:
        """Optimiser steps in a whole epoch (the last, incomplete batch is dropped)."""
        return self.sampler.per_rank // self.cfg.train.batch_size

    def autocast(self) -> torch.autocast:
        """Mixed precision of the networks' forward: float16 on CUDA (``train.amp``), bfloat16 on CPU
        (``train.cpu_bf16``), else none. The loss terms run in float32 (the objective casts the outputs)."""
        if self.use_bf16:
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return torch.autocast(self.device.type, dtype=torch.float16, enabled=self.use_amp)

    def train_step(self, batch: dict):
        with self.autocast():
            out = self.objective(self.depth_net, self.pose_net, batch)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(out.loss).backward()
        if self.optim.clip_grad:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_([p for g in self.optimizer.param_groups for p in g["params"]],
                                     self.optim.clip_grad)
        share = self.warmup_factor(self.global_step)
        scheduled = [g["lr"] for g in self.optimizer.param_groups]
        if share < 1.0:
            for group in self.optimizer.param_groups:
                group["lr"] *= share
        self.scaler.step(self.optimizer)
        if share < 1.0:
            for group, lr in zip(self.optimizer.param_groups, scheduled):  # the scheduler keeps its own rate
                group["lr"] = lr
        self.scaler.update()
        if self.optim.per_batch and self.scheduler.last_epoch < self.optim.total_steps:
            self.scheduler.step()
        return out

    def warmup_factor(self, step: int) -> float:
        """The share of the scheduled rate step ``step`` (from 0) uses: (step + 1) / warmup_steps, then 1."""
        warmup = self.cfg.train.warmup_steps
        return 1.0 if step >= warmup else (step + 1) / warmup

    def end_epoch(self) -> None:
        self.epoch += 1
        if not self.optim.per_batch:
            self.scheduler.step()
        self.keep_best(self.epoch)
        self.save_state()

    def keep_best(self, epochs: float) -> None:
        """Validate the weights after ``epochs`` epochs (a fraction for a run ended within one) and write
        best.pt if they are the best by ``run.best_by``."""
        val = self.validate() if self.val_ds is not None else {}
        score = val.get(self.objective.figure_name, -epochs) if self.cfg.run.best_by == "validation" else -epochs
        if self.dist.is_main:
            for k, v in val.items():
                self._tb().add_scalar(f"val/{k}", v, self.global_step)
            if val:
                log.info("epoch %g validation: %s", round(epochs, 2),
                         ", ".join(f"{k} {v:.4f}" for k, v in val.items()))
        if score < self.best_val:
            self.best_val = score
            if self.dist.is_main:
                save_model(self.out_dir / "best.pt", self.depth_model(), self.model_name,
                           pose_state_dict=self.pose_model().state_dict(), pose_kind=self.cfg.pose.kind,
                           pose_config=self.pose_model().config,
                           metric=self.cfg.train.supervised, epoch=epochs, step=self.global_step, validation=val)

    def _train_mode(self) -> None:
        """Both networks in training mode, but a frozen pose net (``train.pose_lr_scale`` 0) keeps its batch
        norm statistics as well as its weights."""
        self.depth_net.train()
        self.pose_net.train(self.cfg.train.pose_lr_scale > 0)

    def validate(self) -> dict[str, float]:
        """Mean photometric loss; median-scaled abs_rel where the data has ground truth."""
        assert self.val_ds is not None
        self.depth_net.eval()
        self.pose_net.eval()
        result = photometric_scores(self.depth_net, self.pose_net, self.objective, self.loader(self.val_ds),
                                    self.device, self.depth_cfg.max_depth, show=self.dist.is_main)
        self._train_mode()
        return {k: all_reduce_mean(torch.tensor(v, device=self.device)).item() for k, v in result.items()}

    # -- logging -------------------------------------------------------------
    def _tb(self):
        if self.writer is None:
            from torch.utils.tensorboard import SummaryWriter
            self.writer = SummaryWriter(str(self.out_dir / "tensorboard"))
        return self.writer

    def log_step(self, scalars: dict, out, batch: dict) -> None:
        if not self.dist.is_main:
            return
        if self.global_step % self.cfg.run.log_every == 0:
            for k, v in scalars.items():
                self._tb().add_scalar(f"train/{k}", v, self.global_step)
            lr = self.optimizer.param_groups[0]["lr"] * self.warmup_factor(self.global_step - 1)  # the step taken
            self._tb().add_scalar("train/lr", lr, self.global_step)
        if self.global_step % self.cfg.run.image_every == 0 and hasattr(out, "warped"):
            from .viz import colorize_depth
            depth = out.depth[0, 0].detach().cpu().numpy()
            self._tb().add_image("input", batch["frames"][0, 0], self.global_step)
            self._tb().add_image("depth", colorize_depth(depth), self.global_step, dataformats="HWC")
            self._tb().add_image("warped_source", out.warped[0].detach().clamp(0, 1).cpu(), self.global_step)


def _note_unused_by_supervised(cfg: TrainConfig) -> None:
    t = cfg.train
    unused = [name for name, on in (("train.anchor_weight", bool(t.anchor_weight)),
                                    ("train.photometric_resolution", t.photometric_resolution != 1)) if on]
    if unused:
        log.info("%s: for self-supervised training, not used with supervised training", ", ".join(unused))


def _channels_last_inputs(module: nn.Module, args: tuple) -> tuple:
    """A network's image input in channels-last memory format, as its weights are (``train.channels_last``)."""
    return tuple(a.contiguous(memory_format=torch.channels_last) if isinstance(a, torch.Tensor) and a.dim() == 4
                 else a for a in args)

