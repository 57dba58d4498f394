"""Calibration statistics for Wanda and SparseGPT, gathered block by block as the releases do.

Wanda needs ``||X_j||_2`` of each input feature of a layer, SparseGPT the Hessian ``2/n X^T X`` of
its inputs (:class:`~farms_viz.analyses.sparsegpt.HessianAccumulator`). The Wanda and SparseGPT
releases (and the FARMS / AlphaPruning ones built on them, ``prune_wanda`` / ``prune_sparsegpt`` in
``LLM_Pruning/lib/prune.py``) calibrate **sequentially**: the inputs of the first transformer block
are recorded once; then, block after block, the block is run on its inputs with hooks on its
layers, its layers are pruned from those statistics, and the *pruned* block is run again to give
the next block's inputs. So each block is calibrated on what the already pruned blocks before it
produce, and the error of earlier blocks is partly corrected by later ones.

:func:`prune_with_calibration` does that for any module with a list of transformer blocks
(:func:`transformer_blocks`: LLaMA / Hugging Face ``model.layers``, GPT-2 ``transformer.h``, the
tiny LM's ``layers``). Layers outside the blocks, and models without blocks (the digits nets), are
calibrated in one pass over the dense model before any layer is pruned.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from farms_viz.analyses.sparsegpt import HessianAccumulator, sparsegpt_prune
from farms_viz.errors import FarmsError

CALIBRATED = ("wanda", "sparsegpt")
#: the methods' names in sentences
LABELS = {"magnitude": "magnitude", "wanda": "Wanda", "sparsegpt": "SparseGPT"}


class _Stop(Exception):
    """Raised by the hook that records the first block's inputs, to skip the rest of the model."""


def transformer_blocks(model: nn.Module) -> tuple[str, nn.ModuleList] | None:
    """(name, list) of the model's transformer blocks: the longest ``nn.ModuleList`` of at least two
    modules of one class that hold weight layers; None when the model has none."""
    best = None
    for name, m in model.named_modules():
        if not isinstance(m, nn.ModuleList) or len(m) < 2:
            continue
        if len({type(b) for b in m}) != 1 or not any(isinstance(x, nn.Linear) or type(x).__name__ == "Conv1D"
                                                      for x in m[0].modules()):
            continue
        if best is None or len(m) > len(best[1]):
            best = (name, m)
    return best


def features(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The module's input as (tokens, features), features in the order of its weight's columns."""
    if isinstance(module, nn.Linear) or type(module).__name__ == "Conv1D":  # GPT-2's Conv1D: weight (in, out)
        return x.reshape(-1, x.shape[-1])
    if isinstance(module, nn.Conv2d):
        cols = nn.functional.unfold(x, module.kernel_size, module.dilation, module.padding, module.stride)
        return cols.transpose(1, 2).reshape(-1, cols.shape[1])  # (batch * positions, in * kh * kw)
    raise FarmsError(f"Wanda and SparseGPT cannot read the inputs of a {type(module).__name__}.")


def check_layer(name: str, m: nn.Module, method: str) -> None:
    method = LABELS[method]
    if not (isinstance(m, (nn.Linear, nn.Conv2d)) or type(m).__name__ == "Conv1D"):
        raise FarmsError(f"{method} on {name!r}: it is a {type(m).__name__}; {method} prunes nn.Linear, "
                         "nn.Conv2d and Conv1D layers.")
    if isinstance(m, nn.Conv2d) and m.groups != 1:
        raise FarmsError(f"{method} on {name!r}: grouped or depthwise convolutions are not supported.")


class Stats:
    """One layer's running calibration statistic: squared input norms (Wanda) or the Hessian (SparseGPT)."""

    def __init__(self, method: str):
        self.method = method
        self.sq: torch.Tensor | None = None
        self.hessian = HessianAccumulator() if method == "sparsegpt" else None
        self.calls = 0

    def add(self, f: torch.Tensor) -> None:
        self.calls += 1
        if self.hessian is not None:
            self.hessian.add(f)
            return
        s = (f.to(torch.float64) ** 2).sum(0)
        self.sq = s if self.sq is None else self.sq + s


def _hooked(modules: dict[str, nn.Module], names: list[str], method: str) -> tuple[dict[str, Stats], list]:
    stats = {n: Stats(method) for n in names}

    def hook(name):
        def run(module, inputs, output):
            stats[name].add(features(module, inputs[0].detach()))
        return run

    return stats, [modules[n].register_forward_hook(hook(n)) for n in names]


def _batches(calibration) -> list:
    if calibration is None:
        raise FarmsError("Wanda and SparseGPT need calibration inputs (a tensor or a list of batches the model accepts).")
    if isinstance(calibration, (torch.Tensor, tuple)):
        return [calibration]
    try:
        batches = list(calibration)
    except TypeError:
        raise FarmsError("calibration must be a tensor or a list of batches.") from None
    if not batches:
        raise FarmsError("the calibration set is empty.")
    return batches


def _run(model: nn.Module, batch) -> None:
    model(*batch) if isinstance(batch, tuple) else model(batch)


def _one_pass(model: nn.Module, modules: dict[str, nn.Module], names: list[str], method: str, batches: list
              ) -> dict[str, Stats]:
    stats, handles = _hooked(modules, names, method)
    try:
        for batch in batches:
            _run(model, batch)
    finally:
        for h in handles:
            h.remove()
    return stats


def _block_inputs(model: nn.Module, block: nn.Module, batches: list) -> list[tuple[tuple, dict]]:
    """The (args, kwargs) the first block is called with, one per calibration batch."""
    seen: list[tuple[tuple, dict]] = []

    def catch(module, args, kwargs):
        kw = dict(kwargs)
        if "past_key_values" in kw:  # a KV cache would grow with every re-run of a block
            kw["past_key_values"] = None
        if "use_cache" in kw:
            kw["use_cache"] = False
        seen.append((tuple(a.detach() if isinstance(a, torch.Tensor) else a for a in args), kw))
        raise _Stop

    handle = block.register_forward_pre_hook(catch, with_kwargs=True)
    try:
        for batch in batches:
            try:
                _run(model, batch)
            except _Stop:
                pass
    finally:
        handle.remove()
    if len(seen) != len(batches):
        raise FarmsError("the calibration pass did not reach the first transformer block for every batch.")
    return seen


def _hidden(args: tuple, kwargs: dict) -> tuple[torch.Tensor, bool]:
    """The hidden states a block was called with and whether they came as a keyword."""
    if args:
        return args[0], False
    if "hidden_states" in kwargs:
        return kwargs["hidden_states"], True
    raise FarmsError("the first transformer block was called without hidden states farms-viz can follow.")


def _next_inputs(block: nn.Module, inputs: list[tuple[tuple, dict]]) -> list[tuple[tuple, dict]]:
    out = []
    for args, kwargs in inputs:
        y = block(*args, **kwargs)
        y = y[0] if isinstance(y, (tuple, list)) else y
        _, as_kw = _hidden(args, kwargs)
        out.append((args, {**kwargs, "hidden_states": y}) if as_kw else ((y, *args[1:]), kwargs))
    return out


def prune_with_calibration(model: nn.Module, ratios: dict[str, float], method: str, calibration,
                           prune_layer: Callable[[str, nn.Module, "Stats"], None],
                           sequential: bool = True) -> None:
    """Gather ``method``'s statistics for the layers of ``ratios`` with a ratio above 0 and call
    ``prune_layer(name, module, stats)`` on each, in place on ``model`` (module docstring: block by
    block when ``sequential`` and the model has transformer blocks). Eval mode, no grad; the
    model's mode is restored."""
    if method not in CALIBRATED:
        raise FarmsError(f"{method!r} needs no calibration; use one of {', '.join(CALIBRATED)}.")
    modules = dict(model.named_modules())
    names = [n for n, r in ratios.items() if r > 0]
    for n in names:
        check_layer(n, modules[n], method)
    batches = _batches(calibration)
    found = transformer_blocks(model) if sequential else None
    prefix = f"{found[0]}." if found else None
    inside = {n for n in names if prefix and n.startswith(prefix)}
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            outside = [n for n in names if n not in inside]
            if outside:  # one pass over the dense model, before anything is pruned
                stats = _one_pass(model, modules, outside, method, batches)
                _apply(outside, modules, stats, prune_layer)
            if not inside:
                return
            blocks = found[1]
            inputs = _block_inputs(model, blocks[0], batches)
            for i, block in enumerate(blocks):
                here = [n for n in names if n.startswith(f"{prefix}{i}.")]
                if here:
                    stats, handles = _hooked(modules, here, method)
                    try:
                        for args, kwargs in inputs:
                            block(*args, **kwargs)
                    finally:
                        for h in handles:
                            h.remove()
                    _apply(here, modules, stats, prune_layer)
                if i + 1 < len(blocks):
                    inputs = _next_inputs(block, inputs)  # the pruned block's outputs
    finally:
        model.train(was)


def _apply(names: list[str], modules: dict[str, nn.Module], stats: dict[str, Stats], prune_layer) -> None:
    unseen = [n for n in names if stats[n].calls == 0]
    if unseen:
        raise FarmsError(f"the calibration pass never ran the layer {unseen[0]!r}, so it has no activations.")
    for n in names:
        prune_layer(n, modules[n], stats[n])


def sparsegpt_layer(module: nn.Module, stats: Stats, k: int) -> torch.Tensor:
    """The pruned weight of one layer by SparseGPT from its Hessian (weight in the module's own layout)."""
    w = module.weight.detach()
    conv1d = type(module).__name__ == "Conv1D"
    mat = (w.t() if conv1d else w).reshape((w.shape[1] if conv1d else w.shape[0]), -1)
    out = sparsegpt_prune(mat, stats.hessian.hessian, k)
    return out.t() if conv1d else out.reshape(w.shape)
