"""Sparsification curves, AUSE and rank correlation: what they say for known good, useless and inverted
uncertainties, and `spidepth evaluate --uncertainty` end to end."""
import json

import cv2
import numpy as np
import pytest

from spidepth_core.cli import main
from spidepth_core.sparsification import FRACTIONS, Sparsification, rank_correlation, remaining_error


def test_remaining_error_removes_the_highest_keys_first():
    error = np.array([1.0, 2.0, 3.0, 4.0])
    assert remaining_error(error, error, np.array([0.0, 0.25, 0.5, 0.75])).tolist() == [2.5, 2.0, 1.5, 1.0]
    assert remaining_error(error, -error, np.array([0.0, 0.5])).tolist() == [2.5, 3.5]


def test_rank_correlation_is_spearman():
    a = np.arange(100.0)
    assert rank_correlation(a, a**3) == pytest.approx(1.0)
    assert rank_correlation(a, -a) == pytest.approx(-1.0)


def _report(make_uncertainty, images=5):
    rng = np.random.default_rng(0)
    acc = Sparsification()
    for _ in range(images):
        gt = rng.uniform(2, 40, 5000)
        pred = gt * np.exp(rng.normal(0, 0.2, gt.size))
        acc.add(gt, pred, make_uncertainty(gt, pred, rng))
    return acc.report()


def test_a_good_uncertainty_beats_chance_and_a_useless_one_does_not():
    good = _report(lambda gt, pred, rng: np.abs(pred - gt) * rng.uniform(0.7, 1.3, gt.size))
    useless = _report(lambda gt, pred, rng: rng.random(gt.size))
    inverted = _report(lambda gt, pred, rng: 1 / (np.abs(pred - gt) + 1e-3))
    for kind in ("abs", "abs_rel"):
        assert good[kind]["ause_ratio"] < 0.3 and good[kind]["spearman"] > 0.8
        assert 0.8 < useless[kind]["ause_ratio"] < 1.2 and abs(useless[kind]["spearman"]) < 0.05
        assert inverted[kind]["ause_ratio"] > 1.5 and inverted[kind]["spearman"] < -0.5
    curve = good["abs"]["curves"]["by_uncertainty"]
    assert len(curve) == FRACTIONS.size and curve[-1] < curve[0]
    with pytest.raises(ValueError, match="same number"):
        Sparsification().add(np.ones(3), np.ones(3), np.ones(2))


def test_evaluate_reports_and_plots_the_uncertainty(world_dir, tiny_checkpoint, tmp_path, capsys):
    plot, out = tmp_path / "spars.png", tmp_path / "m.json"
    assert main(["evaluate", "--data", str(world_dir), "--model", str(tiny_checkpoint), "--backend", "torch",
                 "--uncertainty", str(plot), "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "|error| (m) by uncertainty (m): AUSE" in text and "abs_rel by uncertainty / depth" in text
    report = json.loads(out.read_text())["uncertainty"]
    assert report["images"] == 48 and np.isfinite(report["abs"]["ause"]) and -1 <= report["abs"]["spearman"] <= 1
    image = cv2.imread(str(plot))
    assert image is not None and image.shape == (480, 1280, 3)
    assert main(["evaluate", "--data", str(world_dir), "--protocol", "make3d", "--uncertainty", str(plot)]) == 2
