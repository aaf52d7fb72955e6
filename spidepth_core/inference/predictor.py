"""Predictor: uint8 camera image in, depth in metres out, on the fastest available backend."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..camera_space import canonical_fy, focal_factor
from ..imaging import resize_area, resize_linear
from ..pinhole import resize_intrinsics
from ..shipped import model_file
from .factory import open_backend
from .resolver import resolve

log = logging.getLogger("spidepth.inference")

NO_UNCERTAINTY = "has no uncertainty output; re-export it with spidepth export"


@dataclass
class DepthResult:
    depth: np.ndarray                     # HxW float32 metres
    K: np.ndarray | None                  # 3x3 intrinsics matching ``depth`` (None if none were given)
    uncertainty: np.ndarray | None = None  # HxW float32 metres (std of the depth-bin mixture), if asked for


class Predictor:
    """Owns pre/post-processing around one backend.

    ``model``: checkpoint (.pt), ONNX (.onnx) or TensorRT engine (.engine); default (or 'bundled'): the
    bundled model.
    ``backend``: auto, tensorrt, onnxruntime or torch; ``resolve`` decides what runs where.
    """

    def __init__(self, model: str | Path | None = None, backend: str = "auto", device: str | None = None) -> None:
        self.model_path = model_file(model)
        self.plan = resolve(self.model_path, backend, device)
        self.backend = open_backend(self.plan, device)
        log.info("depth backend: %s (%s)", self.backend.name, self.plan.reason)
        self.backend_reason = self.plan.reason
        meta = self.backend.metadata
        self.input_size = tuple(int(v) for v in meta["input_size"])
        self.depth_range = tuple(float(v) for v in meta["depth_range"])
        self.canonical_fy = canonical_fy(meta)

    def warm_up(self) -> None:
        """One inference on a grey frame: a file that loads but cannot run (a renamed tensor, a graph that
        does not fit its metadata) fails here with the runtime's reason, and the first real frame does not
        pay the runtime's start-up."""
        h, w = self.input_size
        depth = self.backend.run(np.full((1, 3, h, w), 0.5, np.float32))
        if depth.shape != (1, 1, h, w):
            raise ValueError(f"{self.model_path}: the depth output has shape {list(depth.shape)}, "
                             f"expected {[1, 1, h, w]}")

    def preprocess(self, image: np.ndarray, bgr: bool = False) -> np.ndarray:
        """HxWx3 uint8 -> [1,3,h,w] float32 RGB [0,1] at the model's size."""
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            got = getattr(image, "shape", None), getattr(image, "dtype", type(image).__name__)
            raise ValueError(f"expected an HxWx3 uint8 image, got shape {got[0]} dtype {got[1]}")
        if image.shape[0] < 2 or image.shape[1] < 2:
            raise ValueError(f"image too small: {image.shape[1]}x{image.shape[0]}")
        h, w = self.input_size
        image = resize_area(image, (h, w))
        if bgr:
            image = image[..., ::-1]
        x = image.transpose(2, 0, 1)[None].astype(np.float32)
        x *= 1.0 / 255.0
        return x

    def predict(self, image: np.ndarray, K: np.ndarray | None = None, bgr: bool = False,
                output_size: str = "input", uncertainty: bool = False) -> DepthResult:
        """Depth for one image. ``K``: the camera's intrinsics in the image's pixels; the depth is rescaled
        from the model's canonical camera to this one (see camera_space); without K the image is taken to be
        from the canonical camera. ``output_size``: 'input' (image size) or 'model' (network size).
        ``uncertainty``: also the per-pixel uncertainty (None where the model file has no such output)."""
        if output_size not in ("input", "model"):
            raise ValueError(f"output_size must be 'input' or 'model', got {output_size!r}")
        x = self.preprocess(image, bgr)
        depth, spread = self.backend.run_with_uncertainty(x) if uncertainty else (self.backend.run(x), None)
        K = None if K is None else np.asarray(K, np.float64)
        if K is not None:
            factor = np.float32(focal_factor(K, image.shape[0], self.canonical_fy))
            depth = depth * factor
            spread = None if spread is None else spread * factor
        src = image.shape[:2] if output_size == "input" else depth.shape[2:]
        depth = resize_linear(depth[0, 0], src)
        K_out = None if K is None else resize_intrinsics(K, image.shape[:2], depth.shape)
        return DepthResult(depth, K_out, None if spread is None else resize_linear(spread[0, 0], src))

