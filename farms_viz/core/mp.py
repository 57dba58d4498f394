"""Marchenko-Pastur law for the ESD of W^T W, W of shape N x M (N >= M), i.i.d. entries.

With Q = N / M >= 1 and ``scale`` = N * sigma^2 (sigma^2 the entry variance), the
eigenvalues of W^T W follow, as N, M -> inf,
    p(l) = Q / (2 pi scale l) * sqrt((l+ - l)(l - l-)),   l+- = scale (1 +- 1/sqrt(Q))^2,
whose mean is ``scale``. The largest eigenvalue of a pure-noise matrix fluctuates on the
Tracy-Widom scale sigma^2 (sqrt N + sqrt M)(1/sqrt N + 1/sqrt M)^(1/3).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def mp_edges(Q: float, scale: float) -> tuple[float, float]:
    """Bulk edges (l-, l+) of the MP law."""
    r = 1.0 / math.sqrt(Q)
    return scale * (1 - r) ** 2, scale * (1 + r) ** 2


def mp_density(x: np.ndarray, Q: float, scale: float) -> np.ndarray:
    """MP density at x (zero outside the bulk; the point mass at 0 for Q < 1 does not arise here)."""
    x = np.asarray(x, dtype=np.float64)
    lo, hi = mp_edges(Q, scale)
    inside = (x > lo) & (x < hi) & (x > 0)
    out = np.zeros_like(x)
    xi = x[inside]
    out[inside] = Q / (2 * math.pi * scale * xi) * np.sqrt((hi - xi) * (xi - lo))
    return out


def tracy_widom_scale(n_long: int, n_short: int, scale: float) -> float:
    """Fluctuation scale of the top eigenvalue of a pure-noise W^T W."""
    s2 = scale / n_long
    a, b = math.sqrt(n_long), math.sqrt(n_short)
    return s2 * (a + b) * (1 / a + 1 / b) ** (1 / 3)


@dataclass(frozen=True)
class MPFit:
    """An MP fit to an ESD: Q, scale, the entry std sigma, the bulk edges and spikes above l+."""

    Q: float
    scale: float
    sigma: float
    lambda_minus: float
    lambda_plus: float
    n_spikes: int


def fit_mp(eigs: np.ndarray, n_long: int, n_short: int, max_iter: int = 50) -> MPFit:
    """Fit the MP scale to the bulk of an ESD and count the spikes.

    The scale is the mean of the eigenvalues inside the bulk edge plus one Tracy-Widom
    scale, iterated to a fixed point, so spikes (signal) do not inflate the noise level.
    Spikes are eigenvalues above l+ plus that margin.
    """
    e = np.asarray(eigs, dtype=np.float64)
    e = e[np.isfinite(e)]
    Q = n_long / n_short
    if e.size == 0 or not np.any(e > 0):
        return MPFit(Q, math.nan, math.nan, math.nan, math.nan, 0)
    scale = float(e.mean())
    for _ in range(max_iter):
        hi = mp_edges(Q, scale)[1] + tracy_widom_scale(n_long, n_short, scale)
        bulk = e[e <= hi]
        new = float(bulk.mean()) if bulk.size else scale
        if abs(new - scale) <= 1e-10 * scale:
            scale = new
            break
        scale = new
    lo, hi = mp_edges(Q, scale)
    margin = tracy_widom_scale(n_long, n_short, scale)
    return MPFit(Q, scale, math.sqrt(scale / n_long), lo, hi, int(np.sum(e > hi + margin)))
