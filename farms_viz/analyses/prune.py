"""Per-layer unstructured pruning to given sparsities: magnitude and Wanda, exact to one weight.

A layer with sparsity ``r`` and ``n`` weights loses exactly ``k = floor(r n + 1/2)`` weights: the
``k`` with the smallest scores in their comparison group, ties broken by position (the earlier
weight in row-major order goes first), so the result is deterministic.

- ``magnitude``: score ``|W_ij|``, one comparison group per layer (as the magnitude baseline of
  the Wanda and AlphaPruning releases).
- ``wanda`` (Sun et al., ICLR 2024): score ``|W_ij| * ||X_j||_2``, ``X_j`` the j-th input feature
  of the layer over every token (or image position) of a calibration set, gathered by forward
  hooks in one pass over the dense model. Comparison group: each output row, as Wanda prunes per
  output. The release removes ``int(r * cols)`` per row; here the layer's ``k`` is spread over
  the rows (``k // rows`` each, one more for the first ``k % rows`` rows) so the layer total is
  exact. The release also re-runs each transformer block on the outputs of the already pruned
  blocks before it; here every layer's inputs come from the dense model (one pass, any module).
  Conv2d layers (groups 1) use the unfolded input patches as features, so a row is one output
  channel's ``in x kh x kw`` kernel.

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
from farms_viz.errors import FarmsError
from farms_viz.io.refs import Source
from farms_viz.pipeline.sources import open_source

METHODS = ("magnitude", "wanda")
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


def pruned_count(ratio: float, numel: int) -> int:
    """``k = floor(ratio * numel + 1/2)``: the number of weights a layer loses."""
    return int(np.floor(float(ratio) * int(numel) + 0.5))


def smallest_mask(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean mask of the ``k`` smallest entries of ``scores`` (all of it one group; ties by position)."""
    flat = scores.reshape(-1)
    mask = torch.zeros(flat.numel(), dtype=torch.bool)
    if k > 0:
        order = torch.sort(flat, stable=True).indices
        mask[order[:k]] = True
    return mask.view(scores.shape)


def row_mask(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Mask of ``k`` entries of a (rows, cols) score matrix, the smallest of each row: ``k // rows``
    per row and one more in the first ``k % rows`` rows (ties by column)."""
    rows, cols = scores.shape
    per_row = torch.full((rows,), k // rows, dtype=torch.int64)
    per_row[: k % rows] += 1
    order = torch.sort(scores, dim=1, stable=True).indices
    take = torch.arange(cols)[None, :] < per_row[:, None]
    mask = torch.zeros(rows, cols, dtype=torch.bool)
    mask.scatter_(1, order, take)
    return mask


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


# ------------------------------------------------------------------ Wanda's activation norms

def _features(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The module's input as (tokens, features), features in the order of its weight's columns."""
    if isinstance(module, nn.Linear):
        return x.reshape(-1, x.shape[-1])
    if isinstance(module, nn.Conv2d):
        cols = nn.functional.unfold(x, module.kernel_size, module.dilation, module.padding, module.stride)
        return cols.transpose(1, 2).reshape(-1, cols.shape[1])  # (batch * positions, in * kh * kw)
    if type(module).__name__ == "Conv1D":  # transformers' GPT-2 Conv1D: weight (in, out)
        return x.reshape(-1, x.shape[-1])
    raise FarmsError(f"Wanda cannot read the inputs of a {type(module).__name__}.")


def input_norms(model: nn.Module, layers: list[str], calibration) -> dict[str, torch.Tensor]:
    """``||X_j||_2`` (float64) of each layer's input features over the calibration batches, from
    forward hooks in one no-grad, eval-mode pass (the model's mode is restored after)."""
    modules = dict(model.named_modules())
    for name in layers:
        m = modules[name]
        if not (isinstance(m, (nn.Linear, nn.Conv2d)) or type(m).__name__ == "Conv1D"):
            raise FarmsError(f"Wanda on {name!r}: it is a {type(m).__name__}; Wanda prunes nn.Linear, "
                             "nn.Conv2d and Conv1D layers.")
        if isinstance(m, nn.Conv2d) and m.groups != 1:
            raise FarmsError(f"Wanda on {name!r}: grouped or depthwise convolutions are not supported.")
    sums: dict[str, torch.Tensor] = {}
    seen = {name: 0 for name in layers}

    def hook(name):
        def run(module, inputs, output):
            f = _features(module, inputs[0].detach()).to(torch.float64)
            s = (f * f).sum(0)
            sums[name] = s if name not in sums else sums[name] + s
            seen[name] += 1
        return run

    handles = [modules[n].register_forward_hook(hook(n)) for n in layers]
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            for batch in _batches(calibration):
                model(*batch) if isinstance(batch, tuple) else model(batch)
    finally:
        for h in handles:
            h.remove()
        model.train(was)
    unseen = [n for n, c in seen.items() if c == 0]
    if unseen:
        raise FarmsError(f"the calibration pass never ran the layer {unseen[0]!r}, so Wanda has no activations for it.")
    return {n: s.sqrt() for n, s in sums.items()}


def _batches(calibration):
    if calibration is None:
        raise FarmsError("Wanda needs calibration inputs (a tensor or a list of batches the model accepts).")
    if isinstance(calibration, (torch.Tensor, tuple)):
        return [calibration]
    try:
        batches = list(calibration)
    except TypeError:
        raise FarmsError("calibration must be a tensor or a list of batches.") from None
    if not batches:
        raise FarmsError("the calibration set is empty.")
    return batches


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
          column: str | None = None) -> Pruned:
    """Prune each listed layer to its sparsity (module docstring); the input stays unchanged.

    ``source_or_model``: an ``nn.Module`` (a pruned deep copy is returned) or anything
    :func:`~farms_viz.pipeline.sources.open_source` opens (zoo name, weights file, folder, dict of
    tensors; magnitude only). ``sparsities``: ``{layer: ratio}``, an :class:`Allocation`
    (``column`` ``ratio_farms`` by default, ``ratio_raw`` or ``uniform``), an allocation table
    with ``column``, or one number for every linear/conv layer. ``calibration``: Wanda's inputs,
    a tensor or a list of batches (tuples are unpacked into the call).
    """
    if method not in METHODS:
        raise FarmsError(f"unknown pruning method {method!r}; use one of {', '.join(METHODS)}.")
    if isinstance(source_or_model, nn.Module):
        return _prune_module(source_or_model, sparsities, method, calibration, column)
    if method == "wanda":
        raise FarmsError("Wanda needs the model as an nn.Module (its layers' inputs come from running it); "
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


def _prune_module(model: nn.Module, sparsities, method: str, calibration, column) -> Pruned:
    from farms_viz.io.memory import module_kind

    copy_ = copy.deepcopy(model)
    modules = {n: m for n, m in copy_.named_modules() if isinstance(getattr(m, "weight", None), torch.Tensor)}
    ratios = _ratios(sparsities, column, {n: m.weight.numel() for n, m in modules.items()},
                     [n for n, m in modules.items() if module_kind(m) in UNIFORM_KINDS])
    norms = input_norms(copy_, [n for n, r in ratios.items() if r > 0], calibration) if method == "wanda" else {}
    weights, rows = {}, []
    with torch.no_grad():
        for layer, ratio in ratios.items():
            m = modules[layer]
            k = pruned_count(ratio, m.weight.numel())
            if method == "wanda" and k > 0:
                mask = row_mask(wanda_scores(m, m.weight, norms[layer]), k)
                if type(m).__name__ == "Conv1D":
                    mask = mask.t()
                mask = mask.reshape(m.weight.shape)
            else:
                mask = smallest_mask(m.weight.detach().abs(), k)
            m.weight.masked_fill_(mask, 0)
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
