"""Procedural textures anchored in world coordinates (so they move with the scene, not the camera)."""
from __future__ import annotations

import numpy as np


def _hash(ix: np.ndarray, iy: np.ndarray, seed: int) -> np.ndarray:
    h = (ix.astype(np.int64) * 73856093) ^ (iy.astype(np.int64) * 19349663) ^ (seed * 83492791)
    h = (h ^ (h >> 13)) * 1274126177
    return ((h ^ (h >> 16)) & 0xFFFF).astype(np.float32) / 65535.0


def value_noise(u: np.ndarray, v: np.ndarray, cell: float, seed: int) -> np.ndarray:
    """Smooth noise in [0,1] with features of size ``cell`` (metres)."""
    x, y = u / cell, v / cell
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = x - x0, y - y0
    fx, fy = fx * fx * (3 - 2 * fx), fy * fy * (3 - 2 * fy)
    a, b = _hash(x0, y0, seed), _hash(x0 + 1, y0, seed)
    c, d = _hash(x0, y0 + 1, seed), _hash(x0 + 1, y0 + 1, seed)
    return (a * (1 - fx) + b * fx) * (1 - fy) + (c * (1 - fx) + d * fx) * fy


def fractal_noise(u: np.ndarray, v: np.ndarray, cell: float, seed: int, octaves: int = 3) -> np.ndarray:
    total, amp, norm = np.zeros_like(u, dtype=np.float32), 1.0, 0.0
    for o in range(octaves):
        total += amp * value_noise(u, v, cell / 2 ** o, seed + o)
        norm += amp
        amp *= 0.5
    return total / norm


def road(x: np.ndarray, z: np.ndarray, seed: int, lanes: tuple[float, ...]) -> np.ndarray:
    """Asphalt with dashed lane markings; sidewalk tiles beyond |x| > 4.5. Returns Nx3."""
    n = fractal_noise(x, z, 0.6, seed)
    grey = 0.28 + 0.22 * n
    rgb = np.stack([grey, grey, grey * 1.05], axis=-1)
    for lane in lanes:
        solid = abs(lane) > 3.0
        on = (np.abs(x - lane) < 0.08) & (solid | (np.mod(z, 9.0) < 4.0))
        rgb[on] = 0.85
    side = np.abs(x) > 5.3
    tile = (np.mod(x, 0.6) < 0.04) | (np.mod(z, 0.6) < 0.04)
    stone = 0.55 + 0.2 * fractal_noise(x, z, 0.3, seed + 7)
    rgb[side] = np.stack([stone, stone * 0.95, stone * 0.85], -1)[side]
    rgb[side & tile] *= 0.6
    return rgb


def facade(a: np.ndarray, y: np.ndarray, base: np.ndarray, seed: int) -> np.ndarray:
    """Building wall: coloured plaster with a grid of windows. ``a`` runs along the wall, ``y`` down."""
    n = fractal_noise(a, y, 0.8, seed)
    rgb = base[None, :] * (0.75 + 0.4 * n[:, None])
    wa, wy = np.mod(a, 2.6), np.mod(-y, 3.2)
    window = (wa > 0.6) & (wa < 2.0) & (wy > 0.9) & (wy < 2.6) & (-y > 0.8)
    glass = 0.12 + 0.2 * value_noise(np.floor(a / 2.6), np.floor(y / 3.2), 1.0, seed + 3)
    rgb[window] = glass[window, None] * np.array([0.8, 0.9, 1.1])
    return rgb


def vehicle(a: np.ndarray, y: np.ndarray, base: np.ndarray, height: float, seed: int) -> np.ndarray:
    """Car body colour with a dark window band in the upper part."""
    n = value_noise(a, y, 0.25, seed)
    rgb = base[None, :] * (0.8 + 0.3 * n[:, None])
    band = (-y > height * 0.62) & (-y < height * 0.92)
    rgb[band] = 0.1 + 0.1 * n[band, None]
    wheels = -y < 0.35
    rgb[wheels] = 0.06
    return rgb


def sky(dx: np.ndarray, dy: np.ndarray, dz: np.ndarray, seed: int, tint: np.ndarray) -> np.ndarray:
    """Direction-only sky (infinitely far): gradient plus soft clouds."""
    elev = np.clip(-dy / np.sqrt(dx ** 2 + dy ** 2 + dz ** 2), 0, 1)
    az = np.arctan2(dx, dz)
    clouds = fractal_noise(az * 8, elev * 8, 1.0, seed)
    base = tint[None, :] * (0.75 + 0.25 * elev[:, None])
    return np.clip(base + 0.35 * np.clip(clouds - 0.45, 0, 1)[:, None], 0, 1)


def concrete(x: np.ndarray, z: np.ndarray, seed: int, lanes: tuple[float, ...]) -> np.ndarray:
    """The unseen style's ground: pale concrete slabs with dark joints, a single yellow centre line and
    cobbles beyond the kerb (no texture of the training world). Returns Nx3."""
    n = fractal_noise(x, z, 1.5, seed + 101)
    grey = 0.5 + 0.15 * n
    rgb = np.stack([grey * 1.02, grey, grey * 0.94], axis=-1)
    joint = (np.mod(z, 4.5) < 0.05) | (np.mod(x + 2.0, 4.0) < 0.05)
    rgb[joint] *= 0.55
    rgb[np.abs(x) < 0.1] = [0.85, 0.7, 0.15]
    side = np.abs(x) > 5.3
    cobble = 0.35 + 0.25 * value_noise(x, z, 0.15, seed + 103)
    rgb[side] = np.stack([cobble * 1.05, cobble * 0.9, cobble * 0.8], -1)[side]
    return rgb


def brick(a: np.ndarray, y: np.ndarray, base: np.ndarray, seed: int) -> np.ndarray:
    """The unseen style's walls: running-bond brick with mortar lines and tall narrow windows."""
    course = np.floor(-y / 0.075)
    shift = np.where(np.mod(course, 2) == 0, 0.0, 0.11)
    mortar = (np.mod(-y, 0.075) < 0.012) | (np.mod(a + shift, 0.22) < 0.012)
    tone = 0.8 + 0.35 * value_noise(np.floor((a + shift) / 0.22), course, 1.0, seed + 5)
    rgb = base[None, :] * tone[:, None]
    rgb[mortar] = 0.75
    wa, wy = np.mod(a, 3.4), np.mod(-y, 3.6)
    window = (wa > 1.2) & (wa < 2.2) & (wy > 0.6) & (wy < 2.9) & (-y > 1.0)
    rgb[window] = np.array([0.15, 0.17, 0.2])
    return rgb
