"""Marchenko-Pastur law for the ESD of W^T W, W of shape N x M (N >= M), i.i.d. entries.

With Q = N / M >= 1 and ``scale`` = N * sigma^2 (sigma^2 the entry variance), the
eigenvalues of W^T W follow, as N, M -> inf,
    p(l) = Q / (2 pi scale l) * sqrt((l+ - l)(l - l-)),   l+- = scale (1 +- 1/sqrt(Q))^2,
whose mean is ``scale``. The largest eigenvalue of a pure-noise matrix fluctuates on the
Tracy-Widom scale sigma^2 (sqrt N + sqrt M)(1/sqrt N + 1/sqrt M)^(1/3).

Two fits of that law to an ESD: :func:`fit_mp` (farms-viz's, for the MP overlay and n_spikes) and
:func:`fit_mp_kde`, WeightWatcher 0.7.7's ``mp_fit`` step for step (its mp_softrank, sigma_mp and the
randomized ESD's bulk edge and traps).
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


#: WW's MP fit: kernel-density bandwidth, grid size and the density below which grid points are
#: dropped from the residual (RMT_Util.py ``resid_mp`` 757-814).
KDE_BANDWIDTH = 0.1
KDE_POINTS = 1000
KDE_FLOOR = 0.01


# ---------------------------------------------------------------- WW's MP fit (mp_fit=True)

@dataclass(frozen=True)
class MPKdeFit:
    """WW's MP fit of an ESD (``mp_fit`` weightwatcher.py 4739-4834); NaN where WW reports -1.

    ``sigma`` is in the rescaled units (ESD times ``w_scale``^2, mean 1) as WW reports sigma_mp;
    ``bulk_min``, ``bulk_max`` and ``spike_edge`` (bulk_max plus WW's Tracy-Widom margin, above which
    an eigenvalue is a spike) are in the ESD's own units.
    """

    Q: float
    sigma: float
    bulk_min: float
    bulk_max: float
    spike_edge: float
    num_spikes: int
    mp_softrank: float
    w_scale: float

    @classmethod
    def failed(cls, Q: float) -> "MPKdeFit":
        return cls(Q, math.nan, math.nan, math.nan, math.nan, -1, math.nan, math.nan)


def linear_kde(data: np.ndarray, x: np.ndarray, h: float) -> np.ndarray:
    """sklearn's ``KernelDensity(kernel='linear', bandwidth=h)`` density of 1-D ``data`` at ``x``:
    sum_i max(0, 1 - |x - d_i| / h) / (n h), by prefix sums over the sorted data."""
    d = np.sort(data)
    c = np.concatenate(([0.0], np.cumsum(d)))
    lo = np.searchsorted(d, x - h, side="right")
    mid = np.searchsorted(d, x, side="right")
    hi = np.searchsorted(d, x + h, side="left")
    n_l, n_r = mid - lo, hi - mid
    left = n_l - (n_l * x - (c[mid] - c[lo])) / h
    right = n_r - ((c[hi] - c[mid]) - n_r * x) / h
    return (left + right) / (d.size * h)


#: Densities within this relative distance of the maximum are the same maximum: a linear-kernel
#: density is flat between some data points (on mobilenet-v2's depthwise layers, randomized: three
#: grid points tie at 3.32207569), and summation order alone picked a later one (1.6e-14 apart).
PEAK_TIE = 1e-12


def peak_index(y: np.ndarray) -> int:
    """The first grid point of the density's maximum (WW's ``xde[np.where(yde == max(yde))][0]``),
    ties taken within PEAK_TIE so the result does not hang on round-off."""
    return int(np.flatnonzero(y >= np.max(y) * (1 - PEAK_TIE))[0])


def _mp_residual(xg: np.ndarray, yg: np.ndarray, Q: float, sigmas: np.ndarray) -> np.ndarray:
    """WW's ``resid_mp(..., allresid=False)`` for each sigma: sum of squared residuals over the
    grid points xg where the density yg > KDE_FLOOR (the others add zeros).

    WW's ``nan_to_num`` of the density (NaN outside the bulk, from the square root of a negative
    number) is ``fmax(., 0)`` here: the same zeros, and an infinity stays one instead of becoming
    1.8e308, whose square is infinite all the same. Sigmas whose bulk edges miss the density's peak
    or range get WW's penalty without their density being computed."""
    s = sigmas[:, None]
    x = xg[None, :]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if Q == 1:  # quarter circle on singular values; its shape ignores sigma, as WW's
            ymp = np.fmax((1 / (np.pi * s * s)) * np.sqrt(4 - x ** 2), 0)
            return np.sum((ymp - yg) ** 2, axis=1)
        y = 1 / Q
        b = np.power(s * (1 + np.sqrt(1 / Q)), 2)
        a = np.power(s * (1 - np.sqrt(1 / Q)), 2)
        peak = xg[peak_index(yg)]
        bad = ((b < peak) | (b > np.max(xg)) | (a > peak))[:, 0]
        out = np.full(sigmas.shape, 1e6 * xg.size)
        if not bad.all():
            g = ~bad
            sg, ag, bg = s[g], a[g], b[g]
            ymp = np.fmax((1 / (2 * np.pi * sg * sg * x * y)) * np.sqrt((bg - x) * (x - ag)), 0)
            out[g] = np.sum((ymp - yg) ** 2, axis=1)
    return out


def mp_residual_at(xg: np.ndarray, yg: np.ndarray, Q: float, sigma: float, peak: float) -> float:
    """:func:`_mp_residual` for one sigma (what the Nelder-Mead polish calls ~20 times a fit), the same
    floating-point operations in the same order, on the points inside the bulk only: outside it the
    density is WW's nan_to_num of a square root of a negative number, i.e. 0. ``peak``: the grid
    point of the density's maximum."""
    s = float(sigma)
    if Q == 1:
        ymp = np.zeros_like(xg)
        inside = np.abs(xg) < 2
        xi = xg[inside]
        if s == 0:
            ymp[inside] = np.inf
        else:
            ymp[inside] = (1 / (np.pi * s * s)) * np.sqrt(4 - xi ** 2)
        return float(np.sum((ymp - yg) ** 2))
    y = 1 / Q
    b = (s * (1 + math.sqrt(1 / Q))) ** 2
    a = (s * (1 - math.sqrt(1 / Q))) ** 2
    if b < peak or b > xg[-1] or a > peak:
        return 1e6 * xg.size
    ymp = np.zeros_like(xg)
    inside = (xg > a) & (xg < b)
    xi = xg[inside]
    ymp[inside] = (1 / (2 * np.pi * s * s * xi * y)) * np.sqrt((b - xi) * (xi - a))
    return float(np.sum((ymp - yg) ** 2))


class _TooManyCalls(Exception):
    pass


def nelder_mead_1d(f, x0: float, xatol: float = 1e-4, fatol: float = 1e-4, maxfun: int = 200) -> float:
    """scipy.optimize.fmin (Nelder-Mead, its defaults: 200 calls and iterations) in one dimension,
    step for step, so brute()'s polishing gives WW's sigma to the last digit."""
    calls = [0]

    def call(x: float) -> float:
        if calls[0] >= maxfun:
            raise _TooManyCalls
        calls[0] += 1
        return float(f(x))

    sim = [x0, 1.05 * x0 if x0 != 0 else 0.00025]
    fs = [math.inf, math.inf]
    try:
        for k in (0, 1):
            fs[k] = call(sim[k])
    except _TooManyCalls:
        pass
    if fs[1] < fs[0]:
        sim.reverse()
        fs.reverse()
    it = 1
    while calls[0] < maxfun and it < maxfun:
        try:
            if abs(sim[1] - sim[0]) <= xatol and abs(fs[0] - fs[1]) <= fatol:
                break
            xbar, worst = sim[0], sim[1]
            xr = 2 * xbar - worst
            fxr = call(xr)
            shrink = False
            if fxr < fs[0]:
                xe = 3 * xbar - 2 * worst
                fxe = call(xe)
                sim[1], fs[1] = (xe, fxe) if fxe < fxr else (xr, fxr)
            elif fxr < fs[1]:  # outside contraction (fxr < fs[-2] = fs[0] is impossible here)
                xc = 1.5 * xbar - 0.5 * worst
                fxc = call(xc)
                if fxc <= fxr:
                    sim[1], fs[1] = xc, fxc
                else:
                    shrink = True
            else:
                xcc = 0.5 * xbar + 0.5 * worst
                fxcc = call(xcc)
                if fxcc < fs[1]:
                    sim[1], fs[1] = xcc, fxcc
                else:
                    shrink = True
            if shrink:
                sim[1] = sim[0] + 0.5 * (sim[1] - sim[0])
                fs[1] = call(sim[1])
            it += 1
        except _TooManyCalls:
            pass
        if fs[1] < fs[0]:
            sim.reverse()
            fs.reverse()
    return sim[0]


def fit_mp_kde(esd, n_long: int, n_short: int) -> MPKdeFit:
    """WW's MP fit (``mp_fit``; ``fit_density_with_range`` and ``resid_mp``, RMT_Util.py 757-868).

    1. Rescale: w_scale = sqrt(n) / sqrt(sum l), r = w_scale^2 l (mean 1); Q = N / M.
    2. Fit data: r, or sqrt(r) when Q == 1 (quarter-circle law of singular values).
    3. Density: linear-kernel KDE, bandwidth 0.1, on 1000 points linspace(0, max + 0.5); points
       whose density is <= 0.01 are dropped.
    4. sigma minimises the squared residual MP(x; Q, sigma) - density (a sigma whose bulk edges
       miss the density's peak or range is penalised by 1000 per point), by scipy's brute() over
       arange(0.05 s0, 2 s0, 0.01 s0), s0 = sqrt(max r) / (1 + 1/sqrt(Q)), polished by fmin.
    5. bulk_max = (sigma (1 + 1/sqrt Q))^2, bulk_min = (sigma (1 - 1/sqrt Q))^2; mp_softrank =
       bulk_max / max r (the fitted edge WITHOUT the Tracy-Widom margin, over lambda_max);
       num_spikes = #(r > bulk_max + sqrt(TW)), TW = bulk_max^(2/3) M^(-2/3) / sqrt(Q) (WW takes
       the square root of its TW term). bulk edges are returned unrescaled (/ w_scale^2).
    """
    e = np.asarray(esd, dtype=np.float64).ravel()
    Q = n_long / n_short
    if e.size == 0 or not np.all(np.isfinite(e)) or not np.sum(e) > 0:
        return MPKdeFit.failed(Q)
    w_scale = np.sqrt(e.size) / np.sqrt(np.sum(e))
    r = (w_scale * w_scale) * e
    lam_max = float(np.max(r))
    s0 = np.sqrt(lam_max / np.square(1.0 + 1.0 / np.sqrt(Q)))
    to_fit = np.sqrt(r) if Q == 1 else r
    xde = np.linspace(0, np.max(to_fit) + 0.5, KDE_POINTS)
    yde = linear_kde(to_fit, xde, KDE_BANDWIDTH)
    good = yde > KDE_FLOOR
    xg, yg = xde[good], yde[good]
    if xg.size == 0:
        return MPKdeFit.failed(Q)
    grid = np.arange(0.05 * s0, 2.0 * s0, 0.01 * s0)
    J = _mp_residual(xg, yg, Q, grid)
    start = float(grid[int(np.argmin(J))])
    peak = float(xg[peak_index(yg)])
    sigma = nelder_mead_1d(lambda s: mp_residual_at(xg, yg, Q, s, peak), start)
    bulk_max = (sigma * (1 + 1 / np.sqrt(Q))) ** 2
    bulk_min = (sigma * (1 - 1 / np.sqrt(Q))) ** 2
    tw = 1 / np.sqrt(Q) * np.power(bulk_max, 2 / 3) * np.power(float(n_short), -2 / 3)
    edge = bulk_max + np.sqrt(tw)
    w2 = w_scale * w_scale
    return MPKdeFit(Q, float(sigma), float(bulk_min / w2), float(bulk_max / w2), float(edge / w2),
                    int(np.sum(r > edge)), float(bulk_max / lam_max), float(w_scale))
