"""Power-law tail fits of an ESD (Hill estimator with three xmin rules).

alpha = 1 + n / (sum(log l_i) - n log xmin) over the tail l_i >= xmin (n eigenvalues);
D = max_k |1 - (l_k / xmin)^(1 - alpha) - k / n|, k = 0..n-1 over the ascending tail,
exactly as in the FARMS / AlphaPruning / TempBalance releases.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Eigenvalues at or below this are dropped before fitting (the releases' EVALS_THRESH).
EVALS_THRESH = 1e-5
#: Fewer eigenvalues than this: no fit (the releases' eigs_num_thresh).
MIN_EIGS = 5
PEAK_BINS = 100


@dataclass(frozen=True)
class PowerLawFit:
    """A power-law tail fit: p(l) ~ l^-alpha for l >= xmin."""

    alpha: float
    xmin: float
    D: float
    n_tail: int
    n_eigs: int
    method: str
    status: str = "ok"

    @classmethod
    def failed(cls, method: str, n_eigs: int, status: str) -> "PowerLawFit":
        return cls(math.nan, math.nan, math.nan, 0, n_eigs, method, status)


def nonzero_eigs(eigs: np.ndarray, dim: int = 1, thresh: float = 0.0) -> np.ndarray:
    """Ascending float64 eigenvalues that are numerically nonzero (and above ``thresh``).

    An eigenvalue l = s^2 computed from float32 singular values is zero up to round-off
    when s <= s_max * dim * eps(float32), i.e. l <= l_max * (dim * eps)^2, where ``dim`` is
    the largest side of the matrix (or window) it came from. Those are dropped, since their
    logs are noise; a full-rank ESD loses nothing. ``thresh`` adds an absolute floor
    (WeightWatcher's 1e-5 for the ``ks`` rule).
    """
    e = np.sort(np.asarray(eigs, dtype=np.float64).ravel())
    e = e[np.isfinite(e)]
    if e.size == 0:
        return e
    tol = max(thresh, float(e[-1]) * (max(1, dim) * float(np.finfo(np.float32).eps)) ** 2)
    return e[e > tol]


def hill_alpha(tail: np.ndarray, xmin: float) -> float:
    """Hill (maximum-likelihood) exponent of a continuous power law above xmin."""
    n = tail.size
    return 1.0 + n / (np.sum(np.log(tail)) - n * math.log(xmin))


def ks_distance(tail: np.ndarray, xmin: float, alpha: float) -> float:
    """The releases' KS distance between the ascending tail and the fitted power-law CDF."""
    n = tail.size
    fit_cdf = 1.0 - (tail / xmin) ** (1.0 - alpha)
    return float(np.max(np.abs(fit_cdf - np.arange(n) / n)))


def peak_xmin(nz: np.ndarray, bins: int = PEAK_BINS) -> float:
    """Left edge of the tallest of ``bins`` equal bins of log10(l) over [min, max] (xmin_peak's anchor)."""
    logs = np.log10(nz)
    lo, hi = float(logs[0]), float(logs[-1])
    if hi <= lo:
        return float(nz[0])
    counts, edges = np.histogram(logs, bins=bins, range=(lo, hi))
    return float(10 ** edges[int(np.argmax(counts))])


def _search(nz: np.ndarray, n_cand: int, max_elems: int = 1 << 23) -> tuple[int, float, float]:
    """Exact argmin of D over candidate xmin indices 0..n_cand-1, vectorised in chunks.

    Ties go to the smallest index (as torch.argmin in the releases). Candidates
    whose alpha <= 1 keep D = 1, as in the releases.
    """
    N = nz.size
    logs = np.log(nz)
    suffix = np.cumsum(logs[::-1])[::-1]  # suffix[i] = sum(logs[i:])
    idx = np.arange(n_cand)
    n = (N - idx).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        alphas = 1.0 + n / (suffix[:n_cand] - n * logs[:n_cand])
    Ds = np.ones(n_cand)
    s = 0
    while s < n_cand:
        width = N - s  # longest tail in this chunk
        c = max(1, min(n_cand - s, max_elems // max(1, width)))
        ii = idx[s : s + c]
        k = np.arange(width)
        j = ii[:, None] + k[None, :]
        valid = j < N
        jc = np.minimum(j, N - 1)
        a = alphas[ii][:, None]
        with np.errstate(over="ignore", invalid="ignore"):
            fit = 1.0 - np.exp((1.0 - a) * (logs[jc] - logs[ii][:, None]))
            dev = np.abs(fit - k[None, :] / n[ii][:, None])
        dev = np.where(valid, dev, 0.0)
        d = dev.max(axis=1)
        ok = alphas[ii] > 1
        Ds[s : s + c] = np.where(ok & np.isfinite(d), d, 1.0)
        s += c
    best = int(np.argmin(Ds))
    return best, float(alphas[best]), float(Ds[best])


def fit_power_law(eigs: np.ndarray, method: str = "xmin_peak", xmin_pos: float = 2.0,
                  bins: int = PEAK_BINS, dim: int = 1) -> PowerLawFit:
    """Fit the ESD's power-law tail with one of the xmin rules.

    xmin_mid   xmin = l[int(N / xmin_pos)] of the ascending array (TempBalance).
    xmin_peak  xmin minimising D among eigenvalues up to 1.5x the ESD's log-histogram
               peak (what the FARMS and AlphaPruning releases effectively do; their
               lower bound compares l with log10(0.95 * peak) and is dropped here).
    ks         xmin minimising D over every eigenvalue > 1e-5 (WeightWatcher's default).

    Numerically-zero eigenvalues are dropped first (see :func:`nonzero_eigs`; ``dim`` is the
    largest side of the matrices the ESD came from). Like the FARMS release
    (``filter_zeros=False``), xmin_mid and xmin_peak keep every other eigenvalue.
    """
    nz = nonzero_eigs(eigs, dim, EVALS_THRESH if method == "ks" else 0.0)
    N = nz.size
    if N < MIN_EIGS:
        return PowerLawFit.failed(method, N, f"too few nonzero eigenvalues for a fit ({N} < {MIN_EIGS})")
    if nz[-1] <= nz[0] * (1 + 1e-12):
        return PowerLawFit.failed(method, N, "all eigenvalues are equal; no tail to fit")
    if method == "xmin_mid":
        i = int(N / xmin_pos)
        i = min(i, N - 2)
        xmin = float(nz[i])
        tail = nz[i:]
        alpha = hill_alpha(tail, xmin)
        if not np.isfinite(alpha):
            return PowerLawFit.failed(method, N, "the tail above xmin is flat; alpha is undefined")
        return PowerLawFit(float(alpha), xmin, ks_distance(tail, xmin, alpha), tail.size, N, method)
    if method == "xmin_peak":
        xmax = 1.5 * peak_xmin(nz, bins)
        n_cand = int(np.searchsorted(nz[:-1], xmax, side="right"))
    elif method == "ks":
        n_cand = N - 1
    else:
        raise ValueError(f"unknown fit method {method!r}")
    if n_cand == 0:
        n_cand = 1
    i, alpha, D = _search(nz, n_cand)
    if not (alpha > 1 and np.isfinite(alpha)):
        return PowerLawFit.failed(method, N, "no xmin gives a power law with alpha > 1")
    return PowerLawFit(alpha, float(nz[i]), D, N - i, N, method)


def power_law_pdf(x: np.ndarray, alpha: float, xmin: float) -> np.ndarray:
    """Density of the fitted power law, (alpha-1)/xmin (x/xmin)^-alpha for x >= xmin, else 0."""
    x = np.asarray(x, dtype=np.float64)
    return np.where(x >= xmin, (alpha - 1) / xmin * (x / xmin) ** (-alpha), 0.0)
