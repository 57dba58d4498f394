"""What an allocation does to a model: prune by uniform, AlphaPruning-raw and AlphaPruning-FARMS
sparsities and measure the pruned model (the FARMS paper's pruning experiment, in miniature).

For each training seed of a model family (:data:`FAMILIES`), :func:`measure` analyses the dense
model with the preset the paper uses (``llm`` for the language models, with ``blocks_only`` as
AlphaPruning prunes only the layers inside transformer blocks; ``cnn`` for the digits nets),
allocates AlphaPruning sparsities at each target S from raw and from FARMS alphas (and the
uniform S on the same layers), prunes a copy (magnitude or Wanda, :func:`~farms_viz.analyses.prune.prune`)
and measures it (:mod:`farms_viz.zoo.evaluate`): held-out perplexity (tinylm, lower is better),
test accuracy (digits), or MiniLM's embedding agreement with its dense self (a proxy).

Each measured row is cached on disk (``$FARMS_VIZ_CACHE/outcome/``, one JSON file per row), keyed
by the dense model's content (every tensor of its state dict), the method, the per-layer
sparsities actually applied (so the preset, epsilon and the alphas are in the key through what
they produce), the calibration size and the code version of the pruning and evaluation
modules: the app, the CLI and ``benchmarks/prune_experiment.py`` share the numbers.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
import torch

from farms_viz.analyses.allocate import CAPS, alphapruning
from farms_viz.analyses.calibrate import CALIBRATED
from farms_viz.analyses.prune import METHODS, prune, sparsity_map
from farms_viz.errors import FarmsError
from farms_viz.io.results import cache_get, cache_put, model_id, row_key
from farms_viz.pipeline.analyze import analyze
from farms_viz.pipeline.schema import Progress
from farms_viz.zoo import digits, smollm2, tinylm
from farms_viz.zoo import evaluate as zoo_eval

ALLOCATIONS = ("uniform", "raw", "farms")
#: the prune() column of each allocation
COLUMN = {"uniform": "uniform", "raw": "ratio_raw", "farms": "ratio_farms"}
NAMES = {"uniform": "uniform", "raw": "AlphaPruning, raw α", "farms": "AlphaPruning, FARMS α"}
COLUMNS = ("model", "seed", "method", "allocation", "sparsity", "epsilon", "epsilon_rule", "mapping", "cap",
           "achieved", "capped", "metric", "value", "tune_value", "dense", "seconds")
#: The epsilon grid searched for each arm (seed, method, sparsity, raw / FARMS), as the releases
#: search it per model, method, sparsity and alpha kind (their LLaMA choices lie in 0.1..0.3,
#: LLM_Pruning/scripts/llm_pruning_main.txt); the value with the best TUNING measure is kept.
EPSILONS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3)
#: How alphas map to layers: ``block`` (the mean alpha of each transformer block's matrices, both
#: releases' default ``mapping_type='block_wise'``) or ``matrix`` (each matrix its own alpha).
MAPPINGS = ("block", "matrix")
#: epsilon when a model has no tuning data to search on (MiniLM's proxy) or one is given
DEFAULT_EPSILON = 0.3
#: what summarize() calls the spread: the sample standard deviation over seeds (ddof 1)
SPREAD = "sd over seeds"


@dataclass(frozen=True)
class Family:
    """A model trained with several seeds (or one checkpoint) that farms-viz can prune and measure."""

    name: str
    seeds: tuple[int, ...]
    preset: str
    blocks_only: bool
    subject: Callable[[int], zoo_eval.Trained]
    note: str

    def built(self, seed: int) -> bool:
        """Whether measuring ``seed`` needs no training first (tinylm: minutes; digits: seconds)."""
        if self.name.startswith("tinylm"):
            return tinylm.info("small" if self.name == "tinylm-small" else "full", seed) is not None
        if self.name.startswith("digits"):
            return digits.accuracy(seed) is not None
        return True


def _digits(arch: str) -> Family:
    return Family(f"digits-{arch}", (0, 1, 2), "cnn", False,
                  lambda s: zoo_eval.digits_model(arch, max(digits.EPOCHS), s),
                  f"digits {arch.upper()} after {max(digits.EPOCHS)} epochs; test accuracy on 450 images")


FAMILIES = {
    "tinylm": Family("tinylm", tinylm.ZOO_SEEDS, "llm", True,
                     lambda s: zoo_eval.tinylm_model("full", s, "tinylm" if s == 0 else f"tinylm-seed{s}"),
                     "the tiny LLaMA-shaped LM; held-out perplexity (lower is better)"),
    "digits-cnn": _digits("cnn"),
    "digits-mlp": _digits("mlp"),
    "minilm": Family("minilm", (0,), "llm", True, lambda s: zoo_eval.minilm_proxy(),
                     "all-MiniLM-L6-v2 (one checkpoint); mean cosine of its sentence embeddings to the "
                     "dense model's, a proxy"),
    "smollm2-135m": Family("smollm2-135m", (0,), "llm", True, lambda s: zoo_eval.smollm2_model(),
                           "SmolLM2-135M-Instruct (real trained weights stored at 4 bits, Q4_1); held-out "
                           "perplexity on Brown Corpus documents (lower is better)"),
    # the test variant of the tiny LM (seconds to build), not offered in the app
    "tinylm-small": Family("tinylm-small", (0, 1), "llm", True, lambda s: zoo_eval.tinylm_model("small", s),
                           "the tiny LM's small test variant; held-out perplexity"),
}


def family(model_name: str, text: str | None = None) -> Family:
    """The family of ``model_name``: a key of :data:`FAMILIES`, a zoo name in one (``tinylm-seed1``,
    ``digits-cnn@30``), or a causal LM's Hugging Face folder or hub id (one checkpoint, measured on
    the Brown Corpus or on ``text``, a UTF-8 file: ``zoo.evaluate.causal_lm_model``)."""
    name = str(model_name)
    if text is not None or (name not in FAMILIES and _causal_lm_source(name)):
        if name in FAMILIES and name != "smollm2-135m":
            raise FarmsError(f"--text measures a causal LM on your text; {name} has its own measure.")
        source = str(smollm2.ensure_built()) if name == "smollm2-135m" else name
        return Family(name, (0,), "llm", True, lambda s: zoo_eval.causal_lm_model(source, text),
                      f"{name}; held-out perplexity on {'Brown Corpus documents' if text is None else text}")
    if name in FAMILIES:
        return FAMILIES[name]
    if tinylm.seed_of(name) is not None:
        return FAMILIES["tinylm"]
    if name == f"digits-cnn@{max(digits.EPOCHS)}" or name == f"digits-mlp@{max(digits.EPOCHS)}":
        return FAMILIES[name.split("@")[0]]
    offered = ", ".join(n for n in FAMILIES if n != "tinylm-small")
    raise FarmsError(f"{name!r} is not a model farms-viz can prune and measure (those are {offered}).")


def _causal_lm_source(name: str) -> bool:
    """A Hugging Face model folder (config.json) or something shaped like a hub id (owner/name)."""
    from pathlib import Path

    from farms_viz.io.sources import looks_like_hub_id

    try:
        return (Path(name) / "config.json").is_file() or looks_like_hub_id(name)
    except (OSError, ValueError):
        return False


# ------------------------------------------------------------------ measure

def check_sparsities(sparsities) -> list[float]:
    """The target sparsities as floats in (0, 1), in the given order, each once."""
    try:
        out = [float(s) for s in ([sparsities] if np.isscalar(sparsities) else sparsities)]
    except (TypeError, ValueError):
        raise FarmsError(f"the sparsities must be numbers between 0 and 1 (got {sparsities!r}).") from None
    if not out:
        raise FarmsError("give at least one target sparsity.")
    bad = [s for s in out if not (np.isfinite(s) and 0 < s < 1)]
    if bad:
        raise FarmsError(f"a target sparsity must be between 0 and 1, both excluded (got {bad[0]}).")
    return list(dict.fromkeys(out))


def _check(fam: Family, method: str, allocations, seeds, epsilon, mapping: str, cap: str
           ) -> tuple[list[str], list[int]]:
    if method not in METHODS:
        raise FarmsError(f"unknown pruning method {method!r}; use one of {', '.join(METHODS)}.")
    allocs = list(dict.fromkeys(allocations))
    unknown = [a for a in allocs if a not in ALLOCATIONS]
    if unknown or not allocs:
        raise FarmsError(f"unknown allocation {unknown[0] if unknown else None!r}; use {', '.join(ALLOCATIONS)}.")
    seeds = list(fam.seeds if seeds is None else seeds)
    if not seeds or any(not isinstance(s, (int, np.integer)) or isinstance(s, bool) or s < 0 for s in seeds):
        raise FarmsError(f"seeds must be whole numbers >= 0 (got {seeds!r}).")
    if fam.seeds == (0,) and seeds != [0]:
        raise FarmsError(f"{fam.name} is one checkpoint (not trained here), so it has only seed 0.")
    if epsilon != "search" and not (isinstance(epsilon, (int, float)) and 0 <= epsilon <= 1):
        raise FarmsError(f"epsilon must be 'search' or a number between 0 and 1 (got {epsilon!r}).")
    if mapping not in MAPPINGS:
        raise FarmsError(f"unknown mapping {mapping!r}; use one of {', '.join(MAPPINGS)}.")
    if cap not in CAPS:
        raise FarmsError(f"unknown cap rule {cap!r}; use one of {', '.join(CAPS)}.")
    return allocs, [int(s) for s in dict.fromkeys(seeds)]


def _file_id(path: str) -> str:
    import hashlib

    from farms_viz.zoo import text as corpus

    return hashlib.sha256(corpus.read_text_file(path).encode()).hexdigest()[:16]


def parse_epsilon(text) -> float | str:
    """``"search"`` or a number, from the command line's or a widget's text; one sentence otherwise."""
    if text == "search":
        return text
    try:
        return float(text)
    except (TypeError, ValueError):
        raise FarmsError(f"epsilon takes 'search' or a number such as 0.2 (got {text!r}).") from None


class NotMeasured(FarmsError):
    """A row asked for with ``cache_only`` that has not been measured yet."""

    def __init__(self, model: str):
        super().__init__(f"this {model} run has not been measured on this server yet, and it is too slow to run "
                         "here; ask who runs the server to measure it (farms-viz measure, the command below).")


class _Arm:
    """Prunes and measures one model with cached rows: ``run(ratios, measure)``."""

    def __init__(self, subject: zoo_eval.Trained, model: torch.nn.Module, mid: str, method: str,
                 calib: int | None, cache: bool, cache_only: bool = False):
        self.subject, self.model, self.mid, self.method = subject, model, mid, method
        self.calib, self.cache, self.cache_only = calib, cache, cache_only
        self._inputs = None

    def inputs(self):
        """The calibration inputs, made on the first pruning only (SmolLM2's tokenize the Brown
        Corpus: seconds that a run read from the cache never needs)."""
        if self._inputs is None and self.calib:
            self._inputs = self.subject.calibration(self.calib)
        return self._inputs

    def run(self, ratios: dict[str, float], what: str) -> dict:
        """``what`` = "heldout" (the reported measure) or "tune" (the epsilon search's)."""
        key = row_key(self.mid, self.method if what == "heldout" else f"{self.method}|tune", ratios, self.calib)
        rec = cache_get(key) if self.cache else None
        if rec is None and self.cache_only:
            raise NotMeasured(self.subject.name)
        if rec is None:
            t0 = time.perf_counter()
            pruned = prune(self.model, ratios, self.method, self.inputs())
            score = self.subject.evaluate if what == "heldout" else self.subject.tune
            rec = {"value": float(score(pruned.model)), "achieved": pruned.overall()[1],
                   "seconds": time.perf_counter() - t0}
            if self.cache:
                cache_put(key, rec)
        return rec


def measure(model_name: str, method: str, sparsities, allocations=ALLOCATIONS, seeds=None,
            epsilon: float | str = "search", mapping: str = "block", cap: str = "redistribute",
            progress: Progress | None = None, cache: bool = True, cache_only: bool = False,
            text: str | None = None) -> pd.DataFrame:
    """The tidy table of :data:`COLUMNS`: one row per seed, allocation and target sparsity.

    The protocol of the FARMS / AlphaPruning releases by default: ``mapping`` ``block`` (block-wise
    alphas; ``matrix``: per matrix), ``epsilon`` ``"search"``: each AlphaPruning arm (seed, method,
    sparsity, raw or FARMS) tries every value of :data:`EPSILONS` and keeps the one with the best
    measure on the model's TUNING data (``Trained.tune``: tinylm's training windows, digits' last
    training images; the held-out measure is never looked at), reported in ``epsilon`` with
    ``epsilon_rule``; a number fixes it (as does a model without tuning data: DEFAULT_EPSILON).
    ``cap``: the rule for ratios above 1 (``allocate.CAPS``). Wanda and SparseGPT calibrate block by
    block on the model's calibration inputs (``prune``).

    ``seeds``: the training seeds to measure (None: the family's, e.g. 0, 1, 2; a tiny LM seed
    not built yet trains first, about 3 CPU-minutes). ``progress(done, total, what)`` is called
    before each row and once at the end. ``seconds``: the time pruning and measuring that row
    took when it was computed (a cached row keeps its original time). ``achieved``: the
    parameter-weighted sparsity over the pruned layers, as counted in the pruned weights.
    ``capped``: how many layers the cap rule changed. ``cache_only``: every row must come from the
    cache (:class:`NotMeasured` otherwise): what a shared server offers for models too slow to prune
    there (SmolLM2). ``text``: a UTF-8 file to measure a causal LM's perplexity on instead of the
    Brown Corpus (its last fifth of lines held out; ``zoo.causal_lm.split_text``).
    """
    fam = family(model_name, text)
    allocs, seeds = _check(fam, method, allocations, seeds, epsilon, mapping, cap)
    targets = check_sparsities(sparsities)
    total, done, rows = len(seeds) * len(targets) * len(allocs), 0, []
    for seed in seeds:
        subject = fam.subject(seed)
        if progress:
            progress(done, total, f"seed {seed}: loading and analysing {subject.name}")
        dense_model = subject.load(None)
        mid = model_id(dense_model) + ("" if text is None else f"|text:{_file_id(text)}")
        dense = _dense(subject, dense_model, mid, cache, cache_only)
        calib = subject.default_calibration if method in CALIBRATED else None
        arm = _Arm(subject, dense_model, mid, method, calib, cache, cache_only)
        table = analyze(dense_model, preset=fam.preset, cache=cache).table
        search = epsilon == "search" and subject.tune is not None
        grid = EPSILONS if search else (DEFAULT_EPSILON if epsilon == "search" else float(epsilon),)
        rule = "searched on tuning data" if search else "fixed"

        def allocation(s: float, e: float):
            return alphapruning(table, s, e, block_wise=mapping == "block", blocks_only=fam.blocks_only, cap=cap)

        for s in targets:
            for a in allocs:
                if progress:
                    progress(done, total, f"seed {seed}, {NAMES[a]}, sparsity {s:g}"
                             + (f" (searching epsilon over {len(grid)} values)" if a != "uniform" and search else ""))
                if a == "uniform":
                    chosen, alloc, tuned = math.nan, allocation(s, grid[0]), math.nan
                else:
                    tries = []
                    for e in grid:
                        al = allocation(s, e)
                        tv = arm.run(sparsity_map(al, COLUMN[a]), "tune")["value"] if search else math.nan
                        tries.append((tv, e, al))
                    best = max if subject.higher_is_better else min
                    tuned, chosen, alloc = best(tries, key=lambda t: t[0]) if search else tries[0]
                rec = arm.run(sparsity_map(alloc, COLUMN[a]), "heldout")
                rows.append({"model": fam.name, "seed": seed, "method": method, "allocation": a, "sparsity": s,
                             "epsilon": chosen, "epsilon_rule": "" if a == "uniform" else rule, "mapping": mapping,
                             "cap": cap, "achieved": rec["achieved"], "capped": len(alloc.capped.get(a, [])),
                             "metric": subject.metric, "value": rec["value"], "tune_value": tuned,
                             "dense": dense, "seconds": rec["seconds"]})
                done += 1
    if progress:
        progress(total, total, "")
    return pd.DataFrame(rows, columns=list(COLUMNS))


def _dense(subject: zoo_eval.Trained, model: torch.nn.Module, mid: str, cache: bool, cache_only: bool = False
           ) -> float:
    key = row_key(mid, "dense", None, None)
    rec = cache_get(key) if cache else None
    if rec is None and cache_only:
        raise NotMeasured(subject.name)
    if rec is None:
        rec = {"value": float(subject.evaluate(model))}
        if cache:
            cache_put(key, rec)
    return float(rec["value"])


# ------------------------------------------------------------------ summaries

def summarize(table: pd.DataFrame) -> pd.DataFrame:
    """Per (model, method, allocation, sparsity): ``n`` seeds, ``mean``, ``sd`` (sample standard
    deviation, ddof 1; NaN for one seed), ``min``, ``max`` of the measure, the dense ``dense_mean``
    and ``dense_sd``, the mean ``achieved`` sparsity, the total ``seconds`` and the chosen
    ``epsilon`` (one value when every seed chose it, else "0.1/0.2/0.1"; empty for uniform)."""
    keys = ["model", "method", "metric", "allocation", "sparsity"]
    if table.empty:
        return pd.DataFrame(columns=[*keys, "n", "mean", "sd", "min", "max", "dense_mean", "dense_sd", "achieved",
                                     "seconds", "epsilon"])
    g = table.groupby(keys, sort=False)
    out = g["value"].agg(n="count", mean="mean", sd=lambda v: v.std(ddof=1) if len(v) > 1 else np.nan,
                         min="min", max="max")
    out["dense_mean"] = g["dense"].mean()
    out["dense_sd"] = g["dense"].agg(lambda v: v.std(ddof=1) if len(v) > 1 else np.nan)
    out["achieved"] = g["achieved"].mean()
    out["seconds"] = g["seconds"].sum()
    out["epsilon"] = g["epsilon"].agg(_epsilons)
    out = out.reset_index()
    order = {a: i for i, a in enumerate(ALLOCATIONS)}
    out["_a"] = out["allocation"].map(order)
    return out.sort_values(["model", "method", "sparsity", "_a"], kind="stable").drop(columns="_a") \
        .reset_index(drop=True)


def _epsilons(v: pd.Series) -> str:
    """The chosen epsilons of a cell's seeds: one value when they agree, else "0.1/0.2/0.1" in seed order."""
    v = v.dropna()
    if v.empty:
        return ""
    return f"{v.iloc[0]:g}" if (v == v.iloc[0]).all() else "/".join(f"{x:g}" for x in v)


def _cell(mean: float, sd: float, digits_: int) -> str:
    return f"{mean:.{digits_}f}" + (f" ± {sd:.{digits_}f}" if np.isfinite(sd) else "")


def format_summary(summary: pd.DataFrame, markdown: bool = False, digits_: int = 3) -> str:
    """The summary as text: per model and method, a row per sparsity and a column per allocation
    (``mean ± sd``), under a line with the metric and the dense value."""
    parts = []
    for (model, method, metric), g in summary.groupby(["model", "method", "metric"], sort=False):
        n = int(g["n"].max())
        first = g.iloc[0]
        dense = _cell(first["dense_mean"], first["dense_sd"], digits_)
        head = (f"{model}, {method}: {metric}, mean ± {SPREAD} (n = {n})" if n > 1
                else f"{model}, {method}: {metric} (one seed)") + f"; dense {dense}"
        allocs = [a for a in ALLOCATIONS if a in set(g["allocation"])]
        cells = {(r.sparsity, r.allocation): _cell(r.mean, r.sd, digits_) + (f" (ε {r.epsilon})" if r.epsilon else "")
                 for r in g.itertuples()}
        sparsities = list(dict.fromkeys(g["sparsity"]))
        header = ["sparsity", *[NAMES[a] for a in allocs]]
        body = [[f"{s:g}", *[cells.get((s, a), "") for a in allocs]] for s in sparsities]
        if markdown:
            lines = [f"**{head}**", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            lines += ["| " + " | ".join(r) + " |" for r in body]
        else:
            widths = [max(len(str(x)) for x in col) for col in zip(header, *body)]
            lines = [head, "  ".join(h.ljust(w) for h, w in zip(header, widths))]
            lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in body]
        parts.append("\n".join(lines))
    return "\n\n".join(parts)
