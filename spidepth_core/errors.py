"""Error texts for logs, diagnostics and one-line CLI errors."""
from __future__ import annotations


def first_line(exc: BaseException | str, limit: int = 200) -> str:
    """The first line of an error (its type name when it has no text), cut to ``limit`` characters."""
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return line if len(line) <= limit else line[:limit - 3] + "..."


TRAINING_INSTALL = "pip install 'spidepth_ros[train]'"
TRAINING_MODULES = ("torch", "torchvision", "timm", "onnx", "scipy", "tensorboard", "cv2")


def require_torch(purpose: str) -> None:
    """Raise one clear RuntimeError when PyTorch is missing (the runtime install has none)."""
    try:
        import torch  # noqa: F401
    except ImportError:
        raise RuntimeError(f"{purpose} needs PyTorch, which this install does not have: {TRAINING_INSTALL}, or "
                           "make the model's ONNX where PyTorch is (spidepth export / spidepth deploy) and use "
                           "the .onnx") from None
