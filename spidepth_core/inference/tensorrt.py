"""TensorRT engines: build from ONNX (10.x and 11.x), cache by key, run with execute_async_v3.

Nothing here imports ``tensorrt`` at module import time; it is an optional extra
(``pip install .[tensorrt]``: TensorRT and NVIDIA's cuda-python). Device memory comes from the CUDA runtime
(cuda_runtime.py), so an engine runs without PyTorch.
"""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Callable

import numpy as np

from ..cache import cache_dir
from ..files import atomic_write_bytes, file_sha256
from .backends import onnx_file_metadata
from .cuda_runtime import DeviceBuffers, device_index, gpu_identity

log = logging.getLogger("spidepth.tensorrt")

DEFAULT_WORKSPACE = 2 << 30


def import_tensorrt():
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise RuntimeError("the TensorRT backend needs `pip install .[tensorrt]` (tensorrt) and an NVIDIA GPU") from exc
    return trt


def engine_key(onnx_sha256: str, trt_version: str, gpu_name: str, compute_capability: tuple[int, int],
               precision: str, input_shape: tuple[int, ...]) -> dict:
    """Everything an engine depends on; any change means a different engine."""
    if precision not in ("fp32", "fp16"):
        raise ValueError(f"precision must be fp32 or fp16, got {precision!r}")
    return {"onnx_sha256": onnx_sha256, "tensorrt": trt_version, "gpu": gpu_name,
            "compute_capability": list(compute_capability), "precision": precision,
            "input_shape": list(input_shape)}


def key_digest(key: dict) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def engine_path(onnx: Path, key: dict, root: Path | None = None) -> Path:
    return (root or cache_dir("engines")) / f"{onnx.stem}.{key_digest(key)}.engine"


def read_sidecar(engine: Path) -> dict:
    side = engine.with_suffix(".json")
    if not side.is_file():
        raise ValueError(f"{engine} has no {side.name}: build engines with spidepth (export --engine)")
    return json.loads(side.read_text())


def check_engine_key(engine: Path, current: dict) -> dict:
    """The sidecar of ``engine``; raises if it was built for another TensorRT, GPU or shape."""
    side = read_sidecar(engine)
    stored = side.get("key", {})
    stale = {k: (stored.get(k), v) for k, v in current.items() if k != "onnx_sha256" and stored.get(k) != v}
    if stale:
        details = ", ".join(f"{k}: built for {a}, now {b}" for k, (a, b) in stale.items())
        raise ValueError(f"stale TensorRT engine {engine} ({details}); rebuild it from the ONNX file")
    return side


def _current_platform(trt, index: int = 0) -> tuple[str, str, tuple[int, int]]:
    name, capability = gpu_identity(index)
    return trt.__version__, name, capability


def build_engine(onnx: str | Path, out: str | Path, fp16: bool, workspace: int = DEFAULT_WORKSPACE) -> bytes:
    """Parse ONNX and build a serialized engine. fp16 comes from an fp16 ONNX (strongly typed network);
    on TensorRT 10 with an fp32 ONNX, the FP16 builder flag is used instead."""
    trt = import_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    strongly_typed = hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED")
    if strongly_typed:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx).read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {onnx}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace)
    if fp16 and not strongly_typed and hasattr(trt.BuilderFlag, "FP16"):
        config.set_flag(trt.BuilderFlag.FP16)
    log.info("building TensorRT engine from %s (%s); this can take minutes...", onnx, "fp16" if fp16 else "fp32")
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT failed to build an engine from {onnx}")
    data = bytes(serialized)
    atomic_write_bytes(data, out)
    return data


def cached_engine(path: Path, key: dict, metadata: dict, build: Callable[[Path], object]) -> Path:
    """``path`` if it and its sidecar hold an engine for ``key``; else ``build(path)`` after writing the sidecar.

    The sidecar goes first (both writes are atomic), so a build that crashes or is killed leaves no engine
    that counts as a hit, and an engine whose sidecar is missing or names another key is rebuilt.
    """
    side = path.with_suffix(".json")
    if path.is_file():
        try:
            hit = read_sidecar(path).get("key") == key
        except (ValueError, AttributeError):  # no sidecar, or not the JSON object spidepth writes
            hit = False
        if hit:
            log.info("TensorRT engine cache hit: %s", path)
            return path
        log.warning("rebuilding %s: its %s is missing or names another build", path, side.name)
    path.unlink(missing_ok=True)
    atomic_write_bytes(json.dumps({"key": key, "metadata": metadata}, indent=2).encode(), side)
    build(path)
    return path


def engine_for_onnx(onnx: str | Path, root: Path | None = None, workspace: int = DEFAULT_WORKSPACE) -> Path:
    """The cached engine for this ONNX on this GPU; built (with a message) only on a cache miss."""
    trt = import_tensorrt()
    onnx = Path(onnx)
    meta = onnx_file_metadata(onnx)
    version, gpu, cc = _current_platform(trt)
    shape = (1, 3, *meta["input_size"])
    key = engine_key(file_sha256(onnx), version, gpu, cc, meta.get("precision", "fp32"), shape)
    fp16 = key["precision"] == "fp16"
    return cached_engine(engine_path(onnx, key, root), key, meta,
                         lambda out: build_engine(onnx, out, fp16, workspace))


class TensorRTBackend:
    """Runs a serialized engine (checked against this TensorRT and GPU); device buffers allocated once, tensors
    bound by name. ``factory.open_backend`` builds the engine from ONNX first where needed."""

    name = "tensorrt"

    def __init__(self, model: str | Path, device: str | None = None) -> None:
        trt = import_tensorrt()
        model = Path(model)
        if model.suffix != ".engine":
            raise ValueError(f"TensorRTBackend runs .engine files, got {model.name}; resolve() plans the rest")
        index = device_index(device if device and device.startswith("cuda") else None)
        version, gpu, cc = _current_platform(trt, index)
        side = read_sidecar(model)
        check_engine_key(model, engine_key(side["key"]["onnx_sha256"], version, gpu, cc,
                                           side["key"]["precision"], tuple(side["key"]["input_shape"])))
        self.metadata = side["metadata"]
        logger = trt.Logger(trt.Logger.WARNING)
        self.engine = trt.Runtime(logger).deserialize_cuda_engine(model.read_bytes())
        if self.engine is None:
            raise RuntimeError(f"could not deserialize TensorRT engine {model}")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        if set(names) not in ({"image", "depth"}, {"image", "depth", "uncertainty"}):
            raise ValueError(f"engine tensors {sorted(names)} are not image, depth (and uncertainty)")
        self.buffers = DeviceBuffers({n: (tuple(self.engine.get_tensor_shape(n)),
                                          trt.nptype(self.engine.get_tensor_dtype(n))) for n in names}, index)
        for name, pointer in self.buffers.pointers.items():
            self.context.set_tensor_address(name, pointer)

    def _execute(self, x: np.ndarray) -> None:
        self.buffers.upload("image", x)
        if not self.context.execute_async_v3(self.buffers.stream_handle):
            raise RuntimeError("TensorRT execution failed")

    def run(self, x: np.ndarray) -> np.ndarray:
        self._execute(x)
        return self.buffers.download("depth").astype(np.float32, copy=False)

    def run_with_uncertainty(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        depth = self.run(x)
        has_spread = "uncertainty" in self.buffers.pointers
        spread = self.buffers.download("uncertainty").astype(np.float32, copy=False) if has_spread else None
        return depth, spread
