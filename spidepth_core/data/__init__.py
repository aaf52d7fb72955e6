"""Data sources. Every source yields the same sample (see ``sample.py``)."""
from .folder import FolderSequence, find_sequences, video_to_folder
from .intrinsics import load_intrinsics
from .sample import Sequence, TripletDataset

__all__ = ["FolderSequence", "Sequence", "TripletDataset", "find_sequences", "load_intrinsics",
           "video_to_folder"]
