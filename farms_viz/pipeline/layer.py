"""One layer, start to finish: load the tensor, raw ESD, FARMS ESD, fits, norms, a table row.

Never raises for one layer's trouble: a :class:`FarmsError` becomes the row's ``status``, so one
odd tensor cannot lose a whole model's run.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import asdict

import numpy as np
import torch

from farms_viz.core.fits import PowerLawFit, fit_power_law
from farms_viz.core.matrices import LayerMatrices, to_matrices
from farms_viz.core.metrics import ww_dims
from farms_viz.core.mp import MPFit, fit_mp
from farms_viz.core.spectra import WindowGrid, slice_eigs
from farms_viz.errors import FarmsError
from farms_viz.io.cache import LayerCache, tensor_key
from farms_viz.io.refs import TensorRef
from farms_viz.pipeline.farms import farms_side, log10, uses_blocks
from farms_viz.pipeline.metrics import RandSide, layer_metrics
from farms_viz.pipeline.schema import COLUMNS, THUMB_SIDE, LayerSpectra
from farms_viz.settings import Settings


def thumbnail(mat: torch.Tensor, max_side: int = THUMB_SIDE, chunk_rows: int = 4096) -> np.ndarray:
    """Block-mean of |W| down to at most ``max_side`` per side (adaptive average pooling).

    Separable: each row's column bins first, over ``chunk_rows`` rows at a time (no |W| copy of a
    whole layer: 256 MiB for 64 x 2^20), then the row bins; a bin's mean is the mean of its rows'."""
    h, w = mat.shape
    oh, ow = min(h, max_side), min(w, max_side)
    pool = torch.nn.functional.adaptive_avg_pool1d
    cols = torch.cat([pool(mat[s : s + chunk_rows].abs().float()[None], ow)[0] for s in range(0, h, chunk_rows)])
    return pool(cols.mT[None], oh)[0].mT.cpu().numpy()


def empty_row(ref: TensorRef) -> dict:
    """A row for ``ref`` with its name, kind and shape, every number NaN (or 0 for counts), status ok."""
    row = {c: math.nan for c in COLUMNS}
    shape = ref.shape
    row.update(layer=ref.layer, kind=ref.kind or "", dtype=ref.dtype,
               rows=int(shape[0]) if len(shape) >= 1 else 0,
               cols=int(shape[1]) if len(shape) >= 2 else 0,
               n_slices=0, n_windows=0, n_eigs_raw=0, n_eigs_farms=0, n_tail_raw=0, n_tail_farms=0,
               n_spikes_raw=0, n_spikes_farms=0.0, status="ok")
    return row


def check_tensor(t: torch.Tensor) -> str | None:
    """Why a tensor cannot be analysed honestly, or None."""
    if not t.is_floating_point() or t.dtype.itemsize < 2:  # integers, float8 formats
        return f"{str(t.dtype).replace('torch.', '')} tensor (integer or quantised weights are not analysed)"
    if t.numel() == 0:
        return "empty tensor"
    # one reduction, no copy (torch.isfinite takes |t|: 450 MiB transient for a 256 MiB layer);
    # NaN propagates through aminmax, so both ends are finite exactly when every entry is
    lo, hi = (float(v) for v in torch.aminmax(t.detach().reshape(-1)))
    if not (math.isfinite(lo) and math.isfinite(hi)):
        bad = sum(int((~torch.isfinite(c)).sum()) for c in t.detach().reshape(-1).split(2**22))
        return f"{bad} NaN or Inf entries; no alpha is computed from corrupt weights"
    if lo == 0.0 and hi == 0.0:
        return "all entries are zero; the spectrum is empty"
    return None


def analyze_layer(ref: TensorRef, settings: Settings, cache: LayerCache | None = None
                  ) -> tuple[dict, LayerSpectra | None]:
    """Analyse one tensor: raw ESD, FARMS pooled ESD, fits and norms. Never raises (but for
    KeyboardInterrupt): a FarmsError becomes the layer's status, any other exception the status
    ``internal error: ...``, and the other layers go on.

    With a ``cache``, a tensor whose bytes, kind and settings were analysed before is read
    back instead of recomputed.
    """
    try:
        return _analyze_layer(ref, settings, cache)
    except Exception as e:  # a bug or a library failure in one layer must not lose the whole run
        row = empty_row(ref)
        row["status"] = f"internal error: {type(e).__name__}: {e}"
        return row, None


def _analyze_layer(ref: TensorRef, settings: Settings, cache: LayerCache | None) -> tuple[dict, LayerSpectra | None]:
    row = empty_row(ref)
    t0 = time.perf_counter()
    try:
        w = ref.load()
        bad = check_tensor(w)
        if bad:
            row["status"] = bad
            return row, None
        key = tensor_key(w, ref.kind, settings) if cache is not None else None
        if key is not None and (hit := cache.get(key)) is not None:
            try:
                return _from_cache(ref, row, *hit, settings)
            except (KeyError, TypeError, ValueError, AttributeError):  # a damaged record: a miss
                cache.drop(key)
                row = empty_row(ref)
        mats: LayerMatrices = to_matrices(w, ref.kind, settings.conv_norm)
        # the slices are ours to overwrite when the source read them fresh or to_matrices made them
        owned = ref.owned or mats.slices.untyped_storage().data_ptr() != w.untyped_storage().data_ptr()
        del w
        row.update(rows=mats.rows, cols=mats.cols, n_slices=mats.n_slices,
                   aspect_ratio=max(mats.rows, mats.cols) / min(mats.rows, mats.cols))
        long_, short = max(mats.rows, mats.cols), min(mats.rows, mats.cols)
        eigs = slice_eigs(mats.slices, settings.device)  # (k, short): the one raw solve
        e_raw = np.sort(eigs.reshape(-1))
        fr = fit_power_law(e_raw, settings.fit, settings.xmin_pos, dim=long_)
        side = farms_side(mats, settings, e_raw, fr)
    except FarmsError as e:
        row["status"] = str(e)
        return row, None
    e_farms, grid, ff = side.esd, side.grid, side.fit
    wl, ws = max(grid.h, grid.w), min(grid.h, grid.w)
    mr = fit_mp(e_raw, long_, short)
    mf = mr if side.is_raw else fit_mp(e_farms, wl, ws)
    lam_max = float(e_raw[-1]) if e_raw.size else math.nan
    fro2 = float(e_raw.sum())
    n_windows = grid.n_windows * mats.n_slices
    row.update(
        window_rows=grid.h, window_cols=grid.w, n_windows=n_windows,
        n_eigs_raw=fr.n_eigs, n_eigs_farms=ff.n_eigs,
        alpha_raw=fr.alpha, alpha_farms=ff.alpha, xmin_raw=fr.xmin, xmin_farms=ff.xmin,
        D_raw=fr.D, D_farms=ff.D, n_tail_raw=fr.n_tail, n_tail_farms=ff.n_tail,
        spectral_norm=lam_max, frobenius_norm2=fro2,
        stable_rank=fro2 / lam_max if lam_max > 0 else math.nan,
        alpha_hat_raw=fr.alpha * log10(lam_max), alpha_hat_farms=side.alpha_hat,
        mp_sigma_raw=mr.sigma, mp_sigma_farms=mf.sigma,
        n_spikes_raw=mr.n_spikes, n_spikes_farms=mf.n_spikes / n_windows,
    )
    thumb = thumbnail(mats.slices[0])  # before the randomized pass, which may shuffle owned slices in place
    ww_nm = ww_dims(*ref.shape) if len(ref.shape) == 4 else None  # Conv2d: WW's N, M quirk
    extra, rand_raw, rand_farms = layer_metrics(mats, eigs, e_raw, fr.alpha, side, settings, owned=owned, ww_nm=ww_nm)
    kind = mats.kind
    del mats
    row.update(extra)
    statuses = [s for s in (fr.status, ff.status) if s != "ok"]
    if statuses:
        row["status"] = "; ".join(dict.fromkeys(statuses))
    row["seconds"] = time.perf_counter() - t0
    spec = LayerSpectra(ref.layer, kind, int(row["rows"]), int(row["cols"]),
                        e_raw, e_farms, fr, ff, mr, mf, grid, thumb, side.blocks, side.block_esds, rand_raw, rand_farms)
    if key is not None:
        sizes = [int(b.size) for b in side.block_esds]
        rand = [None if r is None else {"bulk_max": r.bulk_max, "spike_edge": r.spike_edge, "n_traps": r.n_traps}
                for r in (rand_raw, rand_farms)]
        cache.put(key, {"row": row, "kind": spec.kind, "fits": [asdict(fr), asdict(ff)],
                        "mp": [asdict(mr), asdict(mf)], "grid": asdict(grid), "block_sizes": sizes, "rand": rand},
                  {"esd_raw": e_raw, "esd_farms": e_farms, "thumbnail": spec.thumbnail,
                   "esd_blocks": np.concatenate(side.block_esds) if sizes else np.zeros(0),
                   "rand_raw": rand_raw.esd if rand_raw is not None else np.zeros(0),
                   "rand_farms": rand_farms.esd if rand_farms is not None else np.zeros(0)})
    return row, spec


_TEXT_COLUMNS = ("layer", "kind", "dtype", "status")
_JSON_TYPES = {"float": (int, float), "int": (int,), "str": (str,), "bool": (bool,)}


def _typed(cls, d: dict):
    """``cls(**d)`` with every field of its annotated JSON type; ValueError for anything else."""
    if not isinstance(d, dict):
        raise ValueError(f"{cls.__name__} record is not an object")
    out = {}
    for f in dataclasses.fields(cls):
        if f.name not in d:
            if f.default is dataclasses.MISSING:
                raise ValueError(f"{cls.__name__} record lacks {f.name}")
            continue
        v = d[f.name]
        t = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
        if t.startswith("tuple"):
            if not isinstance(v, list) or not all(type(i) is int for i in v):
                raise ValueError(f"{cls.__name__}.{f.name} is not a list of integers")
            v = tuple(v)
        elif not isinstance(v, _JSON_TYPES[t]) or (isinstance(v, bool) and t != "bool"):
            raise ValueError(f"{cls.__name__}.{f.name} has type {type(v).__name__}")
        out[f.name] = v
    return cls(**out)


def _from_cache(ref: TensorRef, row: dict, record: dict, arrays: dict, settings: Settings
                ) -> tuple[dict, LayerSpectra]:
    """Rebuild a row and its spectra from a cache entry (the layer name is the current one).

    A record of the right key but the wrong shape or types raises KeyError, TypeError or
    ValueError, which the caller treats as a miss (and deletes the entry).
    """
    cached = record["row"]
    if not isinstance(cached, dict) or not set(cached) <= set(COLUMNS):
        raise ValueError("the cached row has unknown columns")
    for k, v in cached.items():
        ok = isinstance(v, str) if k in _TEXT_COLUMNS else v is None or type(v) in (int, float)
        if not ok:
            raise ValueError(f"the cached row's {k} has type {type(v).__name__}")
    for name, ndim in (("esd_raw", 1), ("esd_farms", 1), ("thumbnail", 2), ("esd_blocks", 1), ("rand_raw", 1),
                       ("rand_farms", 1)):
        a = arrays[name]
        if a.ndim != ndim or a.dtype.kind != "f":
            raise ValueError(f"the cached {name} is not a {ndim}-D float array")
    row.update(cached)
    row["layer"] = ref.layer
    grid = _typed(WindowGrid, record["grid"])
    fr, ff = (_typed(PowerLawFit, f) for f in record["fits"])
    mr, mf = (_typed(MPFit, m) for m in record["mp"])
    if not isinstance(record["kind"], str):
        raise ValueError("the cached kind is not text")
    sizes = record["block_sizes"]
    if not isinstance(sizes, list) or not all(type(n) is int and n >= 0 for n in sizes) \
            or sum(sizes) != arrays["esd_blocks"].size:
        raise ValueError("the cached block sizes do not match the cached block eigenvalues")
    block_esds = tuple(np.split(arrays["esd_blocks"], np.cumsum(sizes)[:-1])) if sizes else ()
    rand = record["rand"]
    if not isinstance(rand, list) or len(rand) != 2:
        raise ValueError("the cached randomized sides are not a pair")
    sides = []
    for which, r in zip(("raw", "farms"), rand):
        if r is None:
            sides.append(None)
            continue
        if not isinstance(r, dict) or not all(type(r.get(k)) in (int, float) for k in ("bulk_max", "spike_edge")) \
                or type(r.get("n_traps")) is not int:
            raise ValueError("a cached randomized side is malformed")
        sides.append(RandSide(arrays[f"rand_{which}"], float(r["bulk_max"]), float(r["spike_edge"]), r["n_traps"]))
    spec = LayerSpectra(ref.layer, record["kind"], int(row["rows"]), int(row["cols"]), arrays["esd_raw"],
                        arrays["esd_farms"], fr, ff, mr, mf, grid, arrays["thumbnail"],
                        uses_blocks(record["kind"], settings), block_esds, *sides)
    return row, spec


