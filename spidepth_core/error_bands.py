"""Where the error sits: abs_rel per band of true depth, pooled over pixels.

Each band reports its share of the valid pixels, its own abs_rel, its contribution to the pooled
abs_rel (share x abs_rel; the contributions add up to the pooled figure) and the mean log(pred / gt),
whose sign says whether that band is seen too far (+) or too near (-).
"""
from __future__ import annotations

import numpy as np

EDGES = (0.0, 3.0, 5.0, 8.0, 12.0, 20.0, 40.0, 80.0)  # metres


def band_edges(max_depth: float) -> tuple[float, ...]:
    """The standard edges below ``max_depth``, closed by it (so every evaluated pixel has a band)."""
    return tuple(e for e in EDGES if e < max_depth) + (float(max_depth),)


class ErrorByDepth:
    """Accumulates pixels; ``add`` once per evaluated image."""

    def __init__(self, edges: tuple[float, ...] = EDGES) -> None:
        if len(edges) < 2 or any(b <= a for a, b in zip(edges, edges[1:])):
            raise ValueError(f"depth band edges must rise, got {edges}")
        self.edges = np.asarray(edges, np.float64)
        bands = len(edges) - 1
        self.pixels = np.zeros(bands, np.int64)
        self.abs_rel = np.zeros(bands)
        self.log_ratio = np.zeros(bands)

    def add(self, gt: np.ndarray, pred: np.ndarray) -> None:
        """Valid pixels only (gt > 0), depth already scaled as evaluated."""
        if gt.shape != pred.shape:
            raise ValueError(f"gt {gt.shape} and pred {pred.shape} differ")
        band = np.searchsorted(self.edges, gt, side="right") - 1
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
            rows.append({"depth_m": [float(self.edges[i]), float(self.edges[i + 1])],
                         "share": count / total, "abs_rel": mean,
                         "contribution": self.abs_rel[i] / total,
                         "log_ratio": self.log_ratio[i] / count if count else float("nan")})
        return rows

    def table(self) -> str:
        lines = ["| true depth | pixels | abs_rel | contribution | mean log(pred/gt) |", "|---|---|---|---|---|"]
        rows = self.rows()
        for r in rows:
            lo, hi = r["depth_m"]
            lines.append(f"| {lo:g}-{hi:g} m | {r['share']:.1%} | {r['abs_rel']:.3f} | {r['contribution']:.3f} "
                         f"| {r['log_ratio']:+.3f} |")
        pooled = sum(r["contribution"] for r in rows)
        lines.append(f"| all | 100% | {pooled:.3f} | {pooled:.3f} | |")
        return "\n".join(lines)
