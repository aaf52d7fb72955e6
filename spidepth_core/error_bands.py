"""Where the error sits: abs_rel per band of true depth, or of image rows, pooled over pixels.

Each band reports its share of the valid pixels, its own abs_rel, its contribution to the pooled
abs_rel (share x abs_rel; the contributions add up to the pooled figure) and the mean log(pred / gt),
whose sign says whether that band is seen too far (+) or too near (-).
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

EDGES = (0.0, 3.0, 5.0, 8.0, 12.0, 20.0, 40.0, 80.0)  # metres
ROW_BANDS = 8


def band_edges(max_depth: float) -> tuple[float, ...]:
    """The standard edges below ``max_depth``, closed by it (so every evaluated pixel has a band)."""
    return tuple(e for e in EDGES if e < max_depth) + (float(max_depth),)


def _metres(lo: float, hi: float) -> str:
    return f"{lo:g}-{hi:g} m"


def _height_share(lo: float, hi: float) -> str:
    return f"{lo:.1%}-{hi:.1%}"


def _true_depth(gt: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    return gt


def row_position(mask: np.ndarray) -> np.ndarray:
    """Each selected pixel's row centre as a share of the image height, in ``image[mask]`` order."""
    return (np.nonzero(mask)[0] + 0.5) / mask.shape[0]


def _row_key(gt: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    if mask is None:
        raise ValueError("row bands need the image mask the pixels were taken with")
    return row_position(mask)


PixelKey = Callable[[np.ndarray, np.ndarray | None], np.ndarray]  # (gt pixels, image mask) -> key per pixel


class ErrorBands:
    """Accumulates pixels into bands of a key (``key``: true depth by default); ``add`` once per image.

    ``title`` and ``label`` name the key in the table.
    """

    def __init__(self, edges: tuple[float, ...] = EDGES, title: str = "true depth",
                 label: Callable[[float, float], str] = _metres, key: PixelKey = _true_depth) -> None:
        if len(edges) < 2 or any(b <= a for a, b in zip(edges, edges[1:])):
            raise ValueError(f"band edges must rise, got {edges}")
        self.edges = np.asarray(edges, np.float64)
        self.title, self.label, self.key = title, label, key
        bands = len(edges) - 1
        self.pixels = np.zeros(bands, np.int64)
        self.abs_rel = np.zeros(bands)
        self.log_ratio = np.zeros(bands)

    def add(self, gt: np.ndarray, pred: np.ndarray, mask: np.ndarray | None = None) -> None:
        """Valid pixels only (gt > 0), depth already scaled as evaluated, taken from an image by ``mask``."""
        key = self.key(gt, mask)
        if gt.shape != pred.shape or key.shape != gt.shape:
            raise ValueError(f"gt {gt.shape}, pred {pred.shape} and key {key.shape} differ")
        band = np.searchsorted(self.edges, key, side="right") - 1
        inside = (band >= 0) & (band < self.pixels.size)
        band, gt, pred = band[inside], gt[inside], pred[inside]
        n = self.pixels.size
        self.pixels += np.bincount(band, minlength=n)
        self.abs_rel += np.bincount(band, np.abs(pred - gt) / gt, minlength=n)
        self.log_ratio += np.bincount(band, np.log(pred / gt), minlength=n)

    def rows(self) -> list[dict]:
        total = max(int(self.pixels.sum()), 1)
        rows = []
        for i, count in enumerate(self.pixels):
            mean = self.abs_rel[i] / count if count else float("nan")
            rows.append({"band": [float(self.edges[i]), float(self.edges[i + 1])],
                         "share": count / total, "abs_rel": mean,
                         "contribution": self.abs_rel[i] / total,
                         "log_ratio": self.log_ratio[i] / count if count else float("nan")})
        return rows

    def table(self) -> str:
        lines = [f"| {self.title} | pixels | abs_rel | contribution | mean log(pred/gt) |", "|---|---|---|---|---|"]
        rows = self.rows()
        for r in rows:
            lines.append(f"| {self.label(*r['band'])} | {r['share']:.1%} | {r['abs_rel']:.3f} "
                         f"| {r['contribution']:.3f} | {r['log_ratio']:+.3f} |")
        pooled = sum(r["contribution"] for r in rows)
        lines.append(f"| all | 100% | {pooled:.3f} | {pooled:.3f} | |")
        return "\n".join(lines)


def depth_bands(max_depth: float) -> ErrorBands:
    """Bands of true depth up to ``max_depth``."""
    return ErrorBands(band_edges(max_depth))


def row_bands(count: int = ROW_BANDS) -> ErrorBands:
    """``count`` equal bands of image rows, top first."""
    return ErrorBands(tuple(np.linspace(0.0, 1.0, count + 1)), "image rows (top = 0%)", _height_share, _row_key)
