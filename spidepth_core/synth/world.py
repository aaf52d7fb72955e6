"""A synthetic street world with exact depth and camera poses, ray-cast in NumPy.

World frame: X right, Y down, Z forward (like the camera's optical frame); ground at Y = 0.
Scene: road with lane markings, sidewalks, building facades, parked vehicles, poles, sky at
infinity. Lambertian shading with a per-sequence sun, so brightness constancy holds.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import textures as tex

FACADE, VEHICLE, POLE, OTHER, CANOPY = 0, 1, 2, 3, 4  # OTHER: pedestrians, trunks, fences, kerbs (plain colour)
GROUND, SKY = 8, 9  # what a pixel sees when it hits no box
LANES = (-5.0, 0.0, 5.0)
FPS = 10.0
STYLES = ("street", "unseen")  # unseen: a texture family and layouts that no training data uses (benchmarks)


@dataclass
class Boxes:
    lo: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    hi: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    kind: np.ndarray = field(default_factory=lambda: np.zeros(0, int))
    color: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))


class StreetWorld:
    """Random street layout fixed by ``seed``, covering ``length`` metres of road ahead.

    ``variety``: also crossings and open stretches, pedestrians, trees, fences, kerbs, vans and trucks, a
    coloured sun, walls of five families and other road surfaces (none of them the unseen style's);
    ``street_road`` keeps the street world's road under the varied walls (its texture's size is a cue to the
    camera's height).
    ``style``: "street" (the training world) or "unseen" (brick and concrete, other street widths and objects:
    a world that training never sees, for benchmarks).
    """

    def __init__(self, seed: int, length: float = 400.0, variety: bool = False, style: str = "street",
                 street_road: bool = False) -> None:
        if style not in STYLES:
            raise ValueError(f"style must be one of {STYLES}, got {style!r}")
        self.seed, self.style = seed, style
        rng = np.random.default_rng(seed)
        lo, hi, kind, color = [], [], [], []

        def add(low, high, k, c):
            lo.append(low), hi.append(high), kind.append(k), color.append(c)

        if style == "unseen":
            _unseen_layout(rng, length, add)
        else:
            _street_layout(rng, length, add)
            if variety:
                _extra_objects(np.random.default_rng(seed + 7_000_003), length, add)
        self.boxes = Boxes(np.array(lo, float), np.array(hi, float), np.array(kind), np.array(color, float))
        self.sun = np.array([rng.uniform(-0.6, 0.6), -rng.uniform(0.4, 0.9), rng.uniform(-0.6, 0.6)])
        self.sun /= np.linalg.norm(self.sun)
        self.ambient = rng.uniform(0.45, 0.65)
        self.diffuse = rng.uniform(0.35, 0.6)
        self.exposure = rng.uniform(0.85, 1.15)
        self.sky_tint = np.array([0.55, 0.7, 0.95]) * rng.uniform(0.8, 1.1)
        self.sun_color = np.ones(3)
        if variety or style == "unseen":  # warm morning to cold overcast light
            warmth = np.random.default_rng(seed + 11).uniform(-1, 1)
            self.sun_color = np.array([1 + 0.15 * warmth, 1.0, 1 - 0.15 * warmth])
        self.ground, self.walls = tex.Ground(), None  # the street world's road and plaster facades
        if variety and style == "street":  # many wall families, other asphalt, paint and sidewalks
            finish = np.random.default_rng(seed + 13_000_007)
            ground = tex.random_ground(finish)  # drawn either way: the walls' draws stay the same
            self.ground, self.walls = (tex.Ground() if street_road else ground), tex.random_walls(finish, len(kind))


def _street_layout(rng: np.random.Generator, length: float, add) -> None:
    """Facades, parked cars and poles along a straight street (the training world)."""
    for side in (-1, 1):
        z = -30.0
        while z < length + 150:
            seg = rng.uniform(8, 30)
            if rng.random() < 0.8:
                setback, height = rng.uniform(7.0, 14), rng.uniform(4, 18)
                x_in, x_out = side * setback, side * (setback + 12)
                add([min(x_in, x_out), -height, z], [max(x_in, x_out), 0, z + seg], FACADE,
                    rng.uniform(0.35, 0.95, 3))
            z += seg + (rng.uniform(1, 10) if rng.random() < 0.35 else 0.0)
        z = rng.uniform(0, 10)
        while z < length + 150:
            if rng.random() < 0.6:
                w, h, car = rng.uniform(1.7, 1.95), rng.uniform(1.35, 1.7), rng.uniform(3.8, 4.8)
                xc = side * rng.uniform(4.0, 4.4)
                add([xc - w / 2, -h, z], [xc + w / 2, 0, z + car], VEHICLE, rng.uniform(0.1, 0.95, 3))
            z += rng.uniform(5.5, 20)
        z = rng.uniform(0, 15)
        while z < length + 150:
            xc = side * rng.uniform(5.6, 6.2)
            add([xc - 0.1, -rng.uniform(4, 7), z], [xc + 0.1, 0, z + 0.2], POLE, np.full(3, 0.5))
            z += rng.uniform(12, 35)


def _extra_objects(rng: np.random.Generator, length: float, add) -> None:
    """Kerbs, pedestrians, trees, fences, vans and trucks, and cross streets seen through facade gaps."""
    end = length + 150
    for side in (-1, 1):
        add([min(side * 5.3, side * 5.5), -0.15, -30], [max(side * 5.3, side * 5.5), 0, end], OTHER,
            np.full(3, rng.uniform(0.55, 0.75)))  # kerb
        z = rng.uniform(0, 10)
        while z < end:  # pedestrians on the sidewalk
            x, h = side * rng.uniform(5.8, 8.0), rng.uniform(1.5, 1.9)
            add([x - 0.22, -h, z], [x + 0.22, 0, z + 0.35], OTHER, rng.uniform(0.1, 0.8, 3))
            z += rng.exponential(15)
        z = rng.uniform(0, 20)
        while z < end:  # trees: trunk and canopy
            x = side * rng.uniform(6.2, 7.0)
            top, size = rng.uniform(2.2, 3.5), rng.uniform(1.6, 3.2)
            add([x - 0.15, -top, z], [x + 0.15, 0, z + 0.3], OTHER, np.array([0.35, 0.25, 0.15]))
            add([x - size / 2, -top - size, z - size / 2 + 0.15], [x + size / 2, -top + 0.2, z + size / 2 + 0.15],
                CANOPY, np.array([0.25, 0.5, 0.2]) * rng.uniform(0.7, 1.2))
            z += rng.uniform(10, 40)
        z = rng.uniform(0, 30)
        while z < end:  # fences
            run, x = rng.uniform(5, 15), side * rng.uniform(6.8, 7.2)
            if rng.random() < 0.4:
                add([x - 0.03, -rng.uniform(0.9, 1.3), z], [x + 0.03, 0, z + run], OTHER, rng.uniform(0.2, 0.7, 3))
            z += run + rng.uniform(10, 40)
        z = rng.uniform(10, 40)
        while z < end:  # vans and trucks parked at the side
            w, h, n = rng.uniform(2.0, 2.5), rng.uniform(2.0, 3.4), rng.uniform(5, 9)
            xc = side * rng.uniform(4.2, 4.6)
            add([xc - w / 2, -h, z], [xc + w / 2, 0, z + n], VEHICLE, rng.uniform(0.2, 0.95, 3))
            z += rng.uniform(30, 90)
    z = rng.uniform(20, 60)
    while z < end:  # a cross street: far facades across the gap
        add([-60, -rng.uniform(6, 20), z + 25], [60, 0, z + 37], FACADE, rng.uniform(0.35, 0.95, 3))
        z += rng.uniform(60, 150)


def _unseen_layout(rng: np.random.Generator, length: float, add) -> None:
    """Narrow lanes or wide boulevards, vans, trees and bollards instead of cars and poles."""
    narrow = rng.random() < 0.5
    end = length + 150
    for side in (-1, 1):
        z = -30.0
        while z < end:
            seg = rng.uniform(12, 40)
            setback = rng.uniform(5.6, 7.5) if narrow else rng.uniform(16, 24)
            x_in, x_out = side * setback, side * (setback + 10)
            add([min(x_in, x_out), -rng.uniform(6, 25), z], [max(x_in, x_out), 0, z + seg], FACADE,
                rng.uniform(0.45, 0.9, 3) * [1.0, 0.75, 0.6])
            z += seg + (rng.uniform(3, 15) if rng.random() < 0.25 else 0.0)
        z = rng.uniform(0, 10)
        while z < end:
            w, h, n = rng.uniform(1.9, 2.2), rng.uniform(1.8, 2.6), rng.uniform(4.5, 6.0)
            xc = side * rng.uniform(3.9, 4.3)
            add([xc - w / 2, -h, z], [xc + w / 2, 0, z + n], VEHICLE, rng.uniform(0.15, 0.9, 3))
            z += rng.uniform(8, 26)
        z = rng.uniform(0, 12)
        while z < end:
            x = side * rng.uniform(5.5, 6.0)
            if narrow:  # bollards
                add([x - 0.1, -1.0, z], [x + 0.1, 0, z + 0.2], OTHER, np.full(3, 0.3))
            else:
                add([x - 0.2, -3.0, z], [x + 0.2, 0, z + 0.4], OTHER, np.array([0.3, 0.22, 0.15]))
                add([x - 1.8, -6.5, z - 1.6], [x + 1.8, -2.8, z + 2.0], CANOPY, np.array([0.3, 0.45, 0.15]))
            z += rng.uniform(6, 18)


def rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Camera-to-world rotation: yaw about Y (down), pitch about X, roll about Z."""
    cy, sy, cp, sp, cr, sr = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch), np.cos(roll), np.sin(roll)
    Ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    Rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    Rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return Ry @ Rx @ Rz


def camera_path(seed: int, frames: int, stops: bool = False, mount_height: float | None = None,
                mount_pitch: float = 0.0, mount_roll: float = 0.0) -> np.ndarray:
    """Camera-to-world poses [N,4,4] at 10 Hz: forward driving with sway, speed changes, small rotations.

    ``stops`` adds a stretch where the vehicle halts (as robots do at junctions). ``mount_height`` puts the
    camera that many metres above the ground (default: a car's, 1.5-1.8 m drawn per sequence).
    """
    rng = np.random.default_rng(seed + 1_000_003)
    t = np.arange(frames) / FPS
    speed = rng.uniform(6, 10) * (1 + 0.3 * np.sin(2 * np.pi * t / rng.uniform(6, 14) + rng.uniform(0, 6)))
    moving = np.ones(frames)
    if stops and frames > 20:
        start = rng.integers(frames // 4, frames // 2)
        moving = np.clip(np.abs(np.arange(frames) - start - 10) / 4.0 - 2.0, 0, 1)  # ~16 frames at rest
        speed = speed * moving
    # Sway and vibration run on a clock that stops with the vehicle (equal to t without stops).
    tau = np.concatenate([[0.0], np.cumsum(moving[:-1])]) / FPS
    z = np.concatenate([[0.0], np.cumsum(speed[:-1] / FPS)])
    x = 1.6 + 0.3 * np.sin(2 * np.pi * tau / rng.uniform(5, 10) + rng.uniform(0, 6))
    dx, dz = (np.gradient(x), np.gradient(z)) if frames > 1 else (np.zeros(1), np.ones(1))  # one frame: ahead
    yaw = np.arctan2(dx, np.maximum(dz, 1e-3)) + 0.01 * np.sin(tau * 1.3)
    for i in range(1, frames):
        if moving[i] == 0 or moving[i - 1] == 0:
            yaw[i] = yaw[i - 1]  # heading holds while halted
    # the mount's tilt (degrees; + pitch looks down, which is -x rotation with y down) plus the ride's sway
    pitch = np.deg2rad(0.6) * np.sin(2 * np.pi * tau / 1.7 + rng.uniform(0, 6)) - np.deg2rad(mount_pitch)
    roll = np.deg2rad(0.4) * np.sin(2 * np.pi * tau / 2.3 + rng.uniform(0, 6)) + np.deg2rad(mount_roll)
    mount = rng.uniform(1.5, 1.8) if mount_height is None else mount_height
    if mount <= 0:
        raise ValueError(f"mount_height must be > 0 metres, got {mount_height}")
    height = mount + 0.02 * np.sin(2 * np.pi * tau / 1.1)
    poses = np.tile(np.eye(4), (frames, 1, 1))
    for i in range(frames):
        poses[i, :3, :3] = rotation(yaw[i], pitch[i], roll[i])
        poses[i, :3, 3] = [x[i], -height[i], z[i]]
    return poses


def _screen_rect(corners_cam: np.ndarray, K: np.ndarray, height: int, width: int):
    """Pixel rectangle (v0, v1, u0, u1) covering a box's corners, or None if off screen."""
    z = corners_cam[:, 2]
    if (z <= 0.05).all():
        return None
    if (z <= 0.05).any():  # straddles the image plane: test every ray
        return 0, height, 0, width
    uv = corners_cam @ K.T
    u, v = uv[:, 0] / z, uv[:, 1] / z
    u0, u1 = max(int(np.floor(u.min())) - 1, 0), min(int(np.ceil(u.max())) + 2, width)
    v0, v1 = max(int(np.floor(v.min())) - 1, 0), min(int(np.ceil(v.max())) + 2, height)
    if u0 >= u1 or v0 >= v1:
        return None
    return v0, v1, u0, u1


def _intersect_boxes(o: np.ndarray, R: np.ndarray, d: np.ndarray, K: np.ndarray, boxes: Boxes, best: np.ndarray,
                     hit_id: np.ndarray, hit_axis: np.ndarray, far: float) -> None:
    """Slab test of each box against the rays in its screen rectangle; arrays are HxW(x3), updated in place."""
    height, width = best.shape
    near = (boxes.hi[:, 2] > o[2] - 30) & (boxes.lo[:, 2] < o[2] + far)
    signs = np.array(np.meshgrid([0, 1], [0, 1], [0, 1], indexing="ij")).reshape(3, -1).T
    for b in np.flatnonzero(near):
        corners = np.where(signs, boxes.hi[b], boxes.lo[b])
        rect = _screen_rect((corners - o) @ R, K, height, width)
        if rect is None:
            continue
        v0, v1, u0, u1 = rect
        dd = d[v0:v1, u0:u1]
        t0 = (boxes.lo[b] - o) / dd
        t1 = (boxes.hi[b] - o) / dd
        tmin3 = np.minimum(t0, t1)
        tmin = tmin3.max(axis=2)
        tmax = np.maximum(t0, t1).min(axis=2)
        sub_best = best[v0:v1, u0:u1]
        hit = (tmax >= tmin) & (tmin > 0.05) & (tmin < sub_best)
        if hit.any():
            sub_best[hit] = tmin[hit]
            hit_id[v0:v1, u0:u1][hit] = b
            hit_axis[v0:v1, u0:u1][hit] = tmin3[hit].argmax(axis=1)


def _cast(world: StreetWorld, pose: np.ndarray, K: np.ndarray, height: int, width: int, far: float):
    """Each pixel's ray (world frame, camera z = 1), distance to the first hit (inf: sky), the box it hits
    (-1: ground or sky) and that box's face axis; flattened."""
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    rays = np.stack([u, v, np.ones_like(u)], axis=-1) @ np.linalg.inv(K).T  # camera z = 1
    R, o = pose[:3, :3], pose[:3, 3]
    d: np.ndarray = rays @ R.T
    d[np.abs(d) < 1e-9] = 1e-9
    best: np.ndarray = np.where(d[..., 1] > 0, -o[1] / d[..., 1], np.inf)
    hit_id: np.ndarray = np.full((height, width), -1)
    hit_axis: np.ndarray = np.zeros((height, width), int)
    _intersect_boxes(o, R, d, K, world.boxes, best, hit_id, hit_axis, far)
    best, hit_id, hit_axis, d = best.ravel(), hit_id.ravel(), hit_axis.ravel(), d.reshape(-1, 3)
    sky = best > far
    best[sky] = np.inf
    hit_id[sky] = -1
    return d, best, hit_id, hit_axis


SURFACES = {FACADE: "walls", VEHICLE: "vehicles", POLE: "poles", OTHER: "other objects", CANOPY: "tree tops",
            GROUND: "ground", SKY: "sky"}


def surface_kinds(world: StreetWorld, pose: np.ndarray, K: np.ndarray, height: int, width: int,
                  far: float = 200.0) -> np.ndarray:
    """HxW: what each pixel of ``render`` sees (a key of SURFACES)."""
    _, best, hit_id, _ = _cast(world, pose, K, height, width, far)
    kinds = np.full(hit_id.shape, GROUND)
    on_box = hit_id >= 0
    kinds[on_box] = world.boxes.kind[hit_id[on_box]]
    kinds[np.isinf(best)] = SKY
    return kinds.reshape(height, width)


def render(world: StreetWorld, pose: np.ndarray, K: np.ndarray, height: int, width: int,
           far: float = 200.0) -> tuple[np.ndarray, np.ndarray]:
    """(rgb HxWx3 uint8, depth HxW float32 z-depth in metres, 0 for sky)."""
    d, best, hit_id, hit_axis = _cast(world, pose, K, height, width, far)
    sky = np.isinf(best)
    o = pose[:3, 3]
    p = o + np.where(sky, 0.0, best)[:, None] * d
    n = best.size
    albedo = np.zeros((n, 3), np.float32)
    normal = np.zeros((n, 3))
    ground = ~sky & (hit_id < 0)
    if world.style == "unseen":
        albedo[ground] = tex.concrete(p[ground, 0], p[ground, 2], world.seed, LANES)
    else:
        albedo[ground] = tex.road(p[ground, 0], p[ground, 2], world.seed, LANES, world.ground)
    normal[ground] = [0, -1, 0]
    _shade_boxes(world, p, d, hit_id, hit_axis, albedo, normal)
    sunlit = np.clip(normal @ world.sun, 0, None)[:, None] * world.sun_color[None, :]
    shade = world.ambient + world.diffuse * sunlit
    rgb = albedo * shade.astype(np.float32) * world.exposure
    rgb[sky] = tex.sky(d[sky, 0], d[sky, 1], d[sky, 2], world.seed, world.sky_tint)
    depth = np.where(sky, 0.0, best).astype(np.float32)  # ray z-component is 1 in camera frame
    image = (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8).reshape(height, width, 3)
    return image, depth.reshape(height, width)


def _shade_boxes(world: StreetWorld, p: np.ndarray, d: np.ndarray, hit_id: np.ndarray, hit_axis: np.ndarray,
                 albedo: np.ndarray, normal: np.ndarray) -> None:
    boxes = world.boxes
    on_box = hit_id >= 0
    ids, axis = hit_id[on_box], hit_axis[on_box]
    pts = p[on_box]
    sign = -np.sign(d[on_box, axis])
    nrm = np.zeros((ids.size, 3))
    nrm[np.arange(ids.size), axis] = sign
    normal[on_box] = nrm
    along = np.where(axis == 0, pts[:, 2], pts[:, 0])
    kind = boxes.kind[ids]
    out = np.zeros((ids.size, 3), np.float32)
    for k in (FACADE, VEHICLE, POLE, OTHER, CANOPY):
        m = kind == k
        if not m.any():
            continue
        base = boxes.color[ids[m]]
        if k == FACADE and world.walls is not None:
            rgb = tex.finished_wall(along[m], pts[m, 1], base, world.walls, ids[m], world.seed + 11)
        elif k == FACADE:
            wall = tex.brick if world.style == "unseen" else tex.facade
            rgb = wall(along[m], pts[m, 1], np.ones(3), world.seed + 11) * base
        elif k == VEHICLE:
            h = -boxes.lo[ids[m], 1]
            rgb = tex.vehicle(along[m], pts[m, 1], np.ones(3), 1.0, world.seed + 13) * base
            rgb[(-pts[m, 1] > h * 0.62) & (-pts[m, 1] < h * 0.92)] = 0.12
        elif k == CANOPY:
            rgb = base * (0.6 + 0.6 * tex.fractal_noise(along[m], pts[m, 1], 0.25, world.seed + 17)[:, None])
        else:
            rgb = base * (0.8 + 0.3 * tex.value_noise(along[m], pts[m, 1], 0.3, world.seed)[:, None])
        out[m] = rgb
    albedo[on_box] = out
