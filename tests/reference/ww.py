"""Independent numpy transcription of WeightWatcher 0.7.7's default alpha (``WeightWatcher(model).analyze()``).

Read from weightwatcher 0.7.7 (pip) on a CPU-only machine; line numbers are that release's:

- Layers (weightwatcher.py ``layer_supported`` 1675-1750): ``nn.Linear`` (N x M = larger x smaller
  side, rf 1) and ``nn.Conv2d``; a layer is skipped when M * rf < 8 (``min_evals``) or > 15000
  (``max_evals``) or N > 50000 (``max_N``).
- Conv2d (``conv2D_Wmats`` 1258-1337, PyTorch channels "last" 288): for (out, in, kh, kw) with
  out + in >= kh + kw, the kh*kw slices W[:, :, i, j], row-major, each transposed when it has
  fewer rows than columns. N and M are swapped once per transposed slice (1288), so for an even
  kh*kw with out < in they end up (out, in); this changes only the M * rf skip test. Depthwise
  (out, 1, kh, kw) is kh*kw slices of out x 1: kh*kw eigenvalues, the squared column norms.
- Conv normalisation (``apply_normalize_Wmats`` 2860-2904): conv slices times
  sqrt(conv2d_count / 2) = sqrt(1/2) (``conv2d_count`` stays 1, 1017), so eigenvalues x 0.5.
- Eigenvalues (``combined_eigenvalues`` 2784-2857): weights as float32 numpy (``torch_T_to_np``,
  RMT_Util.py 126; float16 when CUDA is available, RMT_Util.py 202), times the norm in float64,
  ``scipy.linalg.svd(compute_uv=False)`` in float64 (RMT_Util.py 112, 266), squared, all slices
  pooled and sorted.
- Fit (``fit_powerlaw`` 4170, default branch 4293-4305; WW_powerlaw.py ``WWFit``): eigenvalues
  > 1e-5 (``EVALS_THRESH``, constants.py 190; strict); candidates xmin = every kept eigenvalue
  but the largest. N >= 20 kept eigenvalues (``SMALL_N_CUTOFF``, WW_powerlaw.py 26): Hill
  alpha = 1 + n / sum(log(l / xmin)) and D = max |1 - (l / xmin)^(1 - alpha) - k / n| for
  each candidate (D stays 1 where alpha <= 1), the first minimum of D. N < 20
  (``fit_powerlaw_smallN`` 96-194): only candidates with a tail of n >= 8 and
  s = sum(log(l / xmin)) > 1e-12; alpha = 1 + (n - 1) / s (bias-corrected); D as above where
  alpha > 1. It ranks candidates by J = D - 0.868 / sqrt(n), but ``WWFit.__init__`` (56-60)
  then re-selects the first minimum of D over all candidates (non-candidates: D 1, alpha 0 or
  their alpha <= 1), and that is what analyze() reports. No candidate with a finite J: the
  whole sample is the tail (i = 0). Fewer than 2 kept eigenvalues: the fit fails, alpha -1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

EVALS_THRESH = 1e-5
SMALL_N_CUTOFF = 20
SMALL_N_K_MIN = 8
MIN_EVALS = 8
MAX_EVALS = 15000
MAX_N = 50000


@dataclass(frozen=True)
class Fit:
    """WeightWatcher's ``alpha``, ``xmin``, ``D``, ``sigma``, ``num_pl_spikes`` of one ESD."""

    alpha: float
    xmin: float
    D: float
    sigma: float
    num_pl_spikes: int
    n_kept: int
    small_n: bool


def _standard(x: np.ndarray, log_x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    N = x.size
    alphas, Ds = np.zeros(N - 1), np.ones(N - 1)
    for i in range(N - 1):
        n = float(N - i)
        a = 1 + n / (np.sum(log_x[i:]) - n * log_x[i])
        alphas[i] = a
        if a > 1:
            Ds[i] = np.max(np.abs(1 - (x[i:] / x[i]) ** (-a + 1) - np.arange(n) / n))
    return alphas, Ds


def _small_n(x: np.ndarray, log_x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    N = x.size
    alphas, Ds = np.zeros(N - 1), np.ones(N - 1)
    any_candidate = False
    for i in range(N - 1):
        n_int = N - i
        if n_int < SMALL_N_K_MIN:
            continue
        n = float(n_int)
        s = np.sum(log_x[i:]) - n * log_x[i]
        if s <= 1e-12:
            continue
        a = 1.0 + (n - 1.0) / s
        alphas[i] = a
        if a <= 1.0:
            continue
        Ds[i] = float(np.max(np.abs(np.arange(n_int) / n - (1.0 - (x[i:] / x[i]) ** (1.0 - a)))))
        any_candidate = True
    if not any_candidate:  # the whole sample as the tail
        n = float(N)
        s = np.sum(log_x) - n * log_x[0]
        if s > 1e-12:
            a = 1.0 + (n - 1.0) / s
            alphas[0] = a
            Ds[0] = float(np.max(np.abs(np.arange(N) / n - (1.0 - (x / x[0]) ** (1.0 - a)))))
    return alphas, Ds


def fit(evals) -> Fit:
    """WeightWatcher 0.7.7's default power-law fit of an ESD (all eigenvalues, any order)."""
    evals = np.asarray(evals, dtype=np.float64).ravel()
    x = np.sort(evals[evals > EVALS_THRESH])
    N = x.size
    if N < 2:
        return Fit(-1.0, -1.0, -1.0, -1.0, -1, N, N < SMALL_N_CUTOFF)
    log_x = np.log(x)
    small = N < SMALL_N_CUTOFF
    alphas, Ds = (_small_n if small else _standard)(x, log_x)
    i = int(np.argmin(Ds))
    sigma = (alphas[i] - 1) / math.sqrt(N - i)
    return Fit(float(alphas[i]), float(x[i]), float(Ds[i]), float(sigma),
               int(np.sum(evals >= x[i])), N, small)


def conv2d_wmats(w: np.ndarray) -> tuple[list[np.ndarray], int, int, int]:
    """``conv2D_Wmats(W, channels=LAST)`` for a PyTorch (out, in, kh, kw) tensor: slices, N, M, rf."""
    N, M, imax, jmax = w.shape
    mats = []
    if N + M >= imax + jmax:
        for i in range(imax):
            for j in range(jmax):
                s = w[:, :, i, j]
                if s.shape[0] < s.shape[1]:
                    N, M = M, N
                    s = s.T
                mats.append(s)
    else:  # detected "channels first" while PyTorch says last: WW's flip branch
        N, M, imax, jmax = imax, jmax, N, M
        for i in range(N):
            for j in range(M):
                s = w[:, :, i, j]
                if imax < jmax:
                    s = s.T
                mats.append(s)
        N, M, imax, jmax = imax, jmax, N, M
    return mats, N, M, imax * jmax


def layer_matrices(weight) -> tuple[list[np.ndarray], int, int, int]:
    """The (normalised, float64) matrices of a Linear (2-D) or Conv2d (4-D) weight, and N, M, rf."""
    w = np.asarray(weight, dtype=np.float32)
    if w.ndim == 2:
        return [w.astype(np.float64)], max(w.shape), min(w.shape), 1
    if w.ndim != 4:
        raise ValueError(f"a Linear or Conv2d weight has 2 or 4 dimensions, not {w.ndim}")
    mats, N, M, rf = conv2d_wmats(w)
    norm = np.sqrt(1 / 2.0)
    return [m * norm for m in mats], N, M, rf


def supported(N: int, M: int, rf: int) -> bool:
    """``layer_supported`` with analyze()'s defaults (pool=True)."""
    return not (M * rf < MIN_EVALS or M * rf > MAX_EVALS or N > MAX_N)


def layer_evals(weight) -> np.ndarray:
    """The pooled, ascending eigenvalues WeightWatcher fits for one layer."""
    mats, _, _, _ = layer_matrices(weight)
    return np.sort(np.concatenate([np.linalg.svd(m, compute_uv=False) ** 2 for m in mats]))


def analyze(weights: dict) -> dict[str, Fit]:
    """``WeightWatcher(model).analyze()`` alphas over named Linear (2-D) / Conv2d (4-D) weights."""
    out = {}
    for name, w in weights.items():
        mats, N, M, rf = layer_matrices(w)
        if not supported(N, M, rf):
            continue
        out[name] = fit(np.concatenate([np.linalg.svd(m, compute_uv=False) ** 2 for m in mats]))
    return out
