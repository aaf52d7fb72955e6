"""abs_rel per band of true depth or of image rows: band assignment, the contributions adding up to the
pooled error, the sign of the bias, and `spidepth evaluate --by-depth --by-row` end to end."""
import json

import numpy as np
import pytest

from spidepth_core.cli import main
from spidepth_core.error_bands import ErrorBands, band_edges, row_bands, row_position


def test_bands_split_the_pooled_error_and_show_the_bias():
    gt = np.array([1.0, 2.0, 10.0, 10.0, 50.0])
    pred = np.array([3.0, 6.0, 10.0, 11.0, 25.0])  # near: 3x too far; mid: 5% off; far: half
    bands = ErrorBands((0.0, 5.0, 20.0, 80.0))
    bands.add(gt[:3], pred[:3])
    bands.add(gt[3:], pred[3:])  # images add up
    near, mid, far = bands.rows()
    assert near["share"] == pytest.approx(0.4) and near["abs_rel"] == pytest.approx(2.0)
    assert near["log_ratio"] == pytest.approx(np.log(3.0)) and far["log_ratio"] == pytest.approx(np.log(0.5))
    assert mid["abs_rel"] == pytest.approx(0.05)
    pooled = np.mean(np.abs(pred - gt) / gt)
    assert sum(r["contribution"] for r in (near, mid, far)) == pytest.approx(pooled)
    assert f"| all | 100% | {pooled:.3f}" in bands.table()


def test_pixels_outside_the_bands_are_left_out_and_empty_bands_are_nan():
    bands = ErrorBands((1.0, 2.0, 3.0))
    bands.add(np.array([0.5, 1.5, 90.0]), np.array([0.5, 3.0, 90.0]))
    first, second = bands.rows()
    assert first["share"] == 1.0 and first["abs_rel"] == pytest.approx(1.0) and np.isnan(second["abs_rel"])
    assert band_edges(100.0)[-2:] == (80.0, 100.0) and band_edges(10.0) == (0.0, 3.0, 5.0, 8.0, 10.0)
    with pytest.raises(ValueError, match="must rise"):
        ErrorBands((0.0, 5.0, 5.0))
    with pytest.raises(ValueError, match="differ"):
        bands.add(np.ones(3), np.ones(2))
    rows = row_bands(4)
    with pytest.raises(ValueError, match="differ"):
        rows.add(np.ones(3), np.ones(3), np.eye(2, dtype=bool))  # the mask selects 2 pixels, not 3
    with pytest.raises(ValueError, match="mask"):
        rows.add(np.ones(3), np.ones(3))


def test_row_bands_follow_each_pixels_row_in_mask_order():
    mask = np.zeros((8, 3), bool)
    mask[0, 1] = mask[1, 0] = mask[7, 2] = True  # two pixels in the top quarter, one in the bottom one
    gt = np.full((8, 3), 10.0)
    pred = gt.copy()
    pred[7, 2] = 20.0  # only the bottom pixel is off (2x too far)
    assert row_position(mask) == pytest.approx([0.5 / 8, 1.5 / 8, 7.5 / 8])
    bands = row_bands(4)
    bands.add(gt[mask], pred[mask], mask)
    top, _, _, bottom = bands.rows()
    assert top["share"] == pytest.approx(2 / 3) and top["abs_rel"] == 0.0
    assert bottom["abs_rel"] == pytest.approx(1.0) and bottom["log_ratio"] == pytest.approx(np.log(2.0))
    assert "| 75.0%-100.0% | 33.3% | 1.000 |" in bands.table()


def test_evaluate_prints_the_error_by_depth(world_dir, tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "m.json"
    assert main(["evaluate", "--data", str(world_dir), "--model", str(tiny_checkpoint), "--backend", "torch",
                 "--by-depth", "--by-row", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "abs_rel by true depth" in printed and "abs_rel by image rows" in printed
    report = json.loads(out.read_text())
    for name in ("by_depth", "by_row"):
        rows = report[name]
        assert sum(r["share"] for r in rows) == pytest.approx(1.0)
        assert all(r["contribution"] >= 0 for r in rows)
        # both split the same pixels, so their contributions add up to the same pooled abs_rel
        assert sum(r["contribution"] for r in rows) == pytest.approx(
            sum(r["contribution"] for r in report["by_depth"]))
    assert len(report["by_row"]) == 8
    assert main(["evaluate", "--data", str(world_dir), "--protocol", "make3d", "--by-depth"]) == 2
    assert main(["evaluate", "--data", str(world_dir), "--protocol", "make3d", "--by-row"]) == 2
