"""Canonical camera space: a depth network's metric output belongs to the focal length it learned with.

An object of height h at depth Z spans fy * h / Z pixels, so a network that judges depth from apparent size
(and from how far down the ground meets an object) gives depth for the focal length of its training camera.
Each model states that focal length as ``canonical_fy``: fy as a multiple of the image height (KITTI's
normalised camera, and so every model trained here or by the SPIdepth authors on KITTI, has 1.92). Depth
for a camera with another fy / H is the network's depth times ``(fy / H) / canonical_fy`` (Metric3D's
canonical camera space). Inference multiplies by it; training divides the camera out the same way, so a
model fine-tuned on a robot's camera keeps stating depth in its canonical space.
"""
from __future__ import annotations

from typing import Any

KITTI_FY = 1.92  # fy / image height of KITTI's normalised intrinsics: the canonical camera of every model so far


def canonical_fy(metadata: dict) -> float:
    """The canonical fy / H of a model, from its checkpoint or export metadata (older files: KITTI's)."""
    value = (metadata.get("config") or {}).get("canonical_fy")
    return float(value) if value else KITTI_FY


def focal_factor(K: Any, image_height: int, canonical: float) -> Any:
    """What a model's depth is multiplied by for a camera with intrinsics K ([..., 3, 3], NumPy or torch, in
    pixels of an image ``image_height`` rows high, squashed to the network's input): 1 for the canonical
    camera; one factor per K."""
    return K[..., 1, 1] / (image_height * canonical)
