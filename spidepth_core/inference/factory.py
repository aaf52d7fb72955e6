"""Opens the runtime a ``Plan`` names, making its file first where that is needed (export on first use)."""
from __future__ import annotations

import logging
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
    if plan.export:
        from ..export import export_onnx
        assert plan.onnx is not None
        log.info("exporting %s to ONNX for %s: %s", plan.model, plan.backend, plan.onnx)
        export_onnx(plan.model, plan.onnx)
    if plan.backend == "tensorrt" and plan.onnx is not None:
        from .tensorrt import engine_for_onnx
        return engine_for_onnx(plan.onnx)
    return plan.onnx or plan.model


def open_backend(plan: Plan, device: str | None = None) -> Backend:
    """The backend for ``plan`` (see ``resolve``), with its file prepared."""
    if plan.backend == "tensorrt":
        from .tensorrt import TensorRTBackend
        return TensorRTBackend(prepare(plan), device)
    if plan.backend == "onnxruntime":
        return OnnxRuntimeBackend(prepare(plan), device)
    return TorchBackend(plan.model, device)
