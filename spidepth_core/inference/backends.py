"""Inference backends: x [1,3,H,W] float32 RGB in [0,1] -> depth [1,1,H,W] float32 metres, and on request
the per-pixel uncertainty (standard deviation of the depth-bin mixture, metres) of the same shape.

Every runtime implements ``Backend``; ``resolve`` decides which one runs which file, ``factory`` opens it.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..errors import require_torch

EXPORT_VERSION = 2  # of spidepth's ONNX exports; 2: the uncertainty output (older cached exports are made again)

log = logging.getLogger("spidepth.inference")

REQUIRED_METADATA = ("input_size", "depth_range")
METADATA_KEYS = ("model_name", "config", "input_size", "depth_range", "input_format", "intrinsics_convention",
                 "metric")


class Backend(Protocol):
    name: str                  # torch | onnxruntime | tensorrt
    metadata: dict[str, Any]   # input_size, depth_range and the rest of METADATA_KEYS

    def run(self, x: np.ndarray) -> np.ndarray:
        """[1,3,H,W] float32 RGB in [0,1] at metadata["input_size"] -> [1,1,H,W] float32 depth in metres."""
        ...

    def run_with_uncertainty(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(depth, uncertainty), both [1,1,H,W]; uncertainty is None for a file exported without it."""
        ...


MAX_INPUT_SIDE = 4096            # network input sides a model may declare (ConvNeXt-L's 320x1024 is far below)
MAX_INPUT_PIXELS = 2048 * 2048


def check_metadata(meta: dict, source: str) -> dict:
    """The metadata, checked: the keys every backend needs, and an input size a network can run at."""
    missing = [k for k in REQUIRED_METADATA if k not in meta]
    if missing:
        raise ValueError(f"{source} has no spidepth metadata {missing}: re-export it with `spidepth export`")
    size = meta["input_size"]
    if (not isinstance(size, (list, tuple)) or len(size) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in size)):
        raise ValueError(f"{source}: metadata input_size must be [height, width], got {size!r}")
    h, w = size
    if not (8 <= h <= MAX_INPUT_SIDE and 8 <= w <= MAX_INPUT_SIDE and h * w <= MAX_INPUT_PIXELS):
        raise ValueError(f"{source}: metadata input_size {h}x{w} is outside 8-{MAX_INPUT_SIDE} px per side "
                         f"and {MAX_INPUT_PIXELS} pixels")
    return meta


def check_onnx_io(inputs: dict[str, list], outputs: set[str], meta: dict, source: str) -> None:
    """The graph's interface is the one the Predictor feeds: input ``image`` [1,3,H,W] at the metadata's
    input_size and a ``depth`` output. ``inputs``: name -> shape (None or a name for a dynamic dimension)."""
    if "image" not in inputs or "depth" not in outputs:
        raise ValueError(f"{source}: the graph needs input 'image' and output 'depth'; it has inputs "
                         f"{sorted(inputs)} and outputs {sorted(outputs)} (export it with `spidepth export`)")
    expected = [1, 3, *meta["input_size"]]
    shape = list(inputs["image"])
    if len(shape) != 4 or any(isinstance(s, int) and s != e for s, e in zip(shape, expected)):
        raise ValueError(f"{source}: input 'image' has shape {shape}, but the metadata says {expected}")


class TorchBackend:
    name = "torch"

    def __init__(self, checkpoint: str | Path, device: str | None = None) -> None:
        require_torch(f"running {Path(checkpoint).name} on PyTorch")
        import torch
        if Path(checkpoint).suffix not in (".pt", ".pth"):
            raise ValueError(f"the torch backend runs checkpoints (.pt), got {Path(checkpoint).name}")

        from ..checkpoint import load_model, read_checkpoint
        self.torch = torch
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        ckpt = read_checkpoint(checkpoint)
        self.metadata = check_metadata({k: ckpt[k] for k in METADATA_KEYS if k in ckpt}, str(checkpoint))
        self.model = load_model(checkpoint, self.device, ckpt)

    def run(self, x: np.ndarray) -> np.ndarray:
        with self.torch.inference_mode():
            out = self.model(self.torch.from_numpy(x).to(self.device))
        return out.float().cpu().numpy()

    def run_with_uncertainty(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        with self.torch.inference_mode():
            depth, spread = self.model.depth_and_uncertainty(self.torch.from_numpy(x).to(self.device))
        return depth.float().cpu().numpy(), spread.float().cpu().numpy()


def onnx_metadata(model_props: dict[str, str], source: str) -> dict:
    raw = model_props.get("spidepth")
    if raw is None:
        raise ValueError(f"{source} has no spidepth metadata: re-export it with `spidepth export`")
    return check_metadata(json.loads(raw), source)


def onnx_file_metadata(onnx, source: str | None = None) -> dict:
    """The spidepth metadata of an ONNX file (path) or loaded ModelProto; raises if absent. Read with the
    ``onnx`` package where it is installed, else through ONNX Runtime (the runtime install has no ``onnx``)."""
    try:
        import onnx as onnx_lib
    except ImportError:
        return onnx_metadata(ort_session(onnx, optimise=False).get_modelmeta().custom_metadata_map,
                             source or str(onnx))
    if isinstance(onnx, onnx_lib.ModelProto):
        proto = onnx
    else:
        proto = onnx_lib.load(str(onnx), load_external_data=False)
    return onnx_metadata({p.key: p.value for p in proto.metadata_props}, source or str(onnx))


def ort_session(path: str | Path, providers: list[str] | None = None, threads: int | None = None,
                optimise: bool = True) -> Any:
    """An ONNX Runtime session on ``path``, logging errors only (its optimiser's notes are not the user's)."""
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimise
                                     else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    opts.intra_op_num_threads = threads or os.cpu_count() or 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=providers or ["CPUExecutionProvider"])


class OnnxRuntimeBackend:
    name = "onnxruntime"

    def __init__(self, onnx_path: str | Path, device: str | None = None, threads: int | None = None) -> None:
        import onnxruntime as ort
        path = Path(onnx_path)
        if not path.is_file():
            raise FileNotFoundError(f"ONNX model not found: {path}")
        available = ort.get_available_providers()
        want_cuda = device != "cpu" and "CUDAExecutionProvider" in available
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if want_cuda else ["CPUExecutionProvider"]
        self.session = ort_session(path, providers, threads)
        self.provider = self.session.get_providers()[0]
        self.metadata = onnx_metadata(self.session.get_modelmeta().custom_metadata_map, str(path))
        check_onnx_io({i.name: i.shape for i in self.session.get_inputs()},
                      {o.name for o in self.session.get_outputs()}, self.metadata, str(path))
        self.has_uncertainty = "uncertainty" in {o.name for o in self.session.get_outputs()}

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(["depth"], {"image": x})[0]

    def run_with_uncertainty(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        if not self.has_uncertainty:  # exported before the output existed
            return self.run(x), None
        depth, spread = self.session.run(["depth", "uncertainty"], {"image": x})
        return depth, spread
