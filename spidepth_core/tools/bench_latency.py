"""``spidepth benchmark latency``: per-backend latency, FPS, memory, and the Predictor's overhead."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..inference import Predictor


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 1e6


def _times(fn, warmup: int, runs: int) -> np.ndarray:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return np.array(out)


def measure(model: Path, backend: str, image: np.ndarray, warmup: int, runs: int) -> dict:
    before = _rss_mb()
    pred = Predictor(model, backend)
    x = pred.preprocess(image)
    model_ms = _times(lambda: pred.backend.run(x), warmup, runs)
    both_ms = _times(lambda: pred.backend.run_with_uncertainty(x), warmup, runs)
    full_ms = _times(lambda: pred.predict(image), warmup, runs)
    return {"backend": pred.backend.name, "median_ms": float(np.median(model_ms)),
            "with_uncertainty_ms": float(np.median(both_ms)),
            "p90_ms": float(np.percentile(model_ms, 90)), "fps": float(1000 / np.median(model_ms)),
            "predictor_median_ms": float(np.median(full_ms)),
            "overhead_pct": float(100 * (np.median(full_ms) - np.median(model_ms)) / np.median(model_ms)),
            "rss_growth_mb": _rss_mb() - before}


def format_rows(rows: list[dict], size: tuple[int, int]) -> str:
    base = next((r for r in rows if r["backend"] == "torch"), None)
    lines = [f"input {size[0]}x{size[1]}",
             "| backend | median ms | p90 ms | FPS | speed-up vs torch | with uncertainty ms | Predictor ms | "
             "overhead % | RSS growth MB |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ratio = base["median_ms"] / r["median_ms"] if base else float("nan")
        lines.append(f"| {r['backend']} | {r['median_ms']:.1f} | {r['p90_ms']:.1f} | {r['fps']:.1f} | {ratio:.2f}x | "
                     f"{r['with_uncertainty_ms']:.1f} | {r['predictor_median_ms']:.1f} | {r['overhead_pct']:.1f} | "
                     f"{r['rss_growth_mb']:.0f} |")
    return "\n".join(lines)


def run_benchmark(model: Path, backends: list[str], size: tuple[int, int] | None, runs: int, warmup: int,
                  out: Path) -> list[dict]:
    """The same weights on every backend at ``size`` (default: the model's), printed as a table and saved
    as OUT/latency.json."""
    import json

    from ..checkpoint import load_model, read_checkpoint, save_model
    from ..export import export_onnx
    from ..files import atomic_write_bytes
    meta = read_checkpoint(model)
    size = size or tuple(meta["input_size"])
    out.mkdir(parents=True, exist_ok=True)
    net = load_model(model, ckpt=meta)  # the benchmark size becomes the model's input size, so every backend runs it
    net.config.height, net.config.width = size
    ckpt = out / f"model_{size[0]}x{size[1]}.pt"  # ONNX is looked up beside the checkpoint
    save_model(ckpt, net, meta.get("model_name", "custom"))
    export_onnx(ckpt, ckpt.with_suffix(".onnx"), *size)
    image = np.random.default_rng(0).integers(0, 255, (*size, 3), dtype=np.uint8)
    rows = [measure(ckpt, b, image, warmup, runs) for b in backends]
    print(format_rows(rows, size))
    atomic_write_bytes(json.dumps({"size": size, "rows": rows}, indent=2).encode(), out / "latency.json")
    return rows
