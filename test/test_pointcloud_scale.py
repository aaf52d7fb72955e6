import numpy as np
import pytest

from spidepth_core.pinhole import intrinsics_matrix
from spidepth_core.pointcloud import XYZ_DTYPE, XYZRGB_DTYPE, decimate, depth_to_points, pack_cloud, write_ply
from spidepth_core.scale import ScaleEstimator, fit_ground_height

K = intrinsics_matrix(100.0, 120.0, 63.5, 47.5)


def test_points_land_where_backprojection_puts_them():
    depth = np.random.default_rng(0).uniform(1, 20, (96, 128)).astype(np.float32)
    depth[5, 7] = np.nan
    pts = depth_to_points(depth, K)
    v, u = 40, 100
    z = depth[v, u]
    assert np.allclose(pts[v, u], [(u - 63.5) * z / 100, (v - 47.5) * z / 120, z], rtol=1e-5)
    assert np.isnan(pts[5, 7]).all()


def test_cloud_layout():
    pts = np.ones((4, 5, 3), np.float32)
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[..., 0] = 10  # R
    rgb[..., 2] = 30  # B
    cloud = pack_cloud(pts, rgb)
    assert cloud.dtype == XYZRGB_DTYPE and cloud.dtype.itemsize == 32
    raw = cloud.tobytes()[16:20]
    assert raw == bytes([30, 0, 10, 0])  # B, G, R, pad
    assert pack_cloud(pts).dtype == XYZ_DTYPE and XYZ_DTYPE.itemsize == 16


def test_decimation_keeps_geometry():
    depth = np.full((96, 128), 5.0, np.float32)
    d2, K2 = decimate(depth, K, 4)
    assert d2.shape == (24, 32)
    full = depth_to_points(depth, K)
    small = depth_to_points(d2, K2)
    # Pixel (v, u) of the small grid is (4v, 4u) of the full one, up to the half-pixel shift of the centres.
    assert np.allclose(small[3, 5, 2], full[12, 20, 2])
    assert abs(small[3, 5, 0] - full[12, 20, 0]) < 0.2


def test_ply(tmp_path):
    pts = np.array([[[0, 0, 1], [np.nan, np.nan, np.nan]]], np.float32)
    assert write_ply(tmp_path / "c.ply", pts, np.zeros((1, 2, 3), np.uint8)) == 1
    assert "element vertex 1" in (tmp_path / "c.ply").read_text()


def _ground_depth(height_m: float, h=96, w=128) -> np.ndarray:
    v = np.arange(h, dtype=np.float64)[:, None].repeat(w, 1)
    with np.errstate(divide="ignore"):
        z = height_m * K[1, 1] / (v - K[1, 2])
    z[v <= K[1, 2] + 1] = 50.0
    return z.astype(np.float32)


def test_ground_plane_height():
    pts = depth_to_points(_ground_depth(1.6), K)[70:].reshape(-1, 3)
    assert fit_ground_height(pts) == pytest.approx(1.6, rel=1e-3)
    wall = np.c_[np.random.rand(500), np.random.rand(500), np.full(500, 5.0)]
    assert fit_ground_height(wall) is None


def test_ground_height_holds_for_bent_ground_a_vehicle_and_a_pitched_camera():
    """Network depth bends the ground (errors grow with distance) and vehicles fill part of the lowest rows;
    a camera may look down. Heights along the ground's normal hold; a freely fitted plane tilts."""
    from spidepth_core.scale import down_direction
    pitch = 8.0
    v, u = np.mgrid[0:96, 0:128].astype(float)
    rays = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1)
    d = down_direction(pitch)
    with np.errstate(divide="ignore"):
        depth = np.where(rays @ d > 1e-3, 1.2 / (rays @ d), np.inf)  # ground 1.2 m below a pitched camera
    depth = depth * (1 + 0.15 * np.clip(depth / 20, 0, 1))  # bent: 15% too deep at 20 m and beyond
    depth[70:, 20:50] = np.minimum(depth[70:, 20:50], 4.0)  # a vehicle's rear 4 m ahead
    pts = depth_to_points(depth, K)[67:].reshape(-1, 3)
    assert fit_ground_height(pts, d) == pytest.approx(1.2, rel=0.06)
    level = fit_ground_height(pts)  # pretending the camera is level: the slope of the view is read as height
    assert level is None or abs(level / 1.2 - 1) > 0.1
    est = ScaleEstimator("camera_height", camera_height=1.2, smoothing=0.0, pitch=pitch)
    assert est.update(depth / 3.0, K) == pytest.approx(3.0, rel=0.06)


def test_camera_height_policy_recovers_scale():
    est = ScaleEstimator("camera_height", camera_height=1.6, smoothing=0.5)
    raw = _ground_depth(1.6) / 4.0  # network depth off by 4x
    for _ in range(10):
        scale = est.update(raw, K)
    assert scale == pytest.approx(4.0, rel=1e-2)


def test_fixed_and_none_policies():
    assert ScaleEstimator("fixed", depth_scale=5.4).update(np.ones((8, 8)), K) == 5.4
    assert ScaleEstimator("none").update(np.ones((8, 8)), K) == 1.0
    with pytest.raises(ValueError):
        ScaleEstimator("magic")
    with pytest.raises(ValueError):
        ScaleEstimator("fixed", depth_scale=0)


class _QuarterDepth:
    """A stand-in network that knows the true depth up to an unknown factor (0.25), as self-supervision does."""

    def __init__(self, sequences) -> None:
        self.frames = iter([seq.depth(i) for seq in sequences for i in range(len(seq))])

    def predict(self, image, K, uncertainty=False):
        from spidepth_core.inference import DepthResult
        gt = next(self.frames)
        return DepthResult(depth=np.where(gt > 0, gt * 0.25, np.nan).astype(np.float32), K=K)


def test_camera_height_evaluation_recovers_metric_depth(world_dir, capsys):
    from spidepth_core.data import find_sequences
    from spidepth_core.evaluate import evaluate_sequences
    seqs = find_sequences(world_dir)
    plain = evaluate_sequences(_QuarterDepth(seqs), seqs, median_scaling=False)
    fitted = evaluate_sequences(_QuarterDepth(seqs), seqs, median_scaling=False, camera_height="poses")
    assert plain["abs_rel"] == pytest.approx(0.75, abs=1e-3)
    assert fitted["abs_rel"] < 0.05  # the ground fit finds the factor from each sequence's known height
    assert evaluate_sequences(_QuarterDepth(seqs), seqs, camera_height=1.0)["abs_rel"] > 0.2  # a wrong height


def test_intrinsics_guard_refuses_the_implausible_and_holds_a_jump_until_it_repeats():
    from spidepth_core.camera_check import IntrinsicsGuard, intrinsics_problem
    hw = (480, 640)
    K = np.array([[457.0, 0, 320], [0, 457.0, 240], [0, 0, 1]])  # 70 deg horizontal
    assert intrinsics_problem(K, hw) is None
    for bad, why in (([[1e9, 0, 320], [0, 1e9, 240], [0, 0, 1]], "focal lengths"),
                     ([[457.0, 0, 5000], [0, 457.0, 240], [0, 0, 1]], "principal point"),
                     ([[0.0, 0, 320], [0, 457.0, 240], [0, 0, 1]], "positive")):
        assert why in intrinsics_problem(np.array(bad), hw)
    guard = IntrinsicsGuard(confirm=3)
    assert guard.accept(K, hw) is None
    assert guard.accept(K * [[1.05], [1.05], [1]], hw) is None  # a small re-calibration passes at once
    zoomed = K * [[2.0], [2.0], [1]]
    assert "held" in guard.accept(zoomed, hw) and "held" in guard.accept(zoomed, hw)
    assert np.allclose(guard.last_good(hw), K * [[1.05], [1.05], [1]])
    assert guard.accept(zoomed, hw) is None  # the third frame in a row: a real zoom, accepted
    assert np.allclose(guard.last_good((240, 320)), zoomed / [[2], [2], [1]])  # at another image size
