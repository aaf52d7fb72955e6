"""Cameras of the synthetic world: field of view, sensor aspect, mount height and tilt, and the sensor's look
(white balance, exposure, noise, blur, JPEG) that real robots' cameras vary."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

from ..pinhole import intrinsics_matrix, kitti_intrinsics

ASPECTS = (4 / 3, 16 / 9, 2.0, 3.31)  # sensor width / height: common robot cameras, and KITTI's crop


@dataclass(frozen=True)
class Camera:
    """One camera. ``hfov`` (degrees) None: KITTI's normalised intrinsics. ``aspect``: the real sensor's
    width / height; an image rendered at another size is that sensor's image squashed to it (the way the
    network sees every camera), None: the render size's own. ``mount`` (metres) None: a car's 1.5-1.8 m,
    drawn per sequence. ``pitch`` (degrees, + looks down) and ``roll`` (degrees): how it is mounted."""

    hfov: float | None = None
    aspect: float | None = None
    mount: float | None = None
    pitch: float = 0.0
    roll: float = 0.0

    def K(self, height: int, width: int) -> np.ndarray:
        """Intrinsics in pixels of an image rendered at height x width."""
        if self.hfov is None:
            return kitti_intrinsics(height, width)
        if not 1 < self.hfov < 179:
            raise ValueError(f"horizontal field of view must be within 1-179 degrees, got {self.hfov}")
        f = 0.5 / np.tan(np.deg2rad(self.hfov) / 2)  # focal length / sensor width
        aspect = self.aspect or width / height
        return intrinsics_matrix(f * width, f * aspect * height, width / 2, height / 2)

    def to_dict(self) -> dict:
        return {k: (None if v is None else float(v)) for k, v in asdict(self).items()}


def random_camera(rng: np.random.Generator) -> Camera:
    """A camera as robots and cars carry them: 40-110 deg, 4:3 to KITTI-wide, 0.3-2.5 m up, a little tilt."""
    return Camera(hfov=float(rng.uniform(40, 110)), aspect=float(rng.choice(ASPECTS)),
                  mount=float(np.exp(rng.uniform(np.log(0.3), np.log(2.5)))),
                  pitch=float(np.clip(rng.normal(0, 4), -10, 10)), roll=float(np.clip(rng.normal(0, 1.5), -4, 4)))


@dataclass(frozen=True)
class Look:
    """A sensor's rendering of light: per sequence (constant, so brightness constancy holds between frames)
    white balance and exposure; per frame noise, and sometimes blur and JPEG compression."""

    gains: tuple[float, float, float] = (1.0, 1.0, 1.0)
    exposure: float = 1.0
    noise: float = 0.0      # standard deviation in 8-bit levels
    blur: float = 0.0       # probability of a frame with motion/focus blur
    jpeg: float = 0.0       # probability of a JPEG-compressed frame

    def apply(self, rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        out = rgb.astype(np.float32) * (np.array(self.gains, np.float32) * self.exposure)
        if self.noise:
            out += np.asarray(rng.normal(0, self.noise, out.shape), np.float32)
        out = np.clip(out + 0.5, 0, 255).astype(np.uint8)
        if rng.random() < self.blur:
            out = cv2.GaussianBlur(out, (3, 3), float(rng.uniform(0.5, 1.0)))
        if rng.random() < self.jpeg:
            ok, data = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.uniform(40, 90))])
            decoded = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if ok else None
            out = out if decoded is None else decoded
        return out


def random_look(rng: np.random.Generator) -> Look:
    gains = np.exp(rng.normal(0, 0.08, 3))
    r, g, b = (float(v) for v in gains / gains.mean())
    return Look((r, g, b), float(np.exp(rng.normal(0, 0.2))),
                float(rng.uniform(0, 4)), 0.2, 0.3)
