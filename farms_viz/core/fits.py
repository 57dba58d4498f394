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
    #: fits averaged into this one (the release's conv rule: one fit per block, see mean_fit)
    n_blocks: int = 1
    #: blocks left out of that mean for want of an honest fit (e.g. a dead channel's zero kernel)
    n_blocks_failed: int = 0

    @classmethod
    def failed(cls, method: str, n_eigs: int, status: str) -> "PowerLawFit":
        return cls(math.nan, math.nan, math.nan, 0, n_eigs, method, status)


def mean_fit(fits: list[PowerLawFit]) -> PowerLawFit:
    """The FARMS release's conv result: alpha, xmin and D averaged over the blocks' fits.

    The release averages every block's number; blocks without an honest fit (a status: e.g. a
    depthwise channel whose kernel is all zeros, rank < 5) are left out of the mean here instead
    of entering it with a number fitted to round-off, and counted in ``n_blocks_failed``. The
    layer's status is ``ok`` while at least one block has a fit.
    """
    ok = [f for f in fits if f.status == "ok"]
    n_eigs = sum(f.n_eigs for f in fits)
    method = fits[0].method if fits else ""
    if not ok:
        status = fits[0].status if fits else "no blocks"
        return PowerLawFit(math.nan, math.nan, math.nan, 0, n_eigs, method, status, 0, len(fits))
    return PowerLawFit(float(np.mean([f.alpha for f in ok])), float(np.mean([f.xmin for f in ok])),
                       float(np.mean([f.D for f in ok])), sum(f.n_tail for f in ok), n_eigs, method,
                       "ok", len(ok), len(fits) - len(ok))


def nonzero_eigs(eigs: np.ndarray, dim: int = 1) -> np.ndarray:
    """Ascending float64 eigenvalues for display: finite and above round-off, l > l_max (dim eps32)^2.

    The fits use :func:`positive_eigs` (every positive eigenvalue, as the release); a plot on a log
    axis leaves out values at round-off level, which would stretch it over tens of empty decades.
    """
    e = np.sort(np.asarray(eigs, dtype=np.float64).ravel())
    e = e[np.isfinite(e)]
    if e.size == 0:
        return e
    tol = float(e[-1]) * (max(1, dim) * float(np.finfo(np.float32).eps)) ** 2
    return e[e > tol]


def hill_alpha(tail: np.ndarray, xmin: float) -> float:
    """Hill (maximum-likelihood) exponent of a continuous power law above xmin."""
    n = tail.size
    with np.errstate(divide="ignore"):
        return float(1.0 + np.float64(n) / (np.sum(np.log(tail)) - n * math.log(xmin)))


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


def _search(nz: np.ndarray, n_cand: int, max_elems: int = 1 << 22, start: int = 0) -> tuple[int, float, float]:
    """Exact argmin of D over candidate xmin indices start..n_cand-1, without a per-candidate loop.

    For candidate i the fitted CDF F(j) = 1 - (l_j/l_i)^(1-alpha_i) and the empirical
    E(j) = (j-i)/n_i both increase with j, so on a block of tail positions [p, q] the
    deviation |F - E| is at most max(F(q) - E(p), E(q) - F(p)). Evaluating D on block
    edges gives a lower bound and the block bounds an upper bound. Stage 1 bounds every
    candidate on a coarse grid and drops those whose lower bound exceeds the best upper
    bound (they cannot be the argmin); stage 2 gets the survivors' D exactly, evaluating
    point by point only the blocks whose bound exceeds the edge maximum. The result
    equals the full O(N^2) scan exactly. Ties go to the smallest index (as torch.argmin
    in the releases); candidates whose alpha <= 1 keep D = 1, as in the releases.
    Candidates below ``start`` are skipped as the release skips them: alpha 0 and D = 1, so
    when no candidate in range has D < 1 the result is index 0 with alpha 0 (no fit).
    """
    N = nz.size
    logs = np.log(nz)
    suffix = np.cumsum(logs[::-1])[::-1]  # suffix[i] = sum(logs[i:])
    cand = np.arange(n_cand)
    n_all = (N - cand).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        alphas = 1.0 + n_all / (suffix[:n_cand] - n_all * logs[:n_cand])
    Ds = np.ones(n_cand)
    alphas[:start] = 0.0
    ok = np.flatnonzero((alphas > 1) & np.isfinite(alphas))
    if ok.size == 0:
        return 0, float(alphas[0]), 1.0

    def fe(ii, jj):
        """F and E for candidates ii (column vector) at tail positions jj (j >= i)."""
        with np.errstate(over="ignore", invalid="ignore"):
            f = 1.0 - np.exp((1.0 - alphas[ii]) * (logs[jj] - logs[ii]))
        return f, (jj - ii) / (N - ii)

    def bounds(ii, jj):
        f, e = fe(ii, jj)
        lo = np.abs(f - e).max(axis=1)
        ub = np.maximum(f[:, 1:] - e[:, :-1], e[:, 1:] - f[:, :-1])
        return lo, ub

    # stage 1: lower/upper bounds from G equally spaced positions over each tail, coarse
    # then finer, each level pruning by the best upper bound known so far
    keep, best_hi = ok, np.inf
    for G in (32, 256, 2048):
        lo1 = np.empty(keep.size)
        hi1 = np.empty(keep.size)
        per = max(1, max_elems // (G + 1))
        k = np.arange(G + 1)[None, :]
        for s in range(0, keep.size, per):
            ii = keep[s : s + per][:, None]
            jj = ii + (k * (N - 1 - ii)) // G
            lo, ub = bounds(ii, jj)
            lo1[s : s + per] = lo
            hi1[s : s + per] = np.maximum(lo, np.nan_to_num(ub, nan=1.0).max(axis=1))
        best_hi = min(best_hi, float(np.nanmin(hi1)))
        keep = keep[lo1 <= best_hi]

    # stage 2: exact D for the survivors on blocks of B positions, refining where needed
    B = int(min(1024, max(8, np.sqrt(N))))
    n_grid = (N + B - 1) // B + 1
    per = max(1, max_elems // n_grid)
    for s in range(0, keep.size, per):
        ii = keep[s : s + per][:, None]
        jj = np.minimum(ii + B * np.arange(n_grid)[None, :], N - 1)
        d, ub = bounds(ii, jj)
        rr, bb = np.nonzero(ub > d[:, None])
        step = max(1, max_elems // (B + 1))
        for t in range(0, rr.size, step):
            r, b = rr[t : t + step], bb[t : t + step]
            ci = ii[r, 0][:, None]
            pj = np.minimum(jj[r, b][:, None] + np.arange(B + 1)[None, :], N - 1)
            f2, e2 = fe(ci, pj)
            np.maximum.at(d, r, np.abs(f2 - e2).max(axis=1))
        Ds[keep[s : s + per]] = np.where(np.isfinite(d), d, 1.0)
    best = int(np.argmin(Ds))
    return best, float(alphas[best]), float(Ds[best])


def positive_eigs(eigs: np.ndarray) -> np.ndarray:
    """Ascending float64 eigenvalues that are finite and > 0: what the releases fit.

    The FARMS release keeps every eigenvalue (``filter_zeros=False``); only exact zeros (and
    round-off values <= 0, which its ``svdvals`` cannot produce) have no logarithm. The tiny
    eigenvalues are real and matter: they set the log-histogram's range, hence the peak bin,
    hence xmin_peak's search range (one of 5,760 moved a MiniLM alpha by 22%).
    """
    e = np.sort(np.asarray(eigs, dtype=np.float64).ravel())
    return e[np.isfinite(e) & (e > 0)]


def numerical_rank(nz: np.ndarray, dim: int = 1) -> int:
    """How many of the ascending eigenvalues ``nz`` exceed float64 round-off, l_max * dim * 16 eps.

    farms-viz's eigenvalues come from float64 Gram matrices wherever small ones matter (see
    spectra.matrix_eigs), accurate to about dim * eps * l_max; below that they are round-off.
    A rank-deficient layer (e.g. rank 1) keeps its fit only if this rank reaches MIN_EIGS.
    """
    if nz.size == 0:
        return 0
    return int(np.sum(nz > nz[-1] * max(1, dim) * 16 * np.finfo(np.float64).eps))


def peak_bounds(nz: np.ndarray, bins: int = PEAK_BINS) -> tuple[int, int]:
    """Candidate xmin indices [start, stop) of the release's xmin_peak rule.

    With p the left edge of the tallest log10 bin, the release skips candidates l with
    ``l < log10(0.95 p)`` (an eigenvalue compared with a logarithm, so the bound only bites
    when p > ~1.05, and makes alpha depend on the weights' scale) and stops at l > 1.5 p.
    Both are reproduced, since the paper's numbers came from them.
    """
    p = peak_xmin(nz, bins)
    lo = math.log10(0.95 * p)
    start = int(np.searchsorted(nz[:-1], lo, side="left"))
    stop = int(np.searchsorted(nz[:-1], 1.5 * p, side="right"))
    return start, stop


#: WeightWatcher fits fewer eigenvalues than this with its small-sample estimator (SMALL_N_CUTOFF).
SMALL_N = 20
#: ... whose candidate tails have at least this many eigenvalues (WW's k_min).
SMALL_N_TAIL = 8


def _small_n_fit(nz: np.ndarray, method: str) -> PowerLawFit:
    """WeightWatcher 0.7.7's fit of fewer than SMALL_N eigenvalues (``fit_powerlaw_smallN``).

    Candidates: tails of n >= SMALL_N_TAIL eigenvalues with s = sum(log(l / xmin)) > 1e-12;
    alpha = 1 + (n - 1) / s (the bias-corrected Hill estimator), D as everywhere; the first
    minimum of D is kept (candidates with alpha <= 1 keep D = 1), as WW's analyze() reports.
    No candidate: the whole sample is the tail.
    """
    N = nz.size
    logs = np.log(nz)
    alphas, Ds = np.zeros(N - 1), np.ones(N - 1)

    def hill(i: int) -> float:
        n = N - i
        s = float(np.sum(logs[i:]) - n * logs[i])
        return 1.0 + (n - 1.0) / s if s > 1e-12 else math.nan

    cands = [i for i in range(N - SMALL_N_TAIL + 1) if np.isfinite(hill(i))]
    for i in cands or [0]:
        alphas[i] = a = hill(i)
        if a > 1:
            Ds[i] = ks_distance(nz[i:], float(nz[i]), a)
    i = int(np.argmin(Ds))
    if not (alphas[i] > 1 and np.isfinite(alphas[i])):
        return PowerLawFit.failed(method, N, "no xmin gives a power law with alpha > 1")
    return PowerLawFit(float(alphas[i]), float(nz[i]), float(Ds[i]), N - i, N, method)


def fit_power_law(eigs: np.ndarray, method: str = "xmin_peak", xmin_pos: float = 2.0,
                  bins: int = PEAK_BINS, dim: int = 1) -> PowerLawFit:
    """Fit the ESD's power-law tail with one of the xmin rules.

    xmin_mid   xmin = l[int(N / xmin_pos)] of the ascending array (TempBalance). A tail of
               fewer than MIN_EIGS eigenvalues is no fit: with 2, alpha = 1 + 2 / log(l_N / l_N-1)
               is set by one gap (alpha 5926 for two close eigenvalues, reported as ok before).
    xmin_peak  xmin minimising D among eigenvalues l with log10(0.95 p) <= l <= 1.5 p, p the
               left edge of the tallest of 100 log10 bins (the FARMS / AlphaPruning
               releases, lower bound included; see :func:`peak_bounds`).
    ks         xmin minimising D over every eigenvalue > 1e-5 but the largest
               (WeightWatcher 0.7.7's default fit); on fewer than 20 such eigenvalues its
               small-sample estimator (see :func:`_small_n_fit`).

    xmin_mid and xmin_peak fit every positive eigenvalue, like the release
    (``filter_zeros=False``; see :func:`positive_eigs`); ``ks`` those > 1e-5, like
    WeightWatcher. A spectrum whose numerical rank (``dim``: the largest side of the matrices
    it came from, see :func:`numerical_rank`) is below MIN_EIGS gets no fit.
    """
    nz = positive_eigs(eigs)
    if method == "ks":
        nz = nz[nz > EVALS_THRESH]
    rank = numerical_rank(nz, dim)
    N = nz.size
    if rank < MIN_EIGS:
        return PowerLawFit.failed(method, N, f"too few nonzero eigenvalues for a fit ({rank} < {MIN_EIGS})")
    if nz[-1] <= nz[0] * (1 + 1e-12):
        return PowerLawFit.failed(method, N, "all eigenvalues are equal; no tail to fit")
    if method == "xmin_mid":
        i = int(N / xmin_pos)
        i = min(i, N - 2)
        if N - i < MIN_EIGS:  # the tail is the sample the fit sees: the releases' minimum applies
            return PowerLawFit.failed(method, N, f"xmin_pos {xmin_pos} leaves {N - i} eigenvalues in the tail; "
                                                 f"a fit needs at least {MIN_EIGS} (lower xmin_pos)")
        xmin = float(nz[i])
        tail = nz[i:]
        alpha = hill_alpha(tail, xmin)
        if not np.isfinite(alpha):
            return PowerLawFit.failed(method, N, "the tail above xmin is flat; alpha is undefined")
        return PowerLawFit(float(alpha), xmin, ks_distance(tail, xmin, alpha), tail.size, N, method)
    start = 0
    if method == "xmin_peak":
        start, n_cand = peak_bounds(nz, bins)
    elif method == "ks" and N < SMALL_N:
        return _small_n_fit(nz, method)
    elif method == "ks":
        n_cand = N - 1
    else:
        raise ValueError(f"unknown fit method {method!r}")
    if n_cand == 0:
        n_cand = 1
    i, alpha, D = _search(nz, n_cand, start=min(start, n_cand))
    if not (alpha > 1 and np.isfinite(alpha)):
        return PowerLawFit.failed(method, N, "no xmin gives a power law with alpha > 1")
    return PowerLawFit(alpha, float(nz[i]), D, N - i, N, method)
