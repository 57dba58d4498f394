"""``analyze()``: run the pipeline over a source and give a report (a row per layer + spectra)."""

from __future__ import annotations

import dataclasses
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
import pandas as pd
import torch

from .cache import LayerCache, tensor_key
from .config import Settings
from .errors import FarmsError
from .fits import PowerLawFit, fit_power_law, mean_fit
from .layerfilter import compile_filter, filter_names
from .matrices import LayerMatrices, to_matrices
from .mp import MPFit, fit_mp
from .sources import Source, TensorRef, open_source
from .spectra import WindowGrid, conv_block_esds, esd, farms_esd, torch_threads
from .tables import to_csv

COLUMNS = [
    "layer", "kind", "rows", "cols", "aspect_ratio", "n_slices", "window_rows", "window_cols",
    "n_windows", "n_eigs_raw", "n_eigs_farms", "alpha_raw", "alpha_farms", "xmin_raw", "xmin_farms",
    "D_raw", "D_farms", "n_tail_raw", "n_tail_farms", "spectral_norm", "frobenius_norm2",
    "stable_rank", "alpha_hat_raw", "alpha_hat_farms", "mp_sigma_raw", "mp_sigma_farms",
    "n_spikes_raw", "n_spikes_farms", "dtype", "seconds", "status",
]

Progress = Callable[[int, int, str], None]


@dataclass
class LayerSpectra:
    """What the plots of one layer need: both ESDs, their fits and the window grid."""

    layer: str
    kind: str
    rows: int
    cols: int
    esd_raw: np.ndarray
    esd_farms: np.ndarray
    fit_raw: PowerLawFit
    fit_farms: PowerLawFit
    mp_raw: MPFit
    mp_farms: MPFit
    grid: WindowGrid
    #: block-mean |W| of the first slice, at most 160 x 160, for the window-grid picture
    thumbnail: np.ndarray | None = None


def thumbnail(mat: torch.Tensor, max_side: int = 160) -> np.ndarray:
    """Block-mean of |W| down to at most ``max_side`` per side (adaptive average pooling)."""
    a = mat.abs().float()[None, None]
    h, w = mat.shape
    out = torch.nn.functional.adaptive_avg_pool2d(a, (min(h, max_side), min(w, max_side)))
    return out[0, 0].cpu().numpy()


@dataclass
class Report:
    """The result of :func:`analyze`: ``table`` (a row per layer) and ``spectra`` by layer name."""

    name: str
    settings: Settings
    table: pd.DataFrame
    spectra: dict[str, LayerSpectra] = field(default_factory=dict)
    metrics_only: bool = False

    def layer(self, name: str) -> LayerSpectra:
        if name not in self.spectra:
            raise FarmsError(f"layer {name!r} has no spectra in this report.")
        return self.spectra[name]

    def save(self, path: str) -> None:
        """Write the table as .csv or .json."""
        if str(path).endswith(".json"):
            self.table.to_json(path, orient="records", indent=1)
        else:
            to_csv(self.table, path)


def _empty_row(ref: TensorRef) -> dict:
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
    finite = torch.isfinite(t)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        return f"{bad} NaN or Inf entries; no alpha is computed from corrupt weights"
    if not bool((t != 0).any()):
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
        row = _empty_row(ref)
        row["status"] = f"internal error: {type(e).__name__}: {e}"
        return row, None


def _analyze_layer(ref: TensorRef, settings: Settings, cache: LayerCache | None) -> tuple[dict, LayerSpectra | None]:
    row = _empty_row(ref)
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
                return _from_cache(ref, row, *hit)
            except (KeyError, TypeError, ValueError, AttributeError):  # a damaged record: a miss
                cache.drop(key)
                row = _empty_row(ref)
        mats: LayerMatrices = to_matrices(w, ref.kind, settings.conv_norm)
        del w
        row.update(rows=mats.rows, cols=mats.cols, n_slices=mats.n_slices,
                   aspect_ratio=max(mats.rows, mats.cols) / min(mats.rows, mats.cols))
        e_raw = esd(mats.slices, settings.device)
        side = farms_side(mats, settings, e_raw)
    except FarmsError as e:
        row["status"] = str(e)
        return row, None
    e_farms, grid, ff = side.esd, side.grid, side.fit
    long_, short = max(mats.rows, mats.cols), min(mats.rows, mats.cols)
    wl, ws = max(grid.h, grid.w), min(grid.h, grid.w)
    fr = fit_power_law(e_raw, settings.fit, settings.xmin_pos, dim=long_)
    mr = fit_mp(e_raw, long_, short)
    mf = fit_mp(e_farms, wl, ws)
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
        alpha_hat_raw=fr.alpha * _log10(lam_max), alpha_hat_farms=side.alpha_hat,
        mp_sigma_raw=mr.sigma, mp_sigma_farms=mf.sigma,
        n_spikes_raw=mr.n_spikes, n_spikes_farms=mf.n_spikes / n_windows,
    )
    statuses = [s for s in (fr.status, ff.status) if s != "ok"]
    if statuses:
        row["status"] = "; ".join(dict.fromkeys(statuses))
    row["seconds"] = time.perf_counter() - t0
    spec = LayerSpectra(ref.layer, mats.kind, mats.rows, mats.cols, e_raw, e_farms, fr, ff, mr, mf, grid,
                        thumbnail(mats.slices[0]))
    if key is not None:
        cache.put(key, {"row": row, "kind": spec.kind, "fits": [asdict(fr), asdict(ff)],
                        "mp": [asdict(mr), asdict(mf)], "grid": asdict(grid)},
                  {"esd_raw": e_raw, "esd_farms": e_farms, "thumbnail": spec.thumbnail})
    return row, spec


def _log10(x: float) -> float:
    return math.log10(x) if x > 0 else math.nan


@dataclass
class FarmsSide:
    """A layer's FARMS result: the pooled ESD (for plots), the window grid, the fit and
    alpha_hat (alpha times log10 of the largest pooled eigenvalue, as in the release)."""

    esd: np.ndarray
    grid: WindowGrid
    fit: PowerLawFit
    alpha_hat: float


#: Layer kinds made of kernel-position slices, whose FARMS windows follow ``Settings.conv_rule``.
CONV_KINDS = ("conv2d", "conv2d_depthwise", "conv1d")


def farms_side(mats: LayerMatrices, settings: Settings, e_raw: np.ndarray) -> FarmsSide:
    """FARMS for one layer: the window grid's pooled ESD and its fit or, for conv layers under
    the ``release`` conv rule, one fit per block (spectra.conv_blocks) averaged like the release
    (alpha_hat too: the mean of the blocks' alpha * log10 of their largest eigenvalue)."""
    if mats.kind in CONV_KINDS and settings.conv_rule == "release":
        blocks, grid = conv_block_esds(mats.slices, settings.q, settings.device)
        dim = max(grid.h, grid.w)
        fits = [fit_power_law(b, settings.fit, settings.xmin_pos, dim=dim) for b in blocks]
        hats = [f.alpha * _log10(float(b[-1])) for f, b in zip(fits, blocks) if f.status == "ok" and b.size]
        fit = mean_fit(fits)
        return FarmsSide(np.sort(np.concatenate(blocks)), grid, fit,
                         float(np.mean(hats)) if hats else math.nan)
    e, grid = farms_esd(mats.slices, settings.window, settings.q, settings.ops, settings.device, raw=e_raw)
    fit = fit_power_law(e, settings.fit, settings.xmin_pos, dim=max(grid.h, grid.w))
    return FarmsSide(e, grid, fit, fit.alpha * _log10(float(e[-1]) if e.size else math.nan))


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


def _from_cache(ref: TensorRef, row: dict, record: dict, arrays: dict) -> tuple[dict, LayerSpectra]:
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
    for name, ndim in (("esd_raw", 1), ("esd_farms", 1), ("thumbnail", 2)):
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
    spec = LayerSpectra(ref.layer, record["kind"], int(row["rows"]), int(row["cols"]), arrays["esd_raw"],
                        arrays["esd_farms"], fr, ff, mr, mf, grid, arrays["thumbnail"])
    return row, spec


def select_refs(src: Source, settings: Settings, layers: str | None) -> list[TensorRef]:
    """The tensors to analyse: matrix layers, embeddings only when asked, names matching ``layers``."""
    match = compile_filter(layers)
    out = []
    for ref in src.tensors():
        if ref.kind is None:
            continue
        if ref.kind == "embedding" and not settings.include_embeddings:
            continue
        if not match(ref.layer):
            continue
        out.append(ref)
    return out


def analyze(source, *, settings: Settings | None = None, preset: str | None = None, fit: str | None = None,
            xmin_pos: float | None = None, window: int | None = None, q: float | None = None,
            ops: int | None = None, conv_rule: str | None = None, device: str | None = None,
            include_embeddings: bool | None = None,
            layers: str | None = None, progress: Progress | None = None, cache: bool = True,
            executor: str = "local", address: str | None = None) -> Report:
    """Raw and FARMS analysis of every matrix layer of ``source``.

    ``settings`` or a ``preset`` (``llm`` default, ``cnn``) plus explicit options, which win.
    ``progress(done, total, layer)`` is called before each layer and once at the end.
    ``cache=False`` skips the per-layer disk cache (``$FARMS_VIZ_CACHE``, see cache.py).
    ``executor="ray"`` runs a task per layer on the Ray cluster at ``address`` (or a local
    Ray), with the same table (see distributed.py).
    """
    overrides = dict(fit=fit, xmin_pos=xmin_pos, window=window, q=q, ops=ops, conv_rule=conv_rule, device=device,
                     include_embeddings=include_embeddings)
    if settings is None:
        settings = Settings.preset(preset or "llm", **overrides)
    else:
        settings = settings.replace(**{k: v for k, v in overrides.items() if v is not None})
    src = open_source(source)
    if src.metrics is not None:
        table = src.metrics.copy()
        if layers:
            table = table[filter_names(table["layer"], layers)].reset_index(drop=True)
        return Report(src.name, settings, table, {}, metrics_only=True)
    refs = select_refs(src, settings, layers)
    if not refs:
        raise FarmsError(f"{src.name} has no weight matrices to analyse"
                         + (f" matching {layers!r}." if layers else "."))
    if executor != "local":
        from .distributed import analyze_refs

        rows, spectra = analyze_refs(refs, settings, executor=executor, address=address, cache=cache,
                                     progress=progress)
        return Report(src.name, settings, pd.DataFrame(rows, columns=COLUMNS), spectra)
    rows, spectra = [], {}
    layer_cache = LayerCache() if cache else None
    for ref, (row, spec) in zip(refs, _analyze_refs_local(refs, settings, layer_cache, progress)):
        rows.append(row)
        if spec is not None:
            spectra[ref.layer] = spec
    if progress:
        progress(len(refs), len(refs), "")
    table = pd.DataFrame(rows, columns=COLUMNS)
    return Report(src.name, settings, table, spectra)


#: At most this many layers are analysed at once on the CPU (each holds its windows in memory).
MAX_LAYER_WORKERS = 8
#: Layers run in parallel only when every layer has at most this many entries: there the serial
#: parts of a layer (fits, MP, loading) matter; big layers are dominated by the eigenvalue solves,
#: which already use every thread, and two at once would double the memory held (streaming a
#: 3.2 GB LLaMA-shaped checkpoint: peak RSS 0.30 -> 0.46 x the file in parallel).
PARALLEL_MAX_ENTRIES = 4 * 2**20


def _analyze_one(ref: TensorRef, settings: Settings, cache: LayerCache | None):
    with torch.inference_mode():  # thread-local: entered in the thread that computes
        return analyze_layer(ref, settings, cache)


def _analyze_refs_local(refs, settings: Settings, cache: LayerCache | None, progress: Progress | None):
    """(row, spectra) per ref, in order. On the CPU, one layer per torch thread at a time, each
    with one thread: the serial parts of a layer (fits, MP, loading) then overlap too. Measured
    on 2 cores (benchmarks/bench_models.py): MiniLM 1.59 -> 1.36 s; MobileNetV2 unchanged.
    Only for models of small layers (PARALLEL_MAX_ENTRIES); big ones go one at a time."""
    threads = torch.get_num_threads()
    small = all(math.prod(r.shape) <= PARALLEL_MAX_ENTRIES for r in refs)
    workers = min(threads, len(refs), MAX_LAYER_WORKERS) if settings.device == "cpu" and small else 1
    if workers < 2:
        for i, ref in enumerate(refs):
            if progress:
                progress(i, len(refs), ref.layer)
            yield _analyze_one(ref, settings, cache)
        return
    with torch_threads(1):
        pool = ThreadPoolExecutor(workers, thread_name_prefix="farms-layer")
        try:
            futures = [pool.submit(_analyze_one, ref, settings, cache) for ref in refs]
            for i, (ref, fut) in enumerate(zip(refs, futures)):
                if progress:  # from the calling thread (Streamlit's progress bar lives there)
                    progress(i, len(refs), ref.layer)
                yield fut.result()
        finally:  # a failed or abandoned run starts no more layers
            pool.shutdown(wait=True, cancel_futures=True)
