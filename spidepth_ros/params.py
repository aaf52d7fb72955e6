"""The depth node's parameters: names, defaults, descriptions, ranges (one table)."""
from __future__ import annotations

import sys
from pathlib import Path

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

from spidepth_core.image_codec import MAX_PIXELS
from spidepth_core.inference.resolver import BACKENDS
from spidepth_core.scale import POLICIES

PACKAGE = "spidepth_ros"

# name: (default, description, range or choices, read_only)
PARAMETERS = {
    "model_path": ("", ".pt, .onnx or TensorRT .engine; empty or bundled: the bundled model", None, False),
    "backend": ("auto", " | ".join(BACKENDS), BACKENDS, True),
    "device": ("", "torch/onnxruntime device: '' (best available), cpu, cuda, cuda:N", None, True),
    "use_compressed": (False, "subscribe to image/compressed instead of image", None, True),
    "output_size": ("model", "depth resolution: model (network size) or input (camera size)", ("model", "input"),
                    False),
    "scale_policy": ("none", "none | fixed (x depth_scale) | camera_height (ground-plane fit)",
                     POLICIES, False),
    "depth_scale": (1.0, "multiplier for scale_policy fixed", (1e-4, 1e4), False),
    "camera_height": (1.5, "camera height above the ground in metres, for scale_policy camera_height",
                      (0.05, 20.0), False),
    "camera_pitch": (0.0, "degrees the camera looks down from level (+) or up (-), for scale_policy camera_height",
                     (-45.0, 45.0), False),
    "scale_smoothing": (0.9, "exponential smoothing of the camera_height scale per frame", (0.0, 0.999), False),
    "min_depth": (0.1, "depths below this (metres, after scaling) are published as NaN", (0.0, 1000.0), False),
    "max_depth": (80.0, "depths above this (metres, after scaling) are published as NaN", (0.01, 10000.0), False),
    "point_decimation": (1, "use every N-th pixel in each direction for the point cloud", (1, 16), False),
    "point_max_range": (40.0, "points farther than this (metres) are NaN in the cloud", (0.1, 10000.0), False),
    "point_max_relative_uncertainty": (0.0, "leave out points whose uncertainty / depth exceeds this (e.g. 0.3); "
                                       "0 keeps all", (0.0, 100.0), False),
    "point_color": (True, "add rgb to the point cloud (xyzrgb) or not (xyz)", None, False),
    "reliability": ("reliable", "publisher reliability: reliable | best_effort", ("reliable", "best_effort"), True),
    "camera_info_sync": ("latest", "latest: the newest camera_info; exact: the one stamped like the image "
                         "(within camera_info_tolerance); an image waits for it, unmatched ones are counted",
                         ("latest", "exact"), False),
    "camera_info_tolerance": (0.001, "seconds between image and camera_info stamps that still match (exact)",
                              (0.0, 1.0), False),
    "camera_info_timeout": (1.0, "seconds without camera_info before falling back to fx/fy/cx/cy",
                            (0.0, 3600.0), False),
    "fx": (0.0, "fallback focal length x (pixels of the input image); 0 = 0.58 x width", (0.0, 1e6), False),
    "fy": (0.0, "fallback focal length y; 0 = 1.92 x height (KITTI's normalised intrinsics)", (0.0, 1e6), False),
    "cx": (0.0, "fallback principal point x; 0 = width / 2", (0.0, 1e6), False),
    "cy": (0.0, "fallback principal point y; 0 = height / 2", (0.0, 1e6), False),
    "max_image_pixels": (MAX_PIXELS, "larger images are rejected (default 4096x3072); compressed ones before "
                         "decoding", (1, 400_000_000), True),
}


def descriptor(name: str) -> ParameterDescriptor:
    default, text, rng, read_only = PARAMETERS[name]
    desc = ParameterDescriptor(description=text, read_only=read_only)
    if isinstance(rng, tuple) and isinstance(rng[0], str):
        desc.additional_constraints = "one of: " + ", ".join(rng)
    elif rng is not None and isinstance(default, float):
        desc.floating_point_range = [FloatingPointRange(from_value=float(rng[0]), to_value=float(rng[1]))]
    elif rng is not None and isinstance(default, int) and not isinstance(default, bool):
        desc.integer_range = [IntegerRange(from_value=int(rng[0]), to_value=int(rng[1]), step=1)]
    return desc


def check_choice(name: str, value) -> str | None:
    """An error message when ``value`` is not an allowed choice, else None."""
    rng = PARAMETERS[name][2]
    if isinstance(rng, tuple) and isinstance(rng[0], str) and value not in rng:
        return f"{name} must be one of {', '.join(rng)}; got {value!r}"
    return None


def params_file() -> Path:
    """config/depth.yaml: from the colcon install (ament index), a pip install's share folder, or the
    source tree, in that order."""
    candidates = []
    try:
        from ament_index_python.packages import get_package_share_directory
        candidates.append(Path(get_package_share_directory(PACKAGE)) / "config" / "depth.yaml")
    except (ImportError, LookupError, OSError):  # no ROS index (AMENT_PREFIX_PATH), or not installed in it
        pass
    candidates.append(Path(sys.prefix) / "share" / PACKAGE / "config" / "depth.yaml")
    candidates.append(Path(__file__).resolve().parent.parent / "config" / "depth.yaml")
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(f"config/depth.yaml not found; looked in {', '.join(map(str, candidates))}")
