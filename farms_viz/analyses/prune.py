"""Per-layer unstructured pruning to given sparsities: magnitude, Wanda and SparseGPT, exact to one weight.

A layer with sparsity ``r`` and ``n`` weights loses exactly ``k = floor(r n + 1/2)`` weights
(:func:`~farms_viz.analyses.masks.pruned_count`); ties are broken by position, so the result is
deterministic.

- ``magnitude``: the ``k`` smallest ``|W_ij|`` of the layer (the magnitude baseline of the Wanda
  and AlphaPruning releases).
- ``wanda`` (Sun et al., ICLR 2024): score ``|W_ij| * ||X_j||_2``, ``X_j`` the j-th input feature
  of the layer over every calibration token (or image position). Comparison group: each output
  row, as Wanda prunes per output. The release removes ``int(r * cols)`` per row; here the layer's
  ``k`` is spread over the rows (``k // rows`` each, one more for the first ``k % rows`` rows) so
  the layer total is exact.
- ``sparsegpt`` (Frantar & Alistarh, ICML 2023): OBS row updates with the damped inverse Hessian
  of the calibration inputs, columns in blocks of 128 (:mod:`farms_viz.analyses.sparsegpt`).

Wanda and SparseGPT calibrate block by block as their releases do: each transformer block sees
the outputs of the already pruned blocks before it (:mod:`farms_viz.analyses.calibrate`; layers
outside the blocks and models without blocks: one pass over the dense model). Conv2d layers
(groups 1) use the unfolded input patches as features, so a row is one output channel's
``in x kh x kw`` kernel.

The input is never modified: a module is deep-copied, tensors are cloned before zeroing.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Mapping

import numpy as np
import pandas as pd
import torch
from torch import nn

from farms_viz.analyses.allocate import Allocation
from farms_viz.analyses.calibrate import CALIBRATED, LABELS, prune_with_calibration, sparsegpt_layer
from farms_viz.analyses.masks import pruned_count, row_mask, smallest_mask
from farms_viz.errors import FarmsError
from farms_viz.io.refs import Source
from farms_viz.pipeline.sources import open_source

METHODS = ("magnitude", "wanda", "sparsegpt")
__all__ = ["METHODS", "Pruned", "prune", "pruned_count", "row_mask", "smallest_mask", "sparsity_map"]
REPORT_COLUMNS = ("layer", "target", "achieved", "numel", "zeros")
#: layer kinds a plain number (uniform sparsity) applies to; embeddings stay dense, as in the releases
UNIFORM_KINDS = ("linear", "conv2d", "conv2d_depthwise", "conv1d", "conv1d_hf")


@dataclass
class Pruned:
    """What :func:`prune` returns.

    ``weights``: the pruned layers' weights, tensor name (``<layer>.weight``) -> new tensor.
    ``model``: the pruned deep copy when the input was an ``nn.Module``, else None.
    ``report``: a row per pruned layer: ``layer, target, achieved, numel, zeros`` (achieved =
    zeros / numel, counting zeros the weights already had).
    """

    weights: dict
    model: nn.Module | None
    report: pd.DataFrame
    method: str

    def overall(self) -> tuple[float, float]:
        """(target, achieved) sparsity over all pruned layers, weighted by their weights' counts."""
        n = self.report["numel"].to_numpy(float)
        if not n.sum():
            return 0.0, 0.0
        return (float((self.report["target"] * n).sum() / n.sum()), float(self.report["zeros"].sum() / n.sum()))


# ------------------------------------------------------------------ sparsities

def sparsity_map(sparsities, column: str | None = None, layers: Mapping[str, int] | None = None) -> dict[str, float]:
    """``{layer: ratio}`` from a dict, an :class:`Allocation` or an allocation table and its column.

    Columns: ``ratio_raw``, ``ratio_farms`` (``raw``/``farms`` also), or ``uniform``: every listed
    layer at the allocation's target (an Allocation's ``sparsity`` setting; for a bare table, the
    ``ratio_raw`` mean weighted by each layer's weight count from ``layers``, which is the target
    by construction of AlphaPruning).
    """
    if isinstance(sparsities, Allocation):
        if sparsities.scheme != "alphapruning":
            raise FarmsError("a TempBalance allocation holds learning rates, not sparsities; use AlphaPruning.")
        if column == "uniform":
            s = float(sparsities.settings["sparsity"])
            return {str(n): s for n in sparsities.table["layer"]}
        return sparsity_map(sparsities.table, column or "ratio_farms", layers)
    if isinstance(sparsities, pd.DataFrame):
        return _table_map(sparsities, column, layers)
    if isinstance(sparsities, Mapping):
        if column is not None:
            raise FarmsError("column= chooses a column of an allocation table; a dict already maps layer -> ratio.")
        out = {}
        for k, v in sparsities.items():
            try:
                out[str(k)] = float(v)
            except (TypeError, ValueError):
                raise FarmsError(f"the sparsity of {k!r} is not a number ({v!r}).") from None
        return out
    raise FarmsError("sparsities must be a dict {layer: ratio}, an Allocation from alphapruning(), "
                     "an allocation table, or a number (uniform).")


def _table_map(t: pd.DataFrame, column: str | None, layers) -> dict[str, float]:
    if "layer" not in t.columns:
        raise FarmsError("the allocation table has no 'layer' column.")
    col = {"raw": "ratio_raw", "farms": "ratio_farms"}.get(column, column)
    if col is None:
        raise FarmsError("choose the allocation's column (ratio_raw, ratio_farms or uniform).")
    names = [str(n) for n in t["layer"]]
    if col == "uniform":
        if "ratio_raw" not in t.columns:
            raise FarmsError("'uniform' takes the target from the ratio_raw column, which this table lacks.")
        unknown = [n for n in names if layers is None or n not in layers]
        if unknown:
            raise FarmsError(f"the layer {unknown[0]!r} of the allocation is not a layer of the model.")
        p = np.array([layers[n] for n in names], float)
        s = float((pd.to_numeric(t["ratio_raw"], errors="coerce").to_numpy(float) * p).sum() / p.sum())
        return {n: s for n in names}
    if col not in t.columns:
        have = [c for c in t.columns if str(c).startswith("ratio_")]
        raise FarmsError(f"the allocation has no column {col!r} (it has {', '.join(have) or 'no ratio_ columns'}"
                         f"{', and uniform' if 'ratio_raw' in have else ''}).")
    return sparsity_map(dict(zip(names, t[col])))


def _check_ratios(ratios: dict[str, float]) -> None:
    for k, v in ratios.items():
        if not (np.isfinite(v) and 0 <= v <= 1):
            raise FarmsError(f"the sparsity of {k!r} must be between 0 and 1 (got {v}).")


# ------------------------------------------------------------------ Wanda's scores

def wanda_scores(module: nn.Module, weight: torch.Tensor, norms: torch.Tensor) -> torch.Tensor:
    """``|W_ij| * ||X_j||`` as a (rows, features) float64 matrix, rows = outputs."""
    w = weight.detach().to(torch.float64)
    if type(module).__name__ == "Conv1D":
        w = w.t()
    w = w.reshape(w.shape[0], -1)
    if w.shape[1] != norms.numel():
        raise FarmsError(f"the layer's weight has {w.shape[1]} inputs per output but its input had {norms.numel()}.")
    return w.abs() * norms[None, :]


# ------------------------------------------------------------------ prune

def prune(source_or_model, sparsities, method: str = "magnitude", calibration=None,
          column: str | None = None, sequential: bool = True) -> Pruned:
    """Prune each listed layer to its sparsity (module docstring); the input stays unchanged.

    ``source_or_model``: an ``nn.Module`` (a pruned deep copy is returned) or anything
    :func:`~farms_viz.pipeline.sources.open_source` opens (zoo name, weights file, folder, dict of
    tensors; magnitude only). ``sparsities``: ``{layer: ratio}``, an :class:`Allocation`
    (``column`` ``ratio_farms`` by default, ``ratio_raw`` or ``uniform``), an allocation table
    with ``column``, or one number for every linear/conv layer. ``calibration``: Wanda's inputs,
    a tensor or a list of batches (tuples are unpacked into the call). ``sequential``: Wanda and
    SparseGPT calibrate block by block on the pruned blocks' outputs (the releases'); False: every
    layer from the dense model in one pass.
    """
    if method not in METHODS:
        raise FarmsError(f"unknown pruning method {method!r}; use one of {', '.join(METHODS)}.")
    if isinstance(source_or_model, nn.Module):
        return _prune_module(source_or_model, sparsities, method, calibration, column, sequential)
    if method in CALIBRATED:
        raise FarmsError(f"{LABELS[method]} needs the model as an nn.Module (its layers' inputs come from running it); "
                         "pass the module, or use method='magnitude'.")
    src = source_or_model if isinstance(source_or_model, Source) else open_source(source_or_model)
    refs = {r.layer: r for r in src.tensors()}
    if not refs:
        raise FarmsError(f"{src.name} has no weight tensors to prune.")
    ratios = _ratios(sparsities, column, {n: int(np.prod(r.shape)) for n, r in refs.items()},
                     [n for n, r in refs.items() if r.kind in UNIFORM_KINDS])
    weights, rows = {}, []
    for layer, ratio in ratios.items():
        ref = refs[layer]
        w = ref.load().detach().clone()
        w = w.masked_fill(smallest_mask(w.abs(), pruned_count(ratio, w.numel())), 0)
        weights[ref.origin[1] if ref.origin else f"{layer}.weight"] = w
        rows.append(_row(layer, ratio, w))
    return Pruned(weights, None, pd.DataFrame(rows, columns=list(REPORT_COLUMNS)), method)


def _prune_module(model: nn.Module, sparsities, method: str, calibration, column, sequential: bool) -> Pruned:
    from farms_viz.io.memory import module_kind

    copy_ = copy.deepcopy(model)
    modules = {n: m for n, m in copy_.named_modules() if isinstance(getattr(m, "weight", None), torch.Tensor)}
    ratios = _ratios(sparsities, column, {n: m.weight.numel() for n, m in modules.items()},
                     [n for n, m in modules.items() if module_kind(m) in UNIFORM_KINDS])

    def by_scores(layer: str, m: nn.Module, stats) -> None:
        k = pruned_count(ratios[layer], m.weight.numel())
        if method == "sparsegpt":
            m.weight.copy_(sparsegpt_layer(m, stats, k))
            return
        mask = row_mask(wanda_scores(m, m.weight, stats.sq.sqrt()), k)
        m.weight.masked_fill_((mask.t() if type(m).__name__ == "Conv1D" else mask).reshape(m.weight.shape), 0)

    with torch.no_grad():
        if method in CALIBRATED:
            prune_with_calibration(copy_, ratios, method, calibration, by_scores, sequential)
        weights, rows = {}, []
        for layer, ratio in ratios.items():
            m = modules[layer]
            if method not in CALIBRATED or ratio <= 0:
                m.weight.masked_fill_(smallest_mask(m.weight.detach().abs(), pruned_count(ratio, m.weight.numel())), 0)
            weights[f"{layer}.weight"] = m.weight.detach()
            rows.append(_row(layer, ratio, m.weight))
    return Pruned(weights, copy_, pd.DataFrame(rows, columns=list(REPORT_COLUMNS)), method)


def _ratios(sparsities, column, numel: dict[str, int], uniform_layers: list[str]) -> dict[str, float]:
    if isinstance(sparsities, (int, float, np.floating, np.integer)) and not isinstance(sparsities, bool):
        ratios = {n: float(sparsities) for n in uniform_layers}
    else:
        ratios = sparsity_map(sparsities, column, numel)
    _check_ratios(ratios)
    unknown = [n for n in ratios if n not in numel]
    if unknown:
        raise FarmsError(f"{len(unknown)} layer{'s' if len(unknown) > 1 else ''} of the allocation "
                         f"{'are' if len(unknown) > 1 else 'is'} not in the model (e.g. {unknown[0]!r}); "
                         "was the allocation made for another model?")
    return ratios


def _row(layer: str, ratio: float, w: torch.Tensor) -> dict:
    zeros = int((w == 0).sum())
    return {"layer": layer, "target": float(ratio), "achieved": zeros / w.numel(), "numel": int(w.numel()),
            "zeros": zeros}
