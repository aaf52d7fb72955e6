"""Opens the runtime a ``Plan`` names, making its file first where that is needed (export on first use)."""
from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from pathlib import Path

from .backends import Backend, OnnxRuntimeBackend, TorchBackend
from .resolver import Plan

log = logging.getLogger("spidepth.inference")


def prepare(plan: Plan) -> Path:
    """The file the runtime opens, made now if missing: a checkpoint's ONNX export, then for TensorRT the
    engine built from the ONNX graph. Both are cached, so only the first use pays."""
    if plan.backend == "tensorrt":
        from .tensorrt import import_tensorrt
        import_tensorrt()  # fail before a slow export when TensorRT is missing
    onnx = _export(plan.model, plan.onnx) if plan.export else plan.onnx
    if plan.backend == "tensorrt" and onnx is not None:
        from .tensorrt import engine_for_onnx
        return engine_for_onnx(onnx)
    return onnx or plan.model


def _export(checkpoint: Path, onnx: Path | None) -> Path:
    """Export ``checkpoint`` into the cache at ``onnx``; where the cache cannot be written (read-only, not a
    folder), into a folder of this user's under the system's temp folder instead, with a warning."""
    from ..errors import require_torch
    require_torch(f"running {checkpoint.name} (a checkpoint without its ONNX beside it)")
    from ..export import export_onnx
    from ..files import remove_stale_temps
    assert onnx is not None
    if onnx.parent.is_dir():
        with contextlib.suppress(OSError):
            remove_stale_temps(onnx.parent)  # left by an export that was killed
    log.info("exporting %s to ONNX: %s", checkpoint, onnx)
    try:
        return export_onnx(checkpoint, onnx)
    except OSError as exc:
        fallback = Path(tempfile.gettempdir()) / f"spidepth-{os.getuid()}" / "onnx" / onnx.name
        log.warning("%s; using %s instead (set SPIDEPTH_CACHE to a writable folder)", exc, fallback.parent)
        if fallback.is_file():
            return fallback
        return export_onnx(checkpoint, fallback)


def open_backend(plan: Plan, device: str | None = None) -> Backend:
    """The backend for ``plan`` (see ``resolve``), with its file prepared."""
    if plan.backend == "tensorrt":
        from .tensorrt import TensorRTBackend
        return TensorRTBackend(prepare(plan), device)
    if plan.backend == "onnxruntime":
        return OnnxRuntimeBackend(prepare(plan), device)
    return TorchBackend(plan.model, device)
