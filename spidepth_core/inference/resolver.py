"""Which file runs on which runtime: the one place that decides it.

``resolve(model, backend, device)`` looks at the model file, the backend asked for and the device, and
returns a ``Plan``: the runtime, the ONNX graph it runs (if any), whether that graph must first be exported,
and why. It reads files but writes nothing; ``factory.open_backend(plan)`` does the work.

Rules:
- a checkpoint (.pt/.pth) runs on every runtime. onnxruntime and TensorRT run its ONNX export: the
  ``.onnx`` beside it when its metadata says it was exported from exactly this checkpoint (sha256),
  otherwise an export in the cache, made on first use;
- an ONNX file runs on onnxruntime or TensorRT (which builds and caches an engine from it);
- a TensorRT engine (.engine + its .json sidecar) runs only on TensorRT;
- ``auto`` picks TensorRT where it imports and a CUDA GPU is visible (unless ``device`` is cpu), else
  onnxruntime where it is installed, else PyTorch for checkpoints.
"""
from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import first_line, require_torch
from ..files import file_sha256
from .backends import EXPORT_VERSION, check_onnx_io, onnx_file_metadata, onnx_metadata, ort_session

log = logging.getLogger("spidepth.inference")

BACKENDS = ("auto", "tensorrt", "onnxruntime", "torch")
KINDS = {".pt": "checkpoint", ".pth": "checkpoint", ".onnx": "onnx", ".engine": "engine"}
RUNS = {"torch": {"checkpoint"}, "onnxruntime": {"checkpoint", "onnx"}, "tensorrt": {"checkpoint", "onnx", "engine"}}


@dataclass(frozen=True)
class Plan:
    model: Path          # the file asked for
    kind: str            # checkpoint | onnx | engine
    backend: str         # torch | onnxruntime | tensorrt
    onnx: Path | None    # the ONNX graph onnxruntime or TensorRT runs (None: torch, or a ready engine)
    export: bool         # ``onnx`` is still to be exported from the checkpoint (into the cache)
    reason: str


def has_tensorrt_gpu() -> bool:
    """Whether TensorRT imports and a CUDA GPU is visible."""
    try:
        import tensorrt  # noqa: F401

        from .cuda_runtime import gpu_count
        return gpu_count() > 0
    except Exception:  # missing module, broken CUDA install
        return False


def has_onnxruntime() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def model_kind(model: Path) -> str:
    kind = KINDS.get(model.suffix)
    if kind is None:
        raise ValueError(f"unsupported model file {model.name}: use .pt, .onnx or .engine")
    return kind


def exported_from(onnx: Path) -> str | None:
    """The sha256 of the checkpoint an ONNX file was exported from; None if unreadable or unrecorded."""
    try:
        return onnx_file_metadata(onnx).get("checkpoint_sha256") or None
    except Exception:  # unreadable ONNX or no spidepth metadata
        return None


def checkpoint_onnx(checkpoint: Path) -> tuple[Path, bool]:
    """(ONNX of this checkpoint, whether it must still be exported): the file beside it when it was
    exported from exactly this checkpoint, else a path in the cache named by the checkpoint's sha256."""
    from ..cache import cache_dir
    digest = file_sha256(checkpoint)
    beside = checkpoint.with_suffix(".onnx")
    if beside.is_file():
        if exported_from(beside) == digest:
            return beside, False
        log.warning("ignoring %s: it was not exported from %s (re-run spidepth export)", beside.name, checkpoint.name)
    cached = cache_dir("onnx") / f"{checkpoint.stem}-{digest[:16]}-v{EXPORT_VERSION}.onnx"
    return cached, not cached.is_file()


def _auto(kind: str, device: str | None) -> tuple[str, str]:
    if kind == "engine":
        return "tensorrt", "the model is a TensorRT engine"
    if device != "cpu" and has_tensorrt_gpu():
        return "tensorrt", "tensorrt imports and a CUDA GPU is present"
    if has_onnxruntime():
        how = "ONNX model" if kind == "onnx" else "checkpoint run as its ONNX export (faster than PyTorch)"
        return "onnxruntime", f"{how}; no TensorRT + GPU"
    if kind == "checkpoint":
        return "torch", "checkpoint, and onnxruntime is not installed"
    raise RuntimeError("an ONNX model needs onnxruntime (pip install onnxruntime) or TensorRT and a GPU")


def resolve(model: str | Path, backend: str = "auto", device: str | None = None) -> Plan:
    """The plan for running ``model`` on ``backend`` (auto, tensorrt, onnxruntime, torch) on ``device``."""
    model = Path(model)
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {BACKENDS}")
    kind = model_kind(model)
    if not model.is_file():
        raise FileNotFoundError(f"model file not found: {model}")
    name, why = _auto(kind, device) if backend == "auto" else (backend, "asked for")
    if kind not in RUNS[name]:
        runs = " or ".join(sorted(k for k, v in RUNS.items() if kind in v))
        raise ValueError(f"the {name} backend cannot run a {kind} ({model.name}); use {runs}")
    if name == "tensorrt" and device is not None and not device.startswith("cuda"):
        raise ValueError(f"the tensorrt backend runs on a CUDA GPU, not device {device!r}")
    if name == "torch" or kind == "engine":
        return Plan(model, kind, name, None, False, why)
    if kind == "onnx":
        return Plan(model, kind, name, model, False, why)
    onnx, export = checkpoint_onnx(model)
    return Plan(model, kind, name, onnx, export, why)


def _read_onnx(model: Path) -> tuple[dict[str, list], set[str], dict]:
    """An ONNX file's inputs (name: shape), output names and spidepth metadata from one read of it, checked
    as a graph: with the ``onnx`` package where installed (no session is made), else by ONNX Runtime opening
    it unoptimised."""
    onnx: Any = None
    with contextlib.suppress(ImportError):
        import onnx
    try:
        if onnx is None:
            session = ort_session(model, optimise=False)
        else:
            proto = onnx.load(str(model))
            onnx.checker.check_model(proto)
    except Exception as exc:
        raise ValueError(f"{model} is not a valid ONNX model: {first_line(exc)}") from exc
    if onnx is None:
        return ({i.name: list(i.shape) for i in session.get_inputs()}, {o.name for o in session.get_outputs()},
                onnx_metadata(session.get_modelmeta().custom_metadata_map, str(model)))
    initialisers = {t.name for t in proto.graph.initializer}
    inputs = {i.name: [d.dim_value if d.HasField("dim_value") else d.dim_param for d in i.type.tensor_type.shape.dim]
              for i in proto.graph.input if i.name not in initialisers}
    return inputs, {o.name for o in proto.graph.output}, onnx_file_metadata(proto, str(model))


def validate_model_file(model: str | Path, backend: str = "auto", device: str | None = None) -> Plan:
    """Cheap checks before a slow load: the file's contents and metadata, a checkpoint's config against its
    weights, and that the backend can run it. Returns the plan that a load would follow."""
    model = Path(model)
    plan = resolve(model, backend, device)
    if plan.kind == "checkpoint":
        require_torch(f"reading the checkpoint {model.name}")
        from ..checkpoint import check_weights, read_checkpoint
        ckpt = read_checkpoint(model)
        if "state_dict" not in ckpt or "config" not in ckpt:
            raise ValueError(f"{model} has no model weights/config")
        check_weights(ckpt, model)
    elif plan.kind == "onnx":
        inputs, outputs, meta = _read_onnx(model)
        check_onnx_io(inputs, outputs, meta, str(model))
    else:
        from .tensorrt import read_sidecar
        read_sidecar(model)
    return plan
