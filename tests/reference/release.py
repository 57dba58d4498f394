"""Independent numpy float64 transcription of the FARMS release's ESD estimator.

Source: github.com/HUST-AI-HYZ/FARMS at 8e07c3f, ``LLM_Pruning/lib/esd_utils_farms.py``
(``net_esd_estimator_farms``, ``analysis_esd``) and ``LLM_Pruning/lib/sampling.py``
(``conv2D_Wmats``, ``fixed_sampling``), with the arguments the paper uses (``filter_zeros=False``,
``bins=100``, ``EVALS_THRESH`` unused, ``eigs_num_thresh=5``). The image-classification copy
(``Image_Classification/tempbalance_farms.py``) has the same conv procedure and fit; it calls
``xmin_mid`` ``median`` and its ``fixed_sampling`` lacks the cap of the window at the matrix
(kept here, as in the LLM copy). Written from the release's code, not from farms-viz, so that
tests can hold farms-viz to it.

Where the release computes in float32 this computes in float64: its ``torch.linspace`` bin
edges (default dtype float32; ``float32_edges=True`` reproduces them), its ``alphas``/``Ds``
buffers (float32), and its ``svdvals`` of float32 weights. Given the same eigenvalues this
matches the release to float32 rounding of alpha (~1e-7 relative; see ``check_real.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

BINS = 100
EIGS_NUM_THRESH = 5


@dataclass(frozen=True)
class Fit:
    """One ``analysis_esd`` result (the entries the release appends to its ``results``)."""

    alpha: float
    D: float
    xmin: float
    spectral_norm: float
    alpha_hat: float
    stable_rank: float
    norm: float
    n_eigs: int


@dataclass(frozen=True)
class LayerResult:
    """A layer's number as ``net_esd_estimator_farms`` reports it (block means for FARMS convs)."""

    alpha: float
    D: float
    spectral_norm: float
    alpha_hat: float
    blocks: list[Fit] = field(default_factory=list)


# ---------------------------------------------------------------- analysis_esd

def _histc_argmax(h: np.ndarray, lo: float, hi: float, bins: int) -> int:
    """Index of the fullest bin of ``torch.histc(h, bins, min=lo, max=hi)`` (first on ties).

    torch's CPU histc: bin = int((x - lo) * bins / (hi - lo)), x == hi in the last bin.
    All values of ``h`` lie in [lo, hi] here. ``lo == hi`` (all eigenvalues equal): torch
    widens the range to [lo - 1, hi + 1], every value lands in bin bins // 2.
    """
    if hi == lo:
        lo, hi = lo - 1.0, hi + 1.0
    pos = ((h - lo) * bins / (hi - lo)).astype(np.int64)
    pos[pos == bins] = bins - 1
    counts = np.bincount(pos, minlength=bins)
    return int(np.argmax(counts))


def _linspace_edge(lo: float, hi: float, bins: int, i: int, float32: bool) -> float:
    """``torch.linspace(lo, hi, bins + 1)[i]``; in float32 (the release's default dtype) if asked."""
    if float32:
        # torch's CPU kernel: a float32 step, start + step * i below the halfway index and
        # end - step * (steps - 1 - i) from there, rounded once to float32 (matches torch 2.13
        # bit for bit on 30,000 random edges; see check_real.py)
        lo32, hi32 = float(np.float32(lo)), float(np.float32(hi))
        step = float(np.float32(np.float32(hi32) - np.float32(lo32)) / np.float32(bins))
        v = lo32 + step * i if i < (bins + 1) // 2 else hi32 - step * (bins - i)
        return float(np.float32(v))
    return float(np.linspace(lo, hi, bins + 1)[i])


def analysis_esd(eigs, fix_fingers: str = "xmin_peak", xmin_pos: float = 2, bins: int = BINS,
                 float32_edges: bool = False) -> Fit:
    """The release's ``analysis_esd`` with ``filter_zeros=False``: every eigenvalue is fitted.

    ``xmin_mid``: xmin = eigs[int(N / xmin_pos)], one Hill fit.
    ``xmin_peak``: peak = 10 ** (left edge of the fullest of ``bins`` bins of log10 eigs over
    [log10 min, log10 max]); candidates xmin = eigs[i], i = 0..N-2 ascending, are skipped while
    ``xmin < log10(0.95 * peak)`` (an eigenvalue compared with a log: the release's bound, kept)
    and the scan stops at the first ``xmin > 1.5 * peak``. Skipped candidates keep alpha 0 and
    D 1, so do candidates with alpha <= 1 (their alpha is kept); the first minimum of D wins.
    Any other ``fix_fingers`` (``None``): every candidate, the first minimum of D.
    """
    e = np.sort(np.asarray(eigs, dtype=np.float64).ravel())
    n_all = e.size
    spectral_norm = float(e[-1])
    fnorm = float(e.sum())
    stable_rank = fnorm / float(e.max())
    with np.errstate(divide="ignore", invalid="ignore"):
        log_e = np.log(e)
    N = n_all
    if fix_fingers == "xmin_mid":
        i = int(N / xmin_pos)
        xmin = e[i]
        n = float(N - i)
        alpha = 1 + n / (np.sum(log_e[i:]) - n * log_e[i])
        D = np.max(np.abs(1 - (e[i:] / xmin) ** (-alpha + 1) - np.arange(n) / n))
        alpha, D, x = float(alpha), float(D), float(xmin)
    else:
        alphas = np.zeros(N - 1)
        Ds = np.ones(N - 1)
        if fix_fingers == "xmin_peak":
            with np.errstate(divide="ignore"):
                h = np.log10(e)
            lo, hi = float(h.min()), float(h.max())
            ih = _histc_argmax(h, lo, hi, bins)
            peak = 10 ** _linspace_edge(lo, hi, bins, ih, float32_edges)
            xmin_min = math.log10(0.95 * peak)   # sic: a log, compared with eigenvalues below
            xmin_max = 1.5 * peak
        for i in range(N - 1):
            xmin = e[i]
            if fix_fingers == "xmin_peak":
                if xmin < xmin_min:
                    continue
                if xmin > xmin_max:
                    break
            n = float(N - i)
            a = 1 + n / (np.sum(log_e[i:]) - n * log_e[i])
            alphas[i] = a
            if a > 1:
                Ds[i] = np.max(np.abs(1 - (e[i:] / xmin) ** (-a + 1) - np.arange(n) / n))
        k = int(np.argmin(Ds))
        alpha, D, x = float(alphas[k]), float(Ds[k]), float(e[k])
    return Fit(alpha=alpha, D=D, xmin=x, spectral_norm=spectral_norm,
               alpha_hat=alpha * math.log10(spectral_norm), stable_rank=stable_rank, norm=fnorm,
               n_eigs=n_all)


# ---------------------------------------------------------------- matrices and windows

def svd_eigs(matrix: np.ndarray) -> np.ndarray:
    """Squared singular values (the release's ``torch.square(torch.linalg.svdvals(.))``), float64."""
    return np.linalg.svd(np.asarray(matrix, dtype=np.float64), compute_uv=False) ** 2


def conv2d_wmats(w: np.ndarray) -> list[np.ndarray]:
    """``conv2D_Wmats(W, channels=CHANNELS.UNKNOWN)``: the kernel-position slices.

    (N, M, kh, kw) with N + M >= kh + kw ("channels last"): slices W[:, :, i, j] in row-major
    kernel order, each transposed when it has fewer rows than columns (so rows >= cols).
    Otherwise ("channels first"): slices W[i, j, :, :] for i < N, j < M, transposed when
    they have fewer columns than rows (sic).
    """
    N, M, imax, jmax = w.shape
    out = []
    if N + M >= imax + jmax:
        for i in range(imax):
            for j in range(jmax):
                s = w[:, :, i, j]
                out.append(s.T if s.shape[0] < s.shape[1] else s)
    else:
        for i in range(N):
            for j in range(M):
                s = w[i, j, :, :]
                out.append(s.T if s.shape[1] < s.shape[0] else s)
    return out


def fixed_sampling_windows(rows: int, cols: int, num_row_samples: int, Q_ratio: float,
                           sampling_ops_per_dim: int) -> list[tuple[slice, slice]]:
    """The windows of the LLM release's ``fixed_sampling`` (Python slicing semantics kept).

    h = min(num_row_samples, rows, cols), w = int(h * Q); steps max(1, (rows - h) // (ops - 1))
    and likewise for columns; min(ops, max(1, (rows - h) // step + 1)) windows per dimension;
    start = min(k * step, rows - h).
    """
    h = min(num_row_samples, min(rows, cols))
    w = int(h * Q_ratio)
    row_step = max(1, (rows - h) // (sampling_ops_per_dim - 1))
    col_step = max(1, (cols - w) // (sampling_ops_per_dim - 1))
    n_r = min(sampling_ops_per_dim, max(1, (rows - h) // row_step + 1))
    n_c = min(sampling_ops_per_dim, max(1, (cols - w) // col_step + 1))
    out = []
    for i in range(n_r):
        for j in range(n_c):
            r0 = min(i * row_step, rows - h)
            c0 = min(j * col_step, cols - w)
            out.append((slice(r0, r0 + h), slice(c0, c0 + w)))
    return out


def fixed_sampling(matrix: np.ndarray, num_row_samples: int, Q_ratio: float,
                   sampling_ops_per_dim: int) -> np.ndarray:
    """Pooled, ascending eigenvalues of the ``fixed_sampling`` windows of a Linear weight."""
    m = np.asarray(matrix, dtype=np.float64)
    wins = fixed_sampling_windows(*m.shape, num_row_samples, Q_ratio, sampling_ops_per_dim)
    return np.sort(np.concatenate([svd_eigs(m[r, c]) for r, c in wins]))


def conv2d_raw_eigs(w: np.ndarray, conv_norm: float = 0.5) -> np.ndarray:
    """Raw conv ESD: ``flatten(2) * sqrt(conv_norm)``, to (kh*kw, out, in), eigenvalues of each slice."""
    w = np.asarray(w, dtype=np.float64)
    out, inp = w.shape[:2]
    m = (w.reshape(out, inp, -1) * math.sqrt(conv_norm)).transpose(2, 0, 1)
    return np.concatenate([svd_eigs(s) for s in m])


def conv2d_farms_blocks(w: np.ndarray, Q_ratio: float = 1.0, conv_norm: float = 0.5) -> list[np.ndarray]:
    """The FARMS conv blocks' pooled eigenvalues, one ascending array per block.

    Slices (``conv2d_wmats``) are rows x cols (rows >= cols); a block is cols // Q rows by
    cols columns (Q > 1) or cols rows by cols // (1 / Q) columns (Q <= 1), at least 1; there are
    rows // cols blocks, block i = rows [i * h, (i + 1) * h) of every slice, scaled by
    sqrt(conv_norm), their eigenvalues pooled. Leftover rows are dropped; window and ops unused.
    """
    mats = [np.asarray(s, dtype=np.float64) for s in conv2d_wmats(np.asarray(w))]
    rows, cols = mats[0].shape
    if Q_ratio > 1:
        h, wd = cols // Q_ratio, cols
    else:
        h, wd = cols, cols // (1 / Q_ratio)
    h, wd = max(1, int(h)), max(1, int(wd))
    s = math.sqrt(conv_norm)
    return [np.sort(np.concatenate([svd_eigs(m[i * h:(i + 1) * h, :wd] * s) for m in mats]))
            for i in range(int(rows // cols))]


# ---------------------------------------------------------------- the estimator

def layer_estimate(weight: np.ndarray, use_sliding_window: bool, fix_fingers: str = "xmin_peak",
                   xmin_pos: float = 2, conv_norm: float = 0.5, num_row_samples: int = 100,
                   Q_ratio: float = 2.0, sampling_ops_per_dim: int = 10,
                   float32_edges: bool = False) -> LayerResult | None:
    """One layer of ``net_esd_estimator_farms``: 2-D = ``nn.Linear``, 4-D = ``nn.Conv2d``.

    None where the release skips the layer (fewer than 5 eigenvalues; not for FARMS convs).
    FARMS conv: the mean over blocks of each block's alpha, D, spectral norm and alpha_hat.
    """
    w = np.asarray(weight, dtype=np.float64)
    kw = dict(fix_fingers=fix_fingers, xmin_pos=xmin_pos, float32_edges=float32_edges)
    if not use_sliding_window:
        e = conv2d_raw_eigs(w, conv_norm) if w.ndim == 4 else svd_eigs(w)
        if e.size < EIGS_NUM_THRESH:
            return None
        f = analysis_esd(e, **kw)
        return LayerResult(f.alpha, f.D, f.spectral_norm, f.alpha_hat, [f])
    if w.ndim == 4:
        fits = [analysis_esd(b, **kw) for b in conv2d_farms_blocks(w, Q_ratio, conv_norm)]
        def mean(k):
            return float(np.mean([getattr(f, k) for f in fits])) if fits else math.nan

        return LayerResult(mean("alpha"), mean("D"), mean("spectral_norm"), mean("alpha_hat"), fits)
    e = fixed_sampling(w, num_row_samples, Q_ratio, sampling_ops_per_dim)
    if e.size < EIGS_NUM_THRESH:
        return None
    f = analysis_esd(e, **kw)
    return LayerResult(f.alpha, f.D, f.spectral_norm, f.alpha_hat, [f])


def net_esd_estimator(weights: dict, use_sliding_window: bool, **settings) -> dict[str, LayerResult]:
    """``net_esd_estimator_farms`` over named weights (2-D Linear, 4-D Conv2d), skipped layers left out."""
    out = {}
    for name, w in weights.items():
        r = layer_estimate(w, use_sliding_window, **settings)
        if r is not None:
            out[name] = r
    return out
