"""Procedural textures anchored in world coordinates (so they move with the scene, not the camera)."""
from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True)
class Ground:
    """How a world's road and sidewalks look; the defaults are the street world's."""

    grey: float = 0.28            # asphalt brightness
    grain: float = 0.22           # asphalt noise amplitude
    cell: float = 0.6             # asphalt noise size, metres
    tint: tuple[float, float, float] = (1.0, 1.0, 1.05)
    marking: tuple[float, float, float] = (0.85, 0.85, 0.85)
    dash: float = 4.0             # painted metres of every 9
    tile: float = 0.6             # sidewalk tile size, metres
    stone: tuple[float, float, float] = (1.0, 0.95, 0.85)


def _rgb(values: np.ndarray) -> tuple[float, float, float]:
    r, g, b = (float(v) for v in values)
    return r, g, b


def random_ground(rng: np.random.Generator) -> Ground:
    """Fresh or worn asphalt, bright or faded paint, sidewalk tiles of several sizes and stones."""
    return Ground(grey=float(rng.uniform(0.15, 0.42)), grain=float(rng.uniform(0.08, 0.3)),
                  cell=float(rng.uniform(0.2, 1.5)), tint=_rgb(rng.uniform(0.92, 1.08, 3)),
                  marking=_rgb(rng.uniform(0.7, 0.95) * rng.uniform(0.95, 1.0, 3)),
                  dash=float(rng.uniform(2.0, 6.0)), tile=float(rng.uniform(0.3, 1.0)),
                  stone=_rgb(rng.uniform(0.75, 1.05, 3)))


def road(x: np.ndarray, z: np.ndarray, seed: int, lanes: tuple[float, ...], look: Ground = Ground()) -> np.ndarray:
    """Asphalt with dashed lane markings; sidewalk tiles beyond |x| > 5.3. Returns Nx3."""
    n = fractal_noise(x, z, look.cell, seed)
    grey = look.grey + look.grain * n
    rgb = grey[:, None] * np.array(look.tint, np.float32)
    for lane in lanes:
        solid = abs(lane) > 3.0
        on = (np.abs(x - lane) < 0.08) & (solid | (np.mod(z, 9.0) < look.dash))
        rgb[on] = look.marking
    side = np.abs(x) > 5.3
    tile = (np.mod(x, look.tile) < 0.04) | (np.mod(z, look.tile) < 0.04)
    stone = 0.55 + 0.2 * fractal_noise(x, z, 0.3, seed + 7)
    rgb[side] = (stone[:, None] * np.array(look.stone, np.float32))[side]
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


WALLS = ("plaster", "siding", "panels", "tiles", "stucco")  # plaster: the street world's facade


@dataclass(frozen=True)
class Walls:
    """Per facade box: its family (index into WALLS), pattern pitch (metres), window grid (spacing along, spacing
    up, width and height as fractions of the spacing) and glass colour. Arrays, one row per box."""

    family: np.ndarray
    pitch: np.ndarray
    grid: np.ndarray   # [N, 4]
    glass: np.ndarray  # [N, 3]


def random_walls(rng: np.random.Generator, count: int) -> Walls:
    return Walls(rng.integers(0, len(WALLS), count), rng.uniform(0.15, 1.2, count),
                 np.stack([rng.uniform(1.6, 4.5, count), rng.uniform(2.6, 4.2, count),
                           rng.uniform(0.3, 0.8, count), rng.uniform(0.35, 0.7, count)], 1),
                 rng.uniform(0.05, 0.4, (count, 3)))


def finished_wall(a: np.ndarray, y: np.ndarray, base: np.ndarray, walls: Walls, box: np.ndarray,
                  seed: int) -> np.ndarray:
    """Walls of many families: ``base`` [N,3] colours, ``box`` [N] the facade each pixel lies on."""
    family, pitch = walls.family[box], walls.pitch[box]
    fine = fractal_noise(a, y, 0.5, seed)
    shade = 0.8 + 0.3 * fine
    board = np.floor(-y / pitch)
    panel = np.floor(a / pitch)
    seam = np.select(
        [family == 1, family == 2, family == 3],
        [np.mod(-y, pitch) < 0.03,                                   # siding: horizontal boards
         np.mod(a, pitch) < 0.04,                                    # panels: vertical seams
         (np.mod(-y, pitch) < 0.02) | (np.mod(a, pitch) < 0.02)],    # tiles: a square grid
        False)
    tone = np.select([family == 1, family == 2, family == 3],
                     [0.85 + 0.25 * value_noise(board, np.zeros_like(board), 1.0, seed + 1),
                      0.8 + 0.4 * value_noise(panel, np.zeros_like(panel), 1.0, seed + 2),
                      0.85 + 0.2 * value_noise(panel, board, 1.0, seed + 3)],
                     np.where(family == 4, 0.7 + 0.6 * fractal_noise(a, y, 0.12, seed + 4), shade))
    rgb = base * tone[:, None]
    rgb[seam] *= 0.55
    grid = walls.grid[box]
    wa, wy = np.mod(a, grid[:, 0]) / grid[:, 0], np.mod(-y, grid[:, 1]) / grid[:, 1]
    window = (np.abs(wa - 0.5) < grid[:, 2] / 2) & (np.abs(wy - 0.5) < grid[:, 3] / 2) & (-y > 0.8)
    rgb[window] = walls.glass[box][window] * (0.8 + 0.4 * shade[window, None])
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
