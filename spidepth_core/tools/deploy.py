"""``spidepth deploy``: a run's best checkpoint -> weights-only checkpoint + ONNX (+ TensorRT engine)."""
from __future__ import annotations

from pathlib import Path

from ..checkpoint import load_model, read_checkpoint, save_model
from ..export import export_onnx
from ..inference.parity import check_parity
from ..inference.resolver import has_tensorrt_gpu


def deploy(run: Path, fp16: bool = False) -> dict:
    """Writes RUN/deploy/model.pt and model.onnx (parity-checked), builds the engine where TensorRT and a
    GPU exist, and prints the line that swaps the model into a running node. Returns what it wrote."""
    ckpt = next((run / n for n in ("best.pt", "last.pt") if (run / n).is_file()), None)
    if ckpt is None:
        raise FileNotFoundError(f"no best.pt or last.pt in {run}")
    out = run / "deploy"
    out.mkdir(exist_ok=True)
    model = out / "model.pt"
    stored = read_checkpoint(ckpt)
    save_model(model, load_model(ckpt, ckpt=stored), stored.get("model_name", "custom"))  # no train state
    onnx = export_onnx(model, out / "model.onnx", fp16=fp16)
    diff = check_parity(model, onnx)
    print(f"deploy: {ckpt.name} -> {model} and {onnx} (onnxruntime max rel diff {diff['max_rel']:.1e})")
    engine = None
    if has_tensorrt_gpu():
        from ..inference.tensorrt import engine_for_onnx
        engine = engine_for_onnx(onnx)
        print(f"deploy: TensorRT engine {engine}")
    else:
        print("deploy: no TensorRT + GPU here; the node builds the engine on first start where they exist")
    print(f"deploy: live swap into a running node with\n  ros2 param set /depth_node model_path {onnx.resolve()}")
    return {"source": str(ckpt), "model": str(model), "onnx": str(onnx.resolve()), "max_rel": diff["max_rel"],
            "max_abs": diff["max_abs"], "engine": str(engine) if engine else None}
