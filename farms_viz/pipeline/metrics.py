"""A layer's metrics beyond alpha (WeightWatcher 0.7.7's set), raw and FARMS, as table columns.

Every number comes from eigenvalues the layer's analysis already has or computes once by the same
batched torch route as the alphas (spectra.matrix_eigs: GPU when asked, float64 where float32 is not
exact enough); singular values are their square roots (an SVD only for a slice too close to rank
deficiency for a Gram matrix to resolve, see core.metrics.SV_TRUST). The formulas are in
:mod:`farms_viz.core.metrics` and :mod:`farms_viz.core.randomize`; this module decides what each
means on the FARMS side (where the definition carries over):

- norms, alpha_weighted, log_alpha_norm, detX, weak_rank_loss and the entropy: of the pooled FARMS
  ESD (the entropy normalised by that ESD's numerical rank);
- rank_loss, sv_max, sv_min: per matrix, so raw only;
- WW's MP fit (mp_softrank): fitted to the pooled ESD with the window's dimensions;
- randomization: the layer's slices are shuffled element-wise with one seeded permutation per
  slice and the SAME shuffled matrix goes through the raw ESD and the FARMS windows (or conv
  blocks); traps on the FARMS side are counted per window, like n_spikes_farms.

Where the FARMS ESD is the raw ESD (one window covers the matrix) the raw side's numbers are reused.

Memory, for a layer of k slices of r x c float32 entries (L = 4 k r c bytes), on top of the layer
itself: the randomized pass holds one shuffled copy at a time (L; WW's five shuffles of a layer with
fewer than 100 eigenvalues one after another; none for the last when the source read the layer fresh,
see ``owned``), and nothing else per entry: no permutation array, no float64 copy (Gram matrices are
accumulated from float64 chunks of 32 MiB, gram.GRAM_CHUNK_BYTES; FARMS windows are stacked in
chunks of 256 MiB). So the peak of a layer is about 2 L + its Gram matrices (8 k s^2 bytes, s the
short side, twice while eigvalsh copies them) + one window chunk: measured in
benchmarks/bench_one_pass.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from farms_viz.core.matrices import LayerMatrices
from farms_viz.core.metrics import esd_metrics, matrix_entropy, matrix_rank, slice_singular_values
from farms_viz.core.mp import MPKdeFit, fit_mp_kde
from farms_viz.core.randomize import n_replicas, rand_distance, shuffle_slices
from farms_viz.core.spectra import slice_eigs
from farms_viz.pipeline.farms import FarmsSide, farms_spectra
from farms_viz.settings import Settings

#: WeightWatcher's names of the deterministic metrics, each a ``<name>_raw`` / ``<name>_farms`` column
WW_METRICS = ("log_norm", "log_spectral_norm", "log_alpha_norm", "alpha_weighted", "entropy",
              "mp_softrank", "rank_loss", "weak_rank_loss", "sv_max", "sv_min", "detX_num", "detX_val")
#: ... and of the randomized ones (``randomize=True``)
RAND_METRICS = ("rand_sigma_mp", "rand_bulk_max", "rand_num_spikes", "rand_distance", "num_traps")
#: metrics defined per matrix only: their FARMS column stays NaN
RAW_ONLY = ("rank_loss", "sv_max", "sv_min")
METRICS = WW_METRICS + RAND_METRICS
#: WW analyses a layer only when it has at least this many eigenvalues (``DEFAULT_MIN_EVALS``,
#: constants.py 144; checked as M * rf < min_evals, weightwatcher.py 1735: the smaller side times the
#: slices); below it WW reports no row, so the metric columns stay NaN. A 4 x 4 expert then costs its
#: ESD and alpha only (0.3 ms instead of 2.5 ms with WW's two MP fits).
WW_MIN_EVALS = 8


def metric_columns() -> list[str]:
    return [f"{m}_{w}" for m in METRICS for w in ("raw", "farms")]


@dataclass(frozen=True)
class RandSide:
    """One side's randomized ESD (ascending), WW's MP bulk edge of it and the trap threshold."""

    esd: np.ndarray
    bulk_max: float
    spike_edge: float
    n_traps: int


def _rand_side(esd: np.ndarray, fit: MPKdeFit) -> RandSide:
    return RandSide(esd, fit.bulk_max, fit.spike_edge, int(max(fit.num_spikes, 0)))


def layer_metrics(mats: LayerMatrices, slice_eigs: np.ndarray, e_raw: np.ndarray, alpha_raw: float,
                  side: FarmsSide, settings: Settings, owned: bool = False, ww_nm: tuple[int, int] | None = None
                  ) -> tuple[dict, RandSide | None, RandSide | None]:
    """The metric columns of one layer, and (with ``settings.randomize``) both randomized sides.

    ``slice_eigs`` (k, side): each slice's eigenvalues of W^T W (spectra.matrix_eigs), ``e_raw`` them
    pooled and sorted, ``side`` the layer's FARMS side. ``owned``: the caller owns ``mats.slices`` and
    needs them no more, so the shuffle may overwrite them (one layer-sized copy fewer). ``ww_nm``: WW's
    N, M of the layer where they are not (long side, short side) (core.metrics.ww_dims: an even-kernel
    conv with fewer outputs than inputs), for the raw side's MP fits and ranks."""
    k, r, c = mats.slices.shape
    n_long, n_short = ww_nm or (max(r, c), min(r, c))
    grid = side.grid
    wl, ws = max(grid.h, grid.w), min(grid.h, grid.w)
    same = side.is_raw
    row: dict = {f"{m}_{w}": math.nan for m in METRICS for w in ("raw", "farms")}
    if k * n_short < WW_MIN_EVALS:  # WW's M * rf
        return row, None, None
    svals = slice_singular_values(mats.slices, slice_eigs,
                                  svd=lambda s: torch.linalg.svdvals(mats.slices[s].to(torch.float64)).cpu().numpy())
    raw = esd_metrics(e_raw, alpha_raw, n_long, svals)
    mp_raw = fit_mp_kde(e_raw, n_long, n_short)
    raw["mp_softrank"] = mp_raw.mp_softrank
    if same:  # the FARMS ESD and its fit are the raw ones (farms.farms_side reuses the raw fit)
        farms = dict(raw)
    else:
        e_farms = side.esd
        farms = esd_metrics(e_farms, side.fit.alpha, wl, None)
        sv_farms = np.sqrt(np.clip(np.asarray(e_farms, dtype=np.float64), 0.0, None))
        rank = matrix_rank(sv_farms, wl) if sv_farms.size and sv_farms.max() > 0 else 0
        if rank > 0:  # WW's entropy, normalised by the pooled ESD's own rank
            farms["entropy"] = matrix_entropy(e_farms, rank)
        farms["mp_softrank"] = fit_mp_kde(e_farms, wl, ws).mp_softrank
    for name in RAW_ONLY:
        farms[name] = math.nan
    for m in WW_METRICS:
        row[f"{m}_raw"], row[f"{m}_farms"] = raw.get(m, math.nan), farms.get(m, math.nan)
    if not settings.randomize:
        return row, None, None
    rand_row, side_raw, side_farms = _randomized(mats, e_raw, side, same, settings, owned, (n_long, n_short))
    row.update(rand_row)
    return row, side_raw, side_farms


def _randomized(mats: LayerMatrices, e_raw: np.ndarray, side: FarmsSide, same: bool, settings: Settings,
                owned: bool, nm: tuple[int, int]) -> tuple[dict, RandSide, RandSide]:
    """WW's randomize=True columns, raw and FARMS: one shuffle (WW's five for a layer of fewer than
    randomize.FEW_EIGS eigenvalues, pooled on the raw side), its eigenvalues by the alphas' route,
    and the first shuffle through the FARMS windows or blocks (where one window covers each slice,
    the raw side: as for every other column, FARMS cannot change such a layer)."""
    k, r, c = mats.slices.shape
    n_long, n_short = nm
    grid = side.grid
    wl, ws = max(grid.h, grid.w), min(grid.h, grid.w)
    reps = n_replicas(k * n_short)
    rng = np.random.default_rng(settings.seed)  # one stream, drawn replica by replica as WW's loop
    per_rep, esds = [], None
    for i in range(reps):  # one shuffled copy at a time (the last one in place where the slices are ours)
        shuffled = shuffle_slices(mats.slices, rng, 1, in_place=owned and i == reps - 1)
        per_rep.append(np.sort(slice_eigs(shuffled, settings.device, bulk_only=True).reshape(-1)))
        if i == 0 and not same:
            esds, _ = farms_spectra(shuffled, settings, per_rep[0], side.blocks, bulk_only=True)
        del shuffled
    first = per_rep[0]
    rand_esd = np.sort(np.concatenate(per_rep)) if reps > 1 else first
    fr = fit_mp_kde(rand_esd, n_long, n_short)
    d_raw = rand_distance(e_raw, first)
    if same:  # one window covers each slice: the FARMS side of the shuffle is its raw side
        rf, ff, d_farms = rand_esd, fr, d_raw
    else:
        rf = np.sort(np.concatenate(esds)) if len(esds) > 1 else esds[0]
        ff = fit_mp_kde(rf, wl, ws)
        d_farms = rand_distance(side.esd, rf) if rf.size == side.esd.size else math.nan
    per = max(1, grid.n_windows * k)
    row = dict(rand_sigma_mp_raw=fr.sigma, rand_bulk_max_raw=fr.bulk_max, rand_num_spikes_raw=fr.num_spikes,
               num_traps_raw=fr.num_spikes, rand_distance_raw=d_raw,
               rand_sigma_mp_farms=ff.sigma, rand_bulk_max_farms=ff.bulk_max,
               rand_num_spikes_farms=ff.num_spikes / per if ff.num_spikes >= 0 else math.nan,
               num_traps_farms=ff.num_spikes / per if ff.num_spikes >= 0 else math.nan,
               rand_distance_farms=d_farms)
    return row, _rand_side(rand_esd, fr), _rand_side(rf, ff)
