"""A layer's metrics beyond alpha (WeightWatcher 0.7.7's set), raw and FARMS, as table columns.

The numbers come from :mod:`farms_viz.core.metrics` and :mod:`farms_viz.core.randomize`; this module
decides what each means on the FARMS side (where the definition carries over):

- norms, alpha_weighted, log_alpha_norm, detX, weak_rank_loss and the entropy: of the pooled FARMS
  ESD (the entropy normalised by that ESD's numerical rank);
- rank_loss, sv_max, sv_min: per matrix, so raw only;
- WW's MP fit (mp_softrank): fitted to the pooled ESD with the window's dimensions;
- randomization: the layer's slices are shuffled element-wise with one seeded permutation per
  slice and the SAME shuffled matrix goes through the raw ESD and the FARMS windows (or conv
  blocks); traps on the FARMS side are counted per window, like n_spikes_farms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from farms_viz.core.metrics import esd_metrics, fit_mp_kde, matrix_entropy, matrix_rank, slice_singular_values
from farms_viz.core.randomize import n_replicas, permutations, rand_distance, randomized_esd, shuffle
from farms_viz.core.spectra import conv_block_esds, farms_esd
from farms_viz.settings import Settings

#: WeightWatcher's names of the deterministic metrics, each a ``<name>_raw`` / ``<name>_farms`` column
WW_METRICS = ("log_norm", "log_spectral_norm", "log_alpha_norm", "alpha_weighted", "entropy",
              "mp_softrank", "rank_loss", "weak_rank_loss", "sv_max", "sv_min", "detX_num", "detX_val")
#: ... and of the randomized ones (``randomize=True``)
RAND_METRICS = ("rand_sigma_mp", "rand_bulk_max", "rand_num_spikes", "rand_distance", "num_traps")
#: metrics defined per matrix only: their FARMS column stays NaN
RAW_ONLY = ("rank_loss", "sv_max", "sv_min")
METRICS = WW_METRICS + RAND_METRICS


def metric_columns() -> list[str]:
    return [f"{m}_{w}" for m in METRICS for w in ("raw", "farms")]


@dataclass(frozen=True)
class RandSide:
    """One side's randomized ESD (ascending), WW's MP bulk edge of it and the trap threshold."""

    esd: np.ndarray
    bulk_max: float
    spike_edge: float
    n_traps: int


def _pooled_farms(slices: torch.Tensor, kind_blocks: bool, settings: Settings) -> np.ndarray:
    if kind_blocks:
        blocks, _ = conv_block_esds(slices, settings.q, settings.device)
        return np.sort(np.concatenate(blocks))
    e, _ = farms_esd(slices, settings.window, settings.q, settings.ops, settings.device)
    return e


def layer_metrics(slices: torch.Tensor, e_raw: np.ndarray, e_farms: np.ndarray, alpha_raw: float,
                  alpha_farms: float, window: tuple[int, int], n_windows: int, blocks: bool,
                  settings: Settings) -> tuple[dict, RandSide | None, RandSide | None]:
    """The metric columns of one layer, and (with ``settings.randomize``) both randomized sides.

    numpy's BLAS runs on one thread here: layers are analysed in a pool of threads, and a BLAS
    that starts its own threads in each oversubscribes the cores (a 384 x 384 float64 eigvalsh
    measured 1.23 s instead of 0.03 s)."""
    with threadpool_limits(1):
        return _layer_metrics(slices, e_raw, e_farms, alpha_raw, alpha_farms, window, n_windows, blocks, settings)


def _layer_metrics(slices, e_raw, e_farms, alpha_raw, alpha_farms, window, n_windows, blocks, settings):
    k, r, c = slices.shape
    n_long, n_short = max(r, c), min(r, c)
    wl, ws = max(window), min(window)
    w64 = slices.detach().to("cpu", torch.float64).numpy()
    row: dict = {}
    svals = slice_singular_values(w64)
    raw = esd_metrics(e_raw, alpha_raw, n_long, svals)
    raw["mp_softrank"] = fit_mp_kde(e_raw, n_long, n_short).mp_softrank
    farms = esd_metrics(e_farms, alpha_farms, wl, None)
    sv_farms = np.sqrt(np.clip(np.asarray(e_farms, dtype=np.float64), 0.0, None))
    rank = matrix_rank(sv_farms, wl) if sv_farms.size and sv_farms.max() > 0 else 0
    if rank > 0:  # WW's entropy, normalised by the pooled ESD's own rank
        farms["entropy"] = matrix_entropy(e_farms, rank)
    farms["mp_softrank"] = fit_mp_kde(e_farms, wl, ws).mp_softrank
    for name in RAW_ONLY:
        farms[name] = math.nan
    for m in WW_METRICS:
        row[f"{m}_raw"], row[f"{m}_farms"] = raw.get(m, math.nan), farms.get(m, math.nan)
    for m in RAND_METRICS:
        row[f"{m}_raw"] = row[f"{m}_farms"] = math.nan
    if not settings.randomize:
        return row, None, None
    perms = permutations(w64.shape, settings.seed, n_replicas(k * n_short))
    rr = randomized_esd(w64, None, perms=perms)
    fr = fit_mp_kde(rr.esd, n_long, n_short)
    row.update(rand_sigma_mp_raw=fr.sigma, rand_bulk_max_raw=fr.bulk_max, rand_num_spikes_raw=fr.num_spikes,
               num_traps_raw=fr.num_spikes, rand_distance_raw=rand_distance(np.sort(e_raw), rr.first))
    side_raw = RandSide(rr.esd, fr.bulk_max, fr.spike_edge, int(max(fr.num_spikes, 0)))
    shuffled = torch.from_numpy(shuffle(w64, perms[0])).to(torch.float32)
    rf = _pooled_farms(shuffled, blocks, settings)
    ff = fit_mp_kde(rf, wl, ws)
    per = max(1, n_windows)
    row.update(rand_sigma_mp_farms=ff.sigma, rand_bulk_max_farms=ff.bulk_max,
               rand_num_spikes_farms=ff.num_spikes / per if ff.num_spikes >= 0 else math.nan,
               num_traps_farms=ff.num_spikes / per if ff.num_spikes >= 0 else math.nan,
               rand_distance_farms=rand_distance(np.sort(e_farms), rf) if rf.size == e_farms.size else math.nan)
    side_farms = RandSide(rf, ff.bulk_max, ff.spike_edge, int(max(ff.num_spikes, 0)))
    return row, side_raw, side_farms
