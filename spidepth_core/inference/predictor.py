"""Predictor: uint8 camera image in, depth in metres out, on the fastest available backend."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..checkpoint import file_sha256
from ..geometry import resize_intrinsics
from .backends import OnnxRuntimeBackend, TorchBackend, onnx_file_metadata

log = logging.getLogger("spidepth.inference")

BACKENDS = ("auto", "tensorrt", "onnxruntime", "torch")


def default_model_path() -> Path:
    """The bundled model (trained on the synthetic street world)."""
    return Path(__file__).resolve().parent.parent / "assets" / "default_model.pt"


@dataclass
class DepthResult:
    depth: np.ndarray        # HxW float32 metres
    K: np.ndarray | None     # 3x3 intrinsics matching ``depth`` (None if none were given)


def has_tensorrt_gpu() -> bool:
    """Whether TensorRT imports and a CUDA GPU is visible."""
    try:
        import tensorrt  # noqa: F401
        import torch
        return torch.cuda.is_available()
    except Exception:  # missing module, broken CUDA install
        return False


def _onnx_for(model: Path, digest: str | None = None) -> Path | None:
    """The ONNX exported from exactly this checkpoint (sha256 ``digest``), if it lies beside it."""
    onnx = model.with_suffix(".onnx")
    if not onnx.is_file():
        return None
    try:
        exported_from = onnx_file_metadata(onnx).get("checkpoint_sha256")
    except Exception:  # unreadable ONNX or no metadata: do not use it
        return None
    if exported_from != (digest or file_sha256(model)):
        log.warning("ignoring %s: it was not exported from %s (re-run spidepth export)", onnx.name, model.name)
        return None
    return onnx


def _cached_onnx(checkpoint: Path, digest: str) -> Path:
    """An ONNX export of ``checkpoint`` (sha256 ``digest``) in the cache, exported once, with a message."""
    from ..cache import cache_dir
    from ..export import export_onnx
    path = cache_dir("onnx") / f"{checkpoint.stem}-{digest[:16]}.onnx"
    if not path.is_file():
        log.info("exporting %s to ONNX for onnxruntime: %s", checkpoint, path)
        export_onnx(checkpoint, path)
    return path


def choose_backend(model: Path, backend: str) -> tuple[str, str]:
    """(backend, why) for ``auto``; explicit choices are checked for fitting the file."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {BACKENDS}")
    kind = model.suffix
    if backend != "auto":
        return backend, "asked for"
    if kind == ".engine":
        return "tensorrt", "the model is a TensorRT engine"
    if has_tensorrt_gpu() and kind == ".onnx":
        return "tensorrt", "tensorrt imports and a CUDA GPU is present"
    if kind == ".onnx":
        return "onnxruntime", "ONNX model and no TensorRT+GPU"
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return "torch", "checkpoint, and onnxruntime is not installed"
    return "onnxruntime", "checkpoint exported to ONNX (beside it or cached), faster than PyTorch on a CPU"


def validate_model_file(model: str | Path, backend: str = "auto") -> None:
    """Cheap checks before a (slow) load: the file exists, has spidepth metadata, its config matches its
    weights (checkpoints), and it fits the backend."""
    model = Path(model)
    if not model.is_file():
        raise FileNotFoundError(f"model file not found: {model}")
    if model.suffix in (".pt", ".pth"):
        from ..checkpoint import check_weights, read_checkpoint
        ckpt = read_checkpoint(model)
        if "state_dict" not in ckpt or "config" not in ckpt:
            raise ValueError(f"{model} has no model weights/config")
        check_weights(ckpt, model)
    elif model.suffix == ".onnx":
        import onnx
        try:
            proto = onnx.load(str(model))
            onnx.checker.check_model(proto)
        except Exception as exc:
            raise ValueError(f"{model} is not a valid ONNX model: {exc}") from exc
        onnx_file_metadata(proto, str(model))
    elif model.suffix == ".engine":
        from .tensorrt import read_sidecar
        read_sidecar(model)
    else:
        raise ValueError(f"unsupported model file {model.name}: use .pt, .onnx or .engine")
    name, _ = choose_backend(model, backend)
    if name == "torch" and model.suffix not in (".pt", ".pth"):
        raise ValueError(f"the torch backend needs a checkpoint (.pt), got {model.name}")


def open_backend(model: Path, backend: str, device: str | None = None):
    if backend == "torch":
        if model.suffix not in (".pt", ".pth"):
            raise ValueError(f"the torch backend needs a checkpoint (.pt), got {model}")
        return TorchBackend(model, device)
    if backend == "onnxruntime":
        if model.suffix == ".onnx":
            return OnnxRuntimeBackend(model, device)
        digest = file_sha256(model)  # hashed once: a large checkpoint takes a while
        onnx = _onnx_for(model, digest) or _cached_onnx(model, digest)
        return OnnxRuntimeBackend(onnx, device)
    from .tensorrt import TensorRTBackend
    return TensorRTBackend(model, device)


class Predictor:
    """Owns pre/post-processing around one backend.

    ``model``: checkpoint (.pt), ONNX (.onnx) or TensorRT engine (.engine); default: the bundled model.
    """

    def __init__(self, model: str | Path | None = None, backend: str = "auto", device: str | None = None) -> None:
        self.model_path = Path(model) if model else default_model_path()
        if not self.model_path.is_file():
            raise FileNotFoundError(f"model file not found: {self.model_path}")
        name, why = choose_backend(self.model_path, backend)
        self.backend = open_backend(self.model_path, name, device)
        log.info("depth backend: %s (%s)", self.backend.name, why)
        self.backend_reason = why
        meta = self.backend.metadata
        self.input_size = tuple(int(v) for v in meta["input_size"])
        self.depth_range = tuple(float(v) for v in meta["depth_range"])

    def preprocess(self, image: np.ndarray, bgr: bool = False) -> np.ndarray:
        """HxWx3 uint8 -> [1,3,h,w] float32 RGB [0,1] at the model's size."""
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            got = getattr(image, "shape", None), getattr(image, "dtype", type(image).__name__)
            raise ValueError(f"expected an HxWx3 uint8 image, got shape {got[0]} dtype {got[1]}")
        if image.shape[0] < 2 or image.shape[1] < 2:
            raise ValueError(f"image too small: {image.shape[1]}x{image.shape[0]}")
        h, w = self.input_size
        if image.shape[:2] != (h, w):
            image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
        if bgr:
            image = image[..., ::-1]
        x = image.transpose(2, 0, 1)[None].astype(np.float32)
        x *= 1.0 / 255.0
        return x

    def predict(self, image: np.ndarray, K: np.ndarray | None = None, bgr: bool = False,
                output_size: str = "input") -> DepthResult:
        """Depth for one image. ``output_size``: 'input' (image size) or 'model' (network size)."""
        depth = self.backend.run(self.preprocess(image, bgr))[0, 0]
        src = image.shape[:2]
        if output_size == "input" and depth.shape != src:
            depth = cv2.resize(depth, (src[1], src[0]), interpolation=cv2.INTER_LINEAR)
        elif output_size not in ("input", "model"):
            raise ValueError(f"output_size must be 'input' or 'model', got {output_size!r}")
        K_out = None if K is None else resize_intrinsics(np.asarray(K, np.float64), src, depth.shape)
        return DepthResult(np.ascontiguousarray(depth, dtype=np.float32), K_out)
