"""One cache root for files derived on first use: ONNX exports, TensorRT engines, decoded bags, the demo's
sample recording. ``$SPIDEPTH_CACHE``, else ``~/.cache/spidepth``."""
from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "SPIDEPTH_CACHE"


def cache_dir(*parts: str) -> Path:
    """The cache root, or a folder inside it (e.g. ``cache_dir("onnx")``); not created here."""
    root = os.environ.get(CACHE_ENV) or str(Path.home() / ".cache" / "spidepth")
    return Path(root, *parts)
