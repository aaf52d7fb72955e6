"""Does the uncertainty mean something? Sparsification curves, AUSE and rank correlation against GT.

Remove the most uncertain pixels first, a growing fraction at a time, and track the mean error of those
left: a useful uncertainty makes the error fall. The oracle removes the pixels with the largest true error
first (the best any ranking can do); a random ranking leaves the mean error flat. AUSE is the area between
the uncertainty curve and the oracle (lower is better); ``ause_ratio`` divides it by a random ranking's
(0: as good as the oracle, 1: no better than chance, above 1: worse). Curves are per image, then averaged.
Two pairings: absolute error (m) ranked by the uncertainty (m), and abs_rel ranked by uncertainty / depth.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

FRACTIONS = np.linspace(0.0, 0.98, 50)
RANK_SAMPLES = 2000  # pixels per image for the pooled rank correlation


def remaining_error(error: np.ndarray, key: np.ndarray, fractions: np.ndarray = FRACTIONS) -> np.ndarray:
    """Mean of ``error`` over the pixels left after removing each fraction with the highest ``key``."""
    ordered = error[np.argsort(-key, kind="stable")]
    tail_sums = np.cumsum(ordered[::-1])[::-1]  # tail_sums[k] = sum of ordered[k:]
    removed = (fractions * ordered.size).astype(int)
    return tail_sums[removed] / (ordered.size - removed)


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rho (ties broken by order, fine for continuous values)."""
    ra = np.argsort(np.argsort(a)).astype(np.float64)
    rb = np.argsort(np.argsort(b)).astype(np.float64)
    return float(np.corrcoef(ra, rb)[0, 1])


# (error, ranked by): absolute error in metres by the uncertainty in metres, and the relative error
# (abs_rel) by the relative uncertainty (uncertainty / depth).
KINDS = ("abs", "abs_rel")


@dataclass
class Sparsification:
    """Accumulates per-image curves; ``add`` once per evaluated image."""

    seed: int = 0
    curves: dict[str, dict[str, list]] = field(
        default_factory=lambda: {k: {"by_uncertainty": [], "oracle": [], "random": []} for k in KINDS})
    samples: dict[str, list[tuple[np.ndarray, np.ndarray]]] = field(default_factory=lambda: {k: [] for k in KINDS})
    depths: list[np.ndarray] = field(default_factory=list)  # GT of the sampled pixels

    def add(self, gt: np.ndarray, pred: np.ndarray, uncertainty: np.ndarray) -> None:
        """Valid pixels only, depth already scaled as evaluated, uncertainty scaled the same way."""
        if not gt.size == pred.size == uncertainty.size or gt.size < 2:
            raise ValueError("gt, pred and uncertainty need the same number (>= 2) of valid pixels")
        error = np.abs(pred - gt)
        pairs = {"abs": (error, uncertainty), "abs_rel": (error / gt, uncertainty / pred)}
        pick = np.random.default_rng(self.seed + len(self.samples["abs"])).permutation(gt.size)[:RANK_SAMPLES]
        for kind, (err, key) in pairs.items():
            c = self.curves[kind]
            c["by_uncertainty"].append(remaining_error(err, key))
            c["oracle"].append(remaining_error(err, err))
            c["random"].append(np.full(FRACTIONS.size, err.mean()))
            self.samples[kind].append((key[pick], err[pick]))
        self.depths.append(gt[pick])

    def report(self) -> dict:
        """Per kind: AUSE, a random ranking's AUSE, their ratio, Spearman rho of uncertainty vs error, and
        the mean curves."""
        if not self.samples["abs"]:
            raise ValueError("no images with uncertainty were added")
        out: dict = {"images": len(self.samples["abs"]), "fraction_removed": FRACTIONS.tolist()}
        for kind in KINDS:
            mean = {name: np.mean(rows, axis=0) for name, rows in self.curves[kind].items()}
            ause = _area(mean["by_uncertainty"] - mean["oracle"])
            ause_random = _area(mean["random"] - mean["oracle"])
            gt = np.concatenate(self.depths)
            key = np.concatenate([s[0] for s in self.samples[kind]])
            err = np.concatenate([s[1] for s in self.samples[kind]])
            out[kind] = {"ause": ause, "ause_random": ause_random, "ause_ratio": ause / ause_random,
                         "spearman": rank_correlation(key, err), "spearman_by_depth": _by_depth(key, err, gt),
                         "curves": {n: v.tolist() for n, v in mean.items()}}
        return out


def _by_depth(key: np.ndarray, err: np.ndarray, gt: np.ndarray, bands: int = 5) -> list[dict]:
    """Spearman rho within each fifth of the pixels by true depth: what the uncertainty says beyond
    "far away is uncertain"."""
    edges = np.quantile(gt, np.linspace(0, 1, bands + 1))
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = (gt >= lo) & (gt <= hi)
        out.append({"depth_m": [float(lo), float(hi)], "spearman": rank_correlation(key[inside], err[inside])})
    return out


def _area(y: np.ndarray) -> float:
    """Trapezoid area under y over FRACTIONS."""
    return float(np.sum((y[1:] + y[:-1]) * np.diff(FRACTIONS)) / 2)


def plot(report: dict, path: str | Path) -> Path:
    """Both sparsification panels side by side as a PNG."""
    x = np.asarray(report["fraction_removed"])
    titles = {"abs": "|error| m, most uncertain (m) removed first",
              "abs_rel": "abs_rel, most uncertain (relative) removed first"}
    img = np.concatenate([_panel(x, report[k], titles[k]) for k in KINDS], axis=1)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), img[..., ::-1]):
        raise OSError(f"could not write {path}")
    return path


def _panel(x: np.ndarray, stats: dict, title: str, h: int = 480, w: int = 640) -> np.ndarray:
    """One panel: y is the mean error of the pixels kept, x the fraction removed."""
    left, right, top, bottom = 70, 20, 50, 50
    img = np.full((h, w, 3), 255, np.uint8)
    curves = stats["curves"]
    top_y = max(max(v) for v in curves.values()) * 1.05
    font = cv2.FONT_HERSHEY_SIMPLEX

    def to_px(fx: np.ndarray, fy: np.ndarray) -> np.ndarray:
        px = left + fx / x[-1] * (w - left - right)
        py = h - bottom - fy / top_y * (h - top - bottom)
        return np.stack([px, py], axis=1).round().astype(np.int32)

    cv2.rectangle(img, (left, top), (w - right, h - bottom), (0, 0, 0), 1)
    for frac in (0.0, 0.25, 0.5, 0.75):
        px = to_px(np.array([frac]), np.array([0.0]))[0]
        cv2.putText(img, f"{frac:.2f}", (int(px[0]) - 14, h - bottom + 18), font, 0.45, 0, 1)
    for value in np.linspace(0, top_y, 5)[1:]:
        py = to_px(np.array([0.0]), np.array([value]))[0][1]
        cv2.putText(img, f"{value:.3g}", (8, int(py) + 4), font, 0.45, 0, 1)
    colours = {"random": (160, 160, 160), "oracle": (40, 160, 40), "by_uncertainty": (200, 60, 30)}
    for i, (name, colour) in enumerate(colours.items()):
        cv2.polylines(img, [to_px(x, np.asarray(curves[name]))], False, colour, 2, cv2.LINE_AA)
        cv2.putText(img, name.replace("_", " "), (w - right - 120, 14 + 15 * i), font, 0.42, colour, 1,
                    cv2.LINE_AA)
    cv2.putText(img, title, (left, 20), font, 0.5, 0, 1, cv2.LINE_AA)
    cv2.putText(img, f"AUSE {stats['ause']:.3g} (random {stats['ause_random']:.3g})  Spearman {stats['spearman']:.2f}",
                (left, 40), font, 0.45, 0, 1, cv2.LINE_AA)
    cv2.putText(img, "fraction of pixels removed", (left + 170, h - 12), font, 0.45, 0, 1, cv2.LINE_AA)
    return img
