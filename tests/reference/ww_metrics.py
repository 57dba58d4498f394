"""Independent transcription of WeightWatcher 0.7.7's metrics beyond alpha, in its own terms.

Read from weightwatcher 0.7.7 (pip; weightwatcher.py and RMT_Util.py, line numbers of that release)
and written the way WW computes them, with the same library calls (np.prod loops, sklearn's
KernelDensity, scipy.optimize.brute + fmin, scipy.stats.entropy), so farms_viz.core.metrics /
randomize (own KDE, own Nelder-Mead, log sums) are checked against a second reading:

- ``combined_eigenvalues`` 2784-2857: per slice, float64 singular values (scipy.linalg.svd),
  sv_max = max over slices, sv_min = max(0, min sv) over slices, rank_loss summed per slice.
- ``apply_esd`` 2932-2969: weak_rank_loss = #(evals < 1e-6).
- ``apply_norm_metrics`` 4568-4608: log_norm, log_spectral_norm, alpha_weighted, log_alpha_norm,
  matrix_entropy(sqrt(evals), N).
- ``apply_detX`` 3077-3127 with ``detX_constraint`` 1116-1164.
- ``mp_fit`` 4739-4834 with ``fit_density_with_range`` 848-868 and ``resid_mp`` 757-814.
- ``jensen_shannon_distance`` 1078-1097.
"""

from __future__ import annotations

import numpy as np
from scipy import optimize, stats
from scipy.linalg import svd
from sklearn.neighbors import KernelDensity

EPSILON = 1e-10
TOLERANCE = 1e-6


def matrix_rank(svals, N):
    return np.count_nonzero(svals > np.max(svals) * N * np.finfo(svals.dtype).eps)


def combined(mats, N):
    """(evals ascending, sv_max, sv_min, rank_loss) as combined_eigenvalues."""
    all_evals, max_sv, min_sv, rank_loss = np.array([]), 0.0, 0.0, 0
    for W in mats:
        sv = np.sort(svd(np.asarray(W, dtype=float), compute_uv=False))
        all_evals = np.concatenate((all_evals, sv * sv))
        max_sv = np.max([max_sv, np.max(sv)])
        min_sv = np.max([min_sv, np.min(sv)])
        rank_loss += len(sv) - matrix_rank(sv, N)
    return np.sort(all_evals), max_sv, min_sv, rank_loss


def norm_metrics(evals, alpha, N):
    sv = np.sqrt(evals)
    rank = matrix_rank(sv, N)
    p = evals / np.sum(evals) + EPSILON
    entropy = -np.sum(p * np.log(p)) / np.log(rank + EPSILON)
    return dict(log_norm=np.log10(np.sum(evals)), log_spectral_norm=np.log10(np.max(evals)),
                alpha_weighted=alpha * np.log10(np.max(evals)),
                log_alpha_norm=np.log10(np.sum([ev ** alpha for ev in evals])), entropy=entropy,
                weak_rank_loss=len(evals[evals < TOLERANCE]))


def detX(evals):
    """(detX_num, detX_val) with WW's loop of np.prod."""
    N = len(evals)
    scale = np.sqrt(N) / np.sqrt(np.sum(evals))
    ev = scale * scale * evals
    if len(ev) < 2 or not ev[0] < ev[-1]:
        return 0, evals[0]
    num, idx = len(ev), 0
    for idx in range(len(ev) - 1, 0, -1):
        if np.prod(ev[idx:]) < 1.0:
            num = len(ev) - idx
            break
    return num, (ev / (scale * scale))[idx]


def _resid(p, evals, Q, bw):
    sigma = p
    kde = KernelDensity(kernel="linear", bandwidth=bw).fit(evals.reshape(-1, 1))
    xde = np.linspace(0, np.max(evals) + 0.5, 1000)
    yde = np.exp(kde.score_samples(xde[:, None]))
    bad = np.where(yde < 0.01)[0]
    good = np.where(yde > 0.01)[0]
    xde, yde = xde[good], yde[good]
    with np.errstate(all="ignore"):
        if Q == 1:
            resid = np.nan_to_num((1 / (np.pi * sigma * sigma)) * np.sqrt(4 - xde ** 2)) - yde
        else:
            b = np.power(sigma * (1 + np.sqrt(1 / Q)), 2)
            a = np.power(sigma * (1 - np.sqrt(1 / Q)), 2)
            ymp = np.nan_to_num((1 / (2 * np.pi * sigma * sigma * xde / Q)) * np.sqrt((b - xde) * (xde - a)))
            peak = xde[np.where(yde == max(yde))][0]
            resid = (np.zeros(len(yde)) + 1000 if (b < peak) | (b > max(xde)) | (a > peak) else ymp - yde)
    return np.sum(np.concatenate((resid, np.zeros(len(bad)))) ** 2)


def mp_fit(evals, N, M):
    """(num_spikes, sigma_mp, mp_softrank, bulk_min, bulk_max) as mp_fit(rescale=True)."""
    Q = N / M
    Wscale = np.sqrt(evals.shape[0]) / np.sqrt(np.sum(evals))
    to_plot = (Wscale * Wscale) * evals
    s = np.sqrt(np.max(to_plot) / np.square(1 + 1.0 / np.sqrt(Q)))
    to_fit = np.sqrt(to_plot) if Q == 1 else to_plot
    out = optimize.brute(_resid, (slice(0.05 * s, 2.0 * s, 0.01 * s),), args=(to_fit, Q, 0.1), full_output=True)
    s1 = out[0][0]
    bulk_max = (s1 * (1 + 1 / np.sqrt(Q))) ** 2
    bulk_min = (s1 * (1 - 1 / np.sqrt(Q))) ** 2
    TW = 1 / np.sqrt(Q) * np.power(bulk_max, 2 / 3) * np.power(M, -2 / 3)
    num_spikes = len(to_plot[to_plot > bulk_max + np.sqrt(TW)])
    return (num_spikes, s1, bulk_max / np.max(to_plot), bulk_min / (Wscale * Wscale),
            bulk_max / (Wscale * Wscale))


def jensen_shannon_distance(p, q):
    m = (np.array(p) + np.array(q)) / 2
    return np.sqrt((stats.entropy(p, m) + stats.entropy(q, m)) / 2)
