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
#: A slice's Gram eigenvalues are taken as its squared singular values when the smallest exceeds
#: SV_TRUST * side * eps64 * l_max: float64 round-off moves an eigenvalue by at most ~side * eps64 *
#: l_max, so the smallest singular value is then within 1e-4 relative (WW's columns are matched to
#: 1e-3); otherwise the slice's singular values come from an SVD, as in WW (a square 2048 x 2048 noise
#: matrix, l_min ~ l_max / 4n^2 = 6e-8 l_max, passes: its SVD cost 1.2 s beside a 0.6 s Gram route).
#: Eigenvalues from spectra.matrix_eigs' float32 route always pass (it keeps them only above
#: spectra.GRAM_TRUST * sqrt(side) * eps32 * l_max); their error is ~eps32 * l_max, so sv_min is then
#: within eps32 * l_max / (2 l_min) < 3e-4 relative (measured: at most 5.8e-5 on minilm and mobilenet-v2).
SV_TRUST = 5e3


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
    """alpha * log10(l_max) (4587): WW's alpha-hat (-inf or NaN for an all-zero spectrum, as WW's log10)."""
    with np.errstate(divide="ignore", invalid="ignore"):
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


def slice_singular_values(slices, slice_eigs=None, eigs: Callable[[np.ndarray], np.ndarray] = gram_eigs,
                          svd: Callable[[int], np.ndarray] | None = None) -> list[np.ndarray]:
    """Each slice's singular values, float64 ascending, accurate down to float64 round-off.

    ``slices`` (k, rows, cols), numpy or torch, is converted one slice at a time, only where needed.
    A slice's Gram eigenvalues (``slice_eigs`` (k, side) if already computed, e.g. by
    spectra.matrix_eigs, else ``eigs`` of the slice in float64) are square-rooted when its smallest one
    is above SV_TRUST * side * eps64 * l_max; a slice near rank deficiency gets an SVD instead (what WW
    computes for every slice), since a Gram matrix cannot tell a singular value of 1e-9 sigma_max from
    zero: ``svd(s)`` when given (e.g. torch on the layer's device), else numpy's of that one slice.
    """
    k = slices.shape[0] if slices.ndim == 3 else 1

    def one(s: int) -> np.ndarray:
        w = slices[s] if slices.ndim == 3 else slices
        return np.asarray(w.cpu() if hasattr(w, "cpu") else w, dtype=np.float64)

    out = []
    eps = np.finfo(np.float64).eps
    side = min(slices.shape[-2:])
    for s in range(k):
        ev = np.sort(np.asarray(slice_eigs[s] if slice_eigs is not None else eigs(one(s)), dtype=np.float64))
        if ev.size and ev[0] > SV_TRUST * side * eps * ev[-1]:
            out.append(np.sqrt(ev))
        else:
            sv = svd(s) if svd is not None else np.linalg.svd(one(s), compute_uv=False)
            out.append(np.sort(np.asarray(sv, dtype=np.float64)))
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
