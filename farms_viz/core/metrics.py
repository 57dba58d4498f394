"""WeightWatcher 0.7.7's per-layer metrics beyond alpha, from an ESD (and, for ranks, the matrices).

Each function states WeightWatcher's (WW's) formula as ``analyze(mp_fit=True, detX=True)`` computes
it (weightwatcher.py / RMT_Util.py line numbers of 0.7.7), quirks included, so a number here can be
set beside WW's. ``esd`` is a layer's pooled eigenvalues of W^T W, ascending, all of them (WW keeps
every eigenvalue for these metrics, unlike its power-law fit), computed from the matrices as WW
normalises them: conv slices x sqrt(1/2) (``conv2d_norm=True``), which is farms-viz's
``conv_norm=0.5``. ``n_long`` / ``n_short`` are WW's layer ``N`` / ``M`` (the larger / smaller side
of a slice; see :func:`ww_dims` for WW's conv quirk).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

#: WW's EPSILON (constants.py 191), added to each probability and to the rank in matrix_entropy.
EPSILON = 1e-10
#: WW's default ``tolerance`` for weak_rank_loss (WEAK_RANK_LOSS_TOLERANCE, constants.py 162).
WEAK_RANK_TOL = 1e-6
#: An eigenvalue of a float64 Gram matrix is trusted as a squared singular value when it exceeds
#: GRAM_TRUST * side * eps64 * l_max (its round-off is ~side * eps64 * l_max, so its relative error
#: is then under 1e-6); otherwise the slice's singular values come from an SVD, as in WW.
GRAM_TRUST = 1e6
#: WW's MP fit: kernel-density bandwidth, grid size and the density below which grid points are
#: dropped from the residual (RMT_Util.py ``resid_mp`` 757-814).
KDE_BANDWIDTH = 0.1
KDE_POINTS = 1000
KDE_FLOOR = 0.01


def _e(esd) -> np.ndarray:
    return np.asarray(esd, dtype=np.float64).ravel()


def log_norm(esd) -> float:
    """log10 of the Frobenius norm squared: log10(sum l_i) (weightwatcher.py 4578-4580)."""
    with np.errstate(divide="ignore"):
        return float(np.log10(np.sum(_e(esd))))


def log_spectral_norm(esd) -> float:
    """log10 of the largest eigenvalue, log10(l_max) = 2 log10(sigma_max) (4582-4583)."""
    with np.errstate(divide="ignore"):
        return float(np.log10(np.max(_e(esd))))


def alpha_weighted(alpha: float, esd) -> float:
    """alpha * log10(l_max) (4587): WW's alpha-hat."""
    return float(alpha * np.log10(np.max(_e(esd))))


def log_alpha_norm(alpha: float, esd) -> float:
    """log10 of the Schatten alpha-norm to the alpha: log10(sum_i l_i^alpha), over every eigenvalue (4588)."""
    return float(np.log10(np.sum(_e(esd) ** alpha)))


def matrix_entropy(esd, rank: int) -> float:
    """WW's normalised matrix entropy (RMT_Util.py 336-360).

    p_i = l_i / sum(l) + EPSILON; entropy = -sum(p_i ln p_i) / ln(rank + EPSILON), ``rank`` the
    hard rank of :func:`sv_metrics`. A flat spectrum of rank r gives 1 (to ~1e-8); a rank-1 matrix
    gives about 23 (n - 1) (the EPSILONs over ln(1 + EPSILON)), as in WW.
    """
    e = _e(esd)
    p = e / np.sum(e) + EPSILON
    return float(-np.sum(p * np.log(p)) / np.log(rank + EPSILON))


def weak_rank_loss(esd, tol: float = WEAK_RANK_TOL) -> int:
    """How many eigenvalues are below ``tol`` (absolute, strict; weightwatcher.py 2953-2957)."""
    return int(np.sum(_e(esd) < tol))


def detX(esd) -> tuple[int, float]:
    """WW's detX constraint (``apply_detX`` 3077-3127, ``detX_constraint`` RMT_Util.py 1116-1164).

    With the ESD rescaled to mean 1 (l * n / sum(l)), walk idx = n-1, n-2, ..., 1 and stop at the
    first idx where prod(l[idx:]) < 1: detX_num = n - idx (the crossing eigenvalue included), detX_val
    the unrescaled l[idx]. Quirks kept: idx 0 is never tried, so a product that stays >= 1 down to
    idx 1 gives detX_num = n and detX_val = l[1]; fewer than 2 eigenvalues or l[0] >= l[-1] give
    (0, l[0]). The product is taken as a sum of logarithms: WW's np.prod overflows to inf once the
    tail's product passes 1.8e308 (possible above ~1,900 eigenvalues; a 4096 x 4096 noise matrix
    does), after which WW never crosses and reports detX_num = n; here the true crossing is found.
    """
    e = np.sort(_e(esd))
    n = e.size
    if n < 2 or not e[0] < e[-1]:
        return 0, float(e[0]) if n else math.nan
    r = e * (n / np.sum(e))  # WW: (sqrt(n) / sqrt(sum))^2 * l
    with np.errstate(divide="ignore"):
        tail = np.cumsum(np.log(r[::-1]))[::-1]  # tail[idx] = sum(log r[idx:])
    hits = np.flatnonzero(tail[1:] < 0.0) + 1
    idx = int(hits[-1]) if hits.size else 1
    return (n - idx if hits.size else n), float(e[idx])


# ---------------------------------------------------------------- ranks and singular values

@dataclass(frozen=True)
class SVMetrics:
    """WW's sv_max, sv_min, rank_loss and matrix rank of a layer's slices."""

    sv_max: float
    sv_min: float
    rank_loss: int
    matrix_rank: int


def gram_eigs(w: np.ndarray) -> np.ndarray:
    """Eigenvalues of W^T W of one matrix, ascending, from its smaller float64 Gram matrix, clamped at 0."""
    w = np.asarray(w, dtype=np.float64)
    g = w.T @ w if w.shape[0] >= w.shape[1] else w @ w.T
    return np.clip(np.linalg.eigvalsh(g), 0.0, None)


def slice_singular_values(slices, slice_eigs=None, eigs: Callable[[np.ndarray], np.ndarray] = gram_eigs
                          ) -> list[np.ndarray]:
    """Each slice's singular values, float64 ascending, accurate down to float64 round-off.

    A slice's float64 Gram eigenvalues (``slice_eigs`` (k, side) if already computed in float64,
    else ``eigs`` of the slice: any float64 route, e.g. torch with one thread where numpy's BLAS
    threads contend) are square-rooted when its smallest one is above GRAM_TRUST * side * eps64 *
    l_max; a slice near rank deficiency gets an SVD instead (what WW computes for every slice), since
    a Gram matrix cannot tell a singular value of 1e-9 sigma_max from zero.
    """
    mats = np.asarray(slices, dtype=np.float64)
    if mats.ndim == 2:
        mats = mats[None]
    out = []
    eps = np.finfo(np.float64).eps
    for k, w in enumerate(mats):
        side = min(w.shape)
        if slice_eigs is not None:
            ev = np.sort(np.asarray(slice_eigs[k], dtype=np.float64))
        else:
            ev = np.sort(np.asarray(eigs(w), dtype=np.float64))
        if ev.size and ev[0] > GRAM_TRUST * side * eps * ev[-1]:
            out.append(np.sqrt(ev))
        else:
            out.append(np.sort(np.linalg.svd(w, compute_uv=False)))
    return out


def matrix_rank(svals, n_long: int) -> int:
    """WW's ``matrix_rank`` (RMT_Util.py 317-327): how many sv exceed max(sv) * N * eps64."""
    s = np.asarray(svals, dtype=np.float64)
    return int(np.count_nonzero(s > np.max(s) * n_long * np.finfo(np.float64).eps))


def sv_metrics(svals: list[np.ndarray], n_long: int) -> SVMetrics:
    """sv_max, sv_min, rank_loss and the hard rank as WW computes them (weightwatcher.py 2784-2857, 4591-4594).

    sv_max: the largest singular value over the slices. sv_min: WW keeps
    ``max(sv_min, min(sv))`` over the slices, so for a conv layer it is the LARGEST of the slices'
    smallest singular values (the smallest one for a single matrix). rank_loss: summed over the
    slices, len(sv) - #(sv > max(sv of that slice) * N * eps64). The hard rank (normaliser of
    :func:`matrix_entropy`): the same count over the pooled singular values with the pooled maximum.
    """
    pooled = np.concatenate(svals)
    return SVMetrics(
        sv_max=float(max(np.max(s) for s in svals)),
        sv_min=float(max(0.0, *(float(np.min(s)) for s in svals))),
        rank_loss=int(sum(s.size - matrix_rank(s, n_long) for s in svals)),
        matrix_rank=matrix_rank(pooled, n_long),
    )


def ww_dims(out_ch: int, in_ch: int, kh: int, kw: int) -> tuple[int, int]:
    """WW's layer N, M for a Conv2d (out, in, kh, kw) (``conv2D_Wmats`` 1258-1337).

    Each kh*kw slice is out x in, transposed when out < in, and N, M are swapped once per transposed
    slice (1288): for out < in and an even kh*kw they end up (out, in), i.e. Q = N / M < 1. Linear
    layers and every other conv get (larger side, smaller side).
    """
    n, m = max(out_ch, in_ch), min(out_ch, in_ch)
    if out_ch + in_ch < kh + kw:  # WW's "channels first" branch: no transposes counted
        return out_ch, in_ch
    if out_ch < in_ch and (kh * kw) % 2 == 0:
        return m, n
    return n, m


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
    grid points xg where the density yg > KDE_FLOOR (the others add zeros)."""
    s = sigmas[:, None]
    x = xg[None, :]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if Q == 1:  # quarter circle on singular values; its shape ignores sigma, as WW's
            ymp = np.nan_to_num((1 / (np.pi * s * s)) * np.sqrt(4 - x ** 2))
            return np.sum((ymp - yg) ** 2, axis=1)
        y = 1 / Q
        b = np.power(s * (1 + np.sqrt(1 / Q)), 2)
        a = np.power(s * (1 - np.sqrt(1 / Q)), 2)
        ymp = np.nan_to_num((1 / (2 * np.pi * s * s * x * y)) * np.sqrt((b - x) * (x - a)))
    peak = xg[peak_index(yg)]
    bad = ((b < peak) | (b > np.max(xg)) | (a > peak))[:, 0]
    return np.where(bad, 1e6 * xg.size, np.sum((ymp - yg) ** 2, axis=1))


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
    e = _e(esd)
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
    sigma = nelder_mead_1d(lambda s: _mp_residual(xg, yg, Q, np.array([s]))[0], start)
    bulk_max = (sigma * (1 + 1 / np.sqrt(Q))) ** 2
    bulk_min = (sigma * (1 - 1 / np.sqrt(Q))) ** 2
    tw = 1 / np.sqrt(Q) * np.power(bulk_max, 2 / 3) * np.power(float(n_short), -2 / 3)
    edge = bulk_max + np.sqrt(tw)
    w2 = w_scale * w_scale
    return MPKdeFit(Q, float(sigma), float(bulk_min / w2), float(bulk_max / w2), float(edge / w2),
                    int(np.sum(r > edge)), float(bulk_max / lam_max), float(w_scale))


def esd_metrics(esd, alpha: float, n_long: int, svals: list[np.ndarray] | None = None) -> dict[str, float]:
    """The deterministic metrics of one ESD, named as WW's columns.

    The rank-based ones need ``svals``, each slice's singular values from
    :func:`slice_singular_values` (without them they are NaN); with them weak_rank_loss counts their
    squares, resolved to float64 round-off, rather than the ESD's eigenvalues (which may come from a
    float32 Gram matrix)."""
    e = np.sort(_e(esd))
    num, val = detX(e)
    out = dict(log_norm=log_norm(e), log_spectral_norm=log_spectral_norm(e),
               alpha_weighted=alpha_weighted(alpha, e), log_alpha_norm=log_alpha_norm(alpha, e),
               weak_rank_loss=weak_rank_loss(e), detX_num=num, detX_val=val,
               entropy=math.nan, rank_loss=math.nan, sv_max=math.nan, sv_min=math.nan)
    if svals is not None:
        sv = sv_metrics(svals, n_long)
        out.update(entropy=matrix_entropy(e, sv.matrix_rank), rank_loss=sv.rank_loss,
                   sv_max=sv.sv_max, sv_min=sv.sv_min,
                   weak_rank_loss=weak_rank_loss(np.concatenate(svals) ** 2))
    return out
