"""The synthetic street world: exact depth and poses for training, tests and benchmarks."""
from .camera import Camera
from .sequences import Scene, generate, render_sequence, write_sequence
from .world import StreetWorld, camera_path, render

__all__ = ["Camera", "Scene", "StreetWorld", "camera_path", "generate", "render", "render_sequence",
           "write_sequence"]
