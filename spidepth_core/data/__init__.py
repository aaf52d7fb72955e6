"""Data sources. Every source yields the same sample (see ``sample.py``).

``TripletDataset`` and ``Sequence`` (training, PyTorch) load on first use, so that reading images and
folders for inference needs no PyTorch.
"""
from typing import Any

from .folder import FolderSequence, find_sequences, video_to_folder
from .intrinsics import load_intrinsics

__all__ = ["FolderSequence", "Sequence", "TripletDataset", "find_sequences", "load_intrinsics",
           "video_to_folder"]


def __getattr__(name: str) -> Any:
    if name in ("Sequence", "TripletDataset"):
        from . import sample
        return getattr(sample, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
