"""Shared fixtures: small synthetic sequences and a tiny checkpoint, written by the tests themselves."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# DDS stays on this machine; a domain of our own so parallel runs don't meet.
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_LOCALHOST_ONLY", "1")
os.environ.setdefault("ROS_DOMAIN_ID", str(40 + os.getpid() % 150))
# No hub here: a download attempt fails at once instead of retrying for a minute.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

TINY = dict(height=64, width=192)


@pytest.fixture(scope="session")
def world_dir(tmp_path_factory) -> Path:
    """Two synthetic sequences of 24 frames at 64x192 with GT depth."""
    from spidepth_core.synth import generate
    root = tmp_path_factory.mktemp("world")
    generate(root, [0, 1], 24, 64, 192, workers=1)
    return root


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    import torch

    from spidepth_core.checkpoint import save_model
    from spidepth_core.models import create_model
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_model(path, create_model("spidepth_tiny"), "spidepth_tiny")
    return path


def tiny_overrides(data_path, out_dir, **extra) -> list[str]:
    """Config overrides for a fast CPU run of the tiny model."""
    base = {"model.name": "spidepth_tiny", "model.pretrained": "false", "pose.kind": "standard",
            "pose.pretrained": "false", "data.path": str(data_path),
            "train.batch_size": 2, "train.workers": 0, "train.epochs": 1, "run.out_dir": str(out_dir),
            "run.device": "cpu"}
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]
