"""``analyze()``: run the pipeline over a source and give a report (a row per layer + spectra)."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pandas as pd
import torch

from farms_viz.core.threads import torch_threads
from farms_viz.errors import FarmsError
from farms_viz.io.cache import LayerCache
from farms_viz.io.refs import Source, TensorRef
from farms_viz.io.tables import write_table
from farms_viz.pipeline.layer import analyze_layer
from farms_viz.pipeline.layerfilter import compile_filter, filter_names
from farms_viz.pipeline.ray import analyze_refs
from farms_viz.pipeline.schema import COLUMNS, SUMMARY_METRICS, LayerSpectra, Progress, window_is_whole
from farms_viz.pipeline.sources import open_source
from farms_viz.settings import Settings

#: the status of published-metrics rows (zoo.registry.PUBLISHED_STATUS; pipeline cannot import the zoo)
PUBLISHED_OK = "published alphas (no weights)"


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

    def summary(self) -> pd.DataFrame:
        """WeightWatcher's ``get_summary()``, raw and FARMS: for each metric (alpha, alpha_hat and
        pipeline.metrics.METRICS) the mean over the analysed layers (status ok), and the same over
        the layers FARMS can change (its window is not the whole matrix). Columns: metric, raw,
        farms, raw_changeable, farms_changeable, n_layers, n_changeable."""
        t = self.table
        ok = t["status"].fillna("ok").isin(["ok", PUBLISHED_OK]) if "status" in t else pd.Series(True, t.index)
        t = t[ok.to_numpy() | self.metrics_only]
        change = ~window_is_whole(t, self.settings)
        rows = []
        for m in SUMMARY_METRICS:
            cols = [f"{m}_raw", f"{m}_farms"]
            if not all(c in t for c in cols):
                continue
            v = t[cols].apply(pd.to_numeric, errors="coerce")
            if v.isna().all().all():
                continue
            rows.append({"metric": m, "raw": v[cols[0]].mean(), "farms": v[cols[1]].mean(),
                         "raw_changeable": v[cols[0]][change].mean(), "farms_changeable": v[cols[1]][change].mean()})
        out = pd.DataFrame(rows, columns=["metric", "raw", "farms", "raw_changeable", "farms_changeable"])
        out["n_layers"], out["n_changeable"] = len(t), int(change.sum())
        return out

    def save(self, path: str) -> None:
        """Write the table as .csv or .json."""
        write_table(self.table, path)


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


def analyze(source, *, settings: Settings | None = None, preset: str | None = None, layers: str | None = None,
            progress: Progress | None = None, cache: bool = True, executor: str = "local",
            address: str | None = None, **options) -> Report:
    """Raw and FARMS analysis of every matrix layer of ``source``.

    ``settings`` or a ``preset`` (``llm`` default, ``cnn``), then ``options``: any
    :class:`Settings` field (``fit=``, ``window=``, ``conv_rule=`` ...); options given as None
    are ignored, the others win. ``layers``: a regular expression (RE2) on layer names.
    ``progress(done, total, layer)`` is called before each layer and once at the end.
    ``cache=False`` skips the per-layer disk cache (``$FARMS_VIZ_CACHE``, see io/cache.py).
    ``executor="ray"`` runs a task per layer on the Ray cluster at ``address`` (or a local
    Ray), with the same table (see pipeline/ray.py).
    """
    settings = Settings.resolve(settings, preset, **options)
    src = open_source(source)
    if src.metrics is not None:  # published numbers, laid out as a report (absent columns NaN)
        extra = [c for c in src.metrics.columns if c not in COLUMNS]
        table = src.metrics.reindex(columns=[*COLUMNS, *extra])
        if layers:
            table = table[filter_names(table["layer"], layers)].reset_index(drop=True)
        return Report(src.name, src.metrics_settings or settings, table, {}, metrics_only=True)
    refs = select_refs(src, settings, layers)
    if not refs:
        raise FarmsError(f"{src.name} has no weight matrices to analyse"
                         + (f" matching {layers!r}." if layers else "."))
    if executor != "local":
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
#: ... and when the median layer's smaller side is at least this: only then do the eigenvalue solves
#: (which release the GIL) outweigh the per-layer Python work (which holds it, so two threads of it
#: contend). Measured on 2 cores, serial vs in parallel: MiniLM (median 384) 3.6 vs 2.5 s;
#: MobileNetV2 (median 32) 7.0 vs 9.9 s; 2,000 tensors of 4 x 4 1.05 vs 1.69 s.
PARALLEL_MIN_SIDE = 128


def _analyze_one(ref: TensorRef, settings: Settings, cache: LayerCache | None):
    with torch.inference_mode():  # thread-local: entered in the thread that computes
        return analyze_layer(ref, settings, cache)


def _analyze_refs_local(refs, settings: Settings, cache: LayerCache | None, progress: Progress | None):
    """(row, spectra) per ref, in order. On the CPU, one layer per torch thread at a time, each
    with one thread: the serial parts of a layer (fits, MP, loading) then overlap too. Only for
    models of small layers (PARALLEL_MAX_ENTRIES) whose solves dominate (PARALLEL_MIN_SIDE);
    others go one at a time."""
    threads = torch.get_num_threads()
    small = all(math.prod(r.shape) <= PARALLEL_MAX_ENTRIES for r in refs)
    sides = sorted(min(r.shape[:2]) for r in refs)
    solve_bound = sides[len(sides) // 2] >= PARALLEL_MIN_SIDE
    workers = min(threads, len(refs), MAX_LAYER_WORKERS) if settings.device == "cpu" and small and solve_bound else 1
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
