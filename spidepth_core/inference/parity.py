"""How closely an ONNX export reproduces its checkpoint on onnxruntime."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..checkpoint import load_model
from .backends import OnnxRuntimeBackend


def check_parity(checkpoint: str | Path, onnx_path: str | Path, seed: int = 0) -> dict[str, float]:
    """Max abs / relative difference between PyTorch and onnxruntime on one random input."""
    backend = OnnxRuntimeBackend(onnx_path, device="cpu")
    h, w = backend.metadata["input_size"]
    x = np.random.default_rng(seed).random((1, 3, h, w), dtype=np.float32)
    with torch.no_grad():
        ref = load_model(checkpoint)(torch.from_numpy(x)).numpy()
    got = backend.run(x)
    diff = np.abs(ref - got)
    return {"max_abs": float(diff.max()), "max_rel": float((diff / np.abs(ref).clip(1e-6)).max())}
