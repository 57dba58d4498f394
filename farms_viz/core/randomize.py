"""WeightWatcher 0.7.7's ``randomize=True`` metrics: the ESD of the element-wise shuffled matrix.

Shuffling the entries of W keeps their distribution and destroys their correlations, so the
randomized ESD is what the same entries give as noise. A Marchenko-Pastur bulk fits it unless a few
entries are so large that each alone makes an eigenvalue beyond the bulk edge: a correlation trap
(Martin and Mahoney). WW (``apply_random_esd`` weightwatcher.py 2971-3021, ``random_eigenvalues``
4079-4124, ``apply_mp_fit(random=True)`` 4669-4737) shuffles each slice in place with the global
``np.random``; here each shuffle is a permutation drawn from ``np.random.default_rng(seed)``, so the
same seed gives the same randomized ESD. Everything is float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from farms_viz.core.metrics import gram_eigs
from farms_viz.core.mp import MPKdeFit, fit_mp_kde

#: WW shuffles 5 times and pools the replicas when a layer's n_comp = M * rf (its smaller side times
#: the number of slices: every eigenvalue, except for WW's even-kernel conv quirk, see
#: metrics.ww_dims) is below this.
FEW_EIGS = 100
FEW_EIGS_REPLICAS = 5


def n_replicas(n_comp: int) -> int:
    """How many shuffles WW pools: 5 when n_comp = M * (number of slices) is below FEW_EIGS, else 1."""
    return FEW_EIGS_REPLICAS if n_comp < FEW_EIGS else 1


def _stack(W) -> np.ndarray:
    w = np.asarray(W, dtype=np.float64)
    if w.ndim == 2:
        return w[None]
    if w.ndim != 3:
        raise ValueError(f"expected a matrix or a stack of slices (k, rows, cols), got shape {w.shape}")
    return w


def permutations(shape: tuple[int, int, int], seed, replicas: int) -> list[list[np.ndarray]]:
    """The element permutations of every slice for each replica, [replica][slice], drawn in that order
    from ``np.random.default_rng(seed)`` (``seed``: an int, a sequence of ints, or a SeedSequence)."""
    rng = np.random.default_rng(seed)
    k, r, c = shape
    return [[rng.permutation(r * c) for _ in range(k)] for _ in range(replicas)]


def shuffle(slices, perms: list[np.ndarray]) -> np.ndarray:
    """Each slice with its entries permuted: slice s becomes ravel(slice s)[perms[s]] reshaped."""
    w = _stack(slices)
    return np.stack([w[s].ravel()[p].reshape(w[s].shape) for s, p in enumerate(perms)])


def shuffle_slices(slices: torch.Tensor, seed, replicas: int, in_place: bool = False) -> torch.Tensor:
    """Each slice of a stack (k, r, c) with its entries permuted, ``replicas`` times: (replicas * k, r, c),
    replica-major, equal to :func:`shuffle` with :func:`permutations` (same seed, same order).

    numpy's ``Generator.shuffle`` of an array makes the same swaps as ``permutation(n)`` makes on
    arange(n), so shuffling the entries in place gives ``ravel(slice)[perm]`` without the
    permutation's int64 array (twice a float32 layer). ``in_place`` (one replica, a contiguous CPU
    stack that the caller owns and no longer needs) shuffles ``slices`` itself: no copy at all.
    """
    rng = np.random.default_rng(seed)
    k = slices.shape[0]
    if in_place and replicas == 1 and slices.device.type == "cpu" and slices.is_contiguous():
        out = slices
    else:
        out = torch.empty((replicas * k, *slices.shape[1:]), dtype=slices.dtype)
        for i in range(replicas):
            out[i * k : (i + 1) * k].copy_(slices)
    flat = out.numpy().reshape(out.shape[0], -1)
    for i in range(out.shape[0]):
        rng.shuffle(flat[i])
    return out


@dataclass(frozen=True)
class RandomizedESD:
    """The randomized ESD: ``esd`` pooled over the replicas (what WW fits), ``first`` the first
    replica's alone (same length as the layer's ESD: what rand_distance compares), both ascending."""

    esd: np.ndarray
    first: np.ndarray
    replicas: int


def randomized_esd(slices, seed, eigs: Callable[[np.ndarray], np.ndarray] = gram_eigs,
                   perms: list[list[np.ndarray]] | None = None, n_short: int | None = None) -> RandomizedESD:
    """The ESD of the element-wise shuffled slices (each slice shuffled within itself, as WW).

    ``eigs`` maps one matrix to its eigenvalues of W^T W (default: float64 Gram, exact enough for a
    shuffled, i.e. well-conditioned, matrix); ``perms`` reuses :func:`permutations`' output;
    ``n_short`` is WW's M for the replica rule (default: the slices' smaller side).
    """
    w = _stack(slices)
    reps = n_replicas(w.shape[0] * (n_short if n_short is not None else min(w.shape[1:])))
    perms = perms if perms is not None else permutations(w.shape, seed, reps)
    per_rep = [np.sort(np.concatenate([eigs(m) for m in shuffle(w, p)])) for p in perms]
    return RandomizedESD(np.sort(np.concatenate(per_rep)), per_rep[0], len(perms))


def rand_distance(esd, rand_esd) -> float:
    """WW's rand_distance (``jensen_shannon_distance`` RMT_Util.py 1078-1097), in nats.

    WW passes the two ascending eigenvalue ARRAYS, not histograms: p = l / sum(l) and
    q = l_rand / sum(l_rand) are read as distributions over the index i, m = (l + l_rand) / 2
    normalised likewise, and the distance is sqrt((KL(p || m) + KL(q || m)) / 2) (natural
    logarithms, scipy.stats.entropy); 0 when the sorted spectra are proportional, at most
    sqrt(ln 2) = 0.833. WW draws a fresh shuffle for it; the first replica is used here, which
    has the same distribution and saves one decomposition.
    """
    a = np.asarray(esd, dtype=np.float64)
    b = np.asarray(rand_esd, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"rand_distance compares spectra of equal length, got {a.size} and {b.size}")
    if not (np.sum(a) > 0 and np.sum(b) > 0):  # an all-zero spectrum is no distribution
        return math.nan
    m = (a + b) / 2
    m = m / np.sum(m)

    def kl(x):
        x = x / np.sum(x)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(x > 0, x * np.log(x / m), 0.0)
        return float(np.sum(t))

    # KL >= 0; a sum of round-offs can be -1e-17 for equal spectra
    return float(np.sqrt(max(0.0, (kl(a) + kl(b)) / 2)))


@dataclass(frozen=True)
class RandomizedMetrics:
    """WW's randomize=True columns of one layer, with the randomized ESD and its MP fit."""

    rand_esd: np.ndarray
    fit: MPKdeFit
    rand_distance: float

    def columns(self) -> dict[str, float]:
        """As WW names them: num_traps is rand_num_spikes (WW writes both)."""
        return dict(rand_sigma_mp=self.fit.sigma, rand_bulk_max=self.fit.bulk_max,
                    rand_bulk_min=self.fit.bulk_min, rand_num_spikes=self.fit.num_spikes,
                    num_traps=self.fit.num_spikes, rand_mp_softrank=self.fit.mp_softrank,
                    rand_distance=self.rand_distance,
                    max_rand_eval=float(self.rand_esd[-1]) if self.rand_esd.size else math.nan)

    @property
    def traps(self) -> np.ndarray:
        """The randomized eigenvalues beyond the spike edge (WW's traps), ascending."""
        return self.rand_esd[self.rand_esd > self.fit.spike_edge]


def randomized_metrics(slices, esd, n_long: int, n_short: int, seed,
                       eigs: Callable[[np.ndarray], np.ndarray] = gram_eigs) -> RandomizedMetrics:
    """Randomized ESD, its MP fit (:func:`fit_mp_kde`, WW's rule: traps are randomized
    eigenvalues > bulk_max + sqrt(TW), counted over all pooled replicas) and rand_distance."""
    r = randomized_esd(slices, seed, eigs, n_short=n_short)
    e = np.sort(np.asarray(esd, dtype=np.float64).ravel())
    return RandomizedMetrics(r.esd, fit_mp_kde(r.esd, n_long, n_short), rand_distance(e, r.first))


@dataclass(frozen=True)
class TrapEntries:
    """Entries whose removal clears the randomized ESD's traps.

    ``positions`` (k, W.ndim): indices into W ((row, col) for a matrix, (slice, row, col) for a
    stack), in the order removed; ``values`` their original values; ``cleared`` False when
    ``max_entries`` removals left traps (e.g. a large mean, whose rank-one spike no entry removal
    takes away), then ``positions`` lists all the entries tried.
    """

    positions: np.ndarray
    values: np.ndarray
    num_traps_before: int
    num_traps_after: int
    cleared: bool


def trap_entries(W, seed, n_long: int | None = None, n_short: int | None = None, max_entries: int = 64,
                 eigs: Callable[[np.ndarray], np.ndarray] = gram_eigs) -> TrapEntries:
    """The largest entries whose removal brings the randomized ESD back inside its MP edge.

    Greedy, in order: entries ranked by |w - mean| (the mean of their slice; for zero-mean weights,
    by |w|), ties by position; remove the first 1, 2, ... and after each removal shuffle with the
    SAME permutations (seed), refit WW's MP fit and count the traps; stop at the first count of 0.
    One decomposition per step, at most ``max_entries`` + 1.

    A removed entry is set to its slice's mean, not to zero: it then sits at the centre of the entry
    distribution, adding nothing to the spread the MP edge is fitted to. For zero-mean weights the
    two are the same; for a layer whose entries have a mean far from zero, a zero would be a new
    outlier of its own.
    """
    w = _stack(W).copy()
    k, r, c = w.shape
    n_long = n_long if n_long is not None else max(r, c)
    n_short = n_short if n_short is not None else min(r, c)
    perms = permutations(w.shape, seed, n_replicas(k * n_short))
    mean = w.mean(axis=(1, 2))
    dev = np.abs(w - mean[:, None, None]).ravel()
    order = np.argsort(-dev, kind="stable")[:max_entries]

    def traps(m: np.ndarray) -> int:
        return fit_mp_kde(randomized_esd(m, None, eigs, perms).esd, n_long, n_short).num_spikes

    before = now = traps(w)
    done = 0
    while now > 0 and done < order.size:
        s, i, j = np.unravel_index(order[done], w.shape)
        w[s, i, j] = mean[s]
        done += 1
        now = traps(w)
    idx = np.array(np.unravel_index(order[:done], (k, r, c))).T.reshape(-1, 3)
    vals = np.asarray(W, dtype=np.float64).reshape(k, r, c)[tuple(idx.T)]
    if np.asarray(W).ndim == 2:
        idx = idx[:, 1:]
    return TrapEntries(idx, vals, before, now, now == 0)
