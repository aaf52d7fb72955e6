"""ONNX export of a DepthNet checkpoint with its metadata (the parity check is ``inference.parity``)."""
from __future__ import annotations

import json
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from .checkpoint import read_checkpoint
from .files import atomic_write_bytes, file_sha256
from .inference.backends import EXPORT_VERSION
from .models import DepthConfig, DepthNet

OPSET = 17
# Ops the exported graph may contain; all are supported by TensorRT's ONNX parser (10.x and 11.x).
TENSORRT_OPS = {"Add", "Cast", "Concat", "Constant", "Conv", "CumSum", "Div", "Erf", "Gather", "Gemm",
                "HardSigmoid", "HardSwish", "Identity", "LayerNormalization", "LeakyRelu", "MatMul", "Mul", "Pad",
                "ReduceMean", "ReduceSum", "Relu", "Reshape", "Resize", "Shape", "Sigmoid", "Slice", "Softmax",
                "Split", "Sqrt", "Squeeze", "Sub", "Transpose", "Unsqueeze", "Where", "Pow", "Clip",
                "ConstantOfShape", "Expand", "Equal", "Range", "Flatten", "ReduceMax", "Max", "Min",
                "BatchNormalization", "Mod", "Neg", "Tanh", "GlobalAveragePool", "AveragePool", "MaxPool", "Einsum",
                "Ceil"}


OUTPUTS = ("depth", "uncertainty")


class _ExportWrapper(nn.Module):
    """image [1,3,H,W] float32 in [0,1] -> depth and uncertainty, each [1,1,H,W] float32 metres (fp16 inside
    if asked)."""

    def __init__(self, model: DepthNet, fp16: bool = False) -> None:
        super().__init__()
        self.model = model.half() if fp16 else model
        self.fp16 = fp16

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.fp16:
            depth, spread = self.model.depth_and_uncertainty(image.half())
            return depth.float(), spread.float()
        return self.model.depth_and_uncertainty(image)


def export_metadata(ckpt: dict, height: int, width: int, fp16: bool, checkpoint_sha256: str = "") -> dict:
    return {"export_version": EXPORT_VERSION, "checkpoint_sha256": checkpoint_sha256,
            "model_name": ckpt.get("model_name", "custom"), "config": ckpt["config"],
            "input_size": [height, width], "trained_size": ckpt["input_size"],
            "depth_range": ckpt["depth_range"], "input_format": ckpt.get("input_format"),
            "intrinsics_convention": ckpt.get("intrinsics_convention"), "precision": "fp16" if fp16 else "fp32",
            "metric": bool(ckpt.get("metric", False)),
            "inputs": {"image": [1, 3, height, width]}, "outputs": {name: [1, 1, height, width] for name in OUTPUTS}}


def export_onnx(checkpoint: str | Path, out: str | Path, height: int | None = None, width: int | None = None,
                fp16: bool = False, half_weights: bool = False) -> Path:
    """Static-shape ONNX (opset 17): input ``image``, outputs ``depth`` and ``uncertainty``, and the
    spidepth metadata in metadata_props. ``half_weights``: weights stored in fp16 (half the file), computed
    in fp32 (ONNX Runtime casts them once, when the session opens)."""
    import onnx
    ckpt = read_checkpoint(checkpoint)
    cfg = DepthConfig.from_dict(ckpt["config"])
    height, width = height or cfg.height, width or cfg.width
    model = DepthNet(cfg)
    model.load_state_dict(ckpt["state_dict"])
    model.eval().head.check_size(*_s_size(model, height, width))
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)  # the fused encoder op has no ONNX form
    try:
        with torch.no_grad(), tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
            # the exporter's notes on a size check that is constant here and on slices it cannot fold
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", message="Constant folding")
            graph = Path(folder) / "graph.onnx"
            torch.onnx.export(_ExportWrapper(model, fp16), (torch.rand(1, 3, height, width),), str(graph),
                              dynamo=False, opset_version=OPSET, input_names=["image"], output_names=list(OUTPUTS),
                              do_constant_folding=not half_weights)  # unfolded, batch norm keeps its fp16 values
            proto = onnx.load(str(graph))
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    for output in proto.graph.output:  # static output shapes (the final Resize's size is computed)
        dims = output.type.tensor_type.shape.dim
        del dims[:]
        for value in (1, 1, height, width):
            dims.add().dim_value = value
    if half_weights and not fp16:
        store_weights_in_half(proto)
    meta = proto.metadata_props.add()
    meta.key, meta.value = "spidepth", json.dumps(export_metadata(ckpt, height, width, fp16, file_sha256(checkpoint)))
    onnx.checker.check_model(proto)
    atomic_write_bytes(proto.SerializeToString(), out)
    return Path(out)


def store_weights_in_half(proto: Any, min_size: int = 1024) -> int:
    """Each float32 initializer of at least ``min_size`` values becomes float16, read through a Cast back to
    float32 under its old name; returns how many. A checkpoint stored in half precision loses nothing."""
    from onnx import TensorProto, helper, numpy_helper
    casts = []
    for init in proto.graph.initializer:
        if init.data_type != TensorProto.FLOAT or np.prod(init.dims) < min_size:
            continue
        name = init.name
        half = numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), f"{name}__half")
        init.CopyFrom(half)
        casts.append(helper.make_node("Cast", [half.name], [name], to=TensorProto.FLOAT, name=f"{name}__cast"))
    nodes = list(proto.graph.node)
    del proto.graph.node[:]
    proto.graph.node.extend(casts + nodes)
    return len(casts)


def _s_size(model: DepthNet, height: int, width: int) -> tuple[int, int]:
    stride = model.unet.stride or 1
    return height // stride, width // stride


def graph_ops(path: str | Path) -> set[str]:
    import onnx
    return {node.op_type for node in onnx.load(str(path)).graph.node}
