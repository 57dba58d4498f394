"""TempBalance in training: re-analyse the model every few steps and set each layer's learning rate.

:class:`TempBalance` wraps a torch optimizer. It splits the optimizer's parameter groups by
layer (:func:`~farms_viz.analyses.allocate.param_groups`; every group keeps its own settings
such as momentum or weight decay), and at construction and then every ``every``-th call of
:meth:`TempBalance.step` analyses the model's layers afresh (:func:`farms_viz.analyze`, no disk
cache) and sets each layer's group lr to :func:`~farms_viz.analyses.allocate.tempbalance_lrs`
of the layers' ``alpha_raw`` or ``alpha_farms`` (Zhou et al., NeurIPS 2023; the release calls
its maps ``tb_linear_map``, ``tb_sqrt``, ``tb_log2``, ``tb_step``). Parameters outside the
analysed layers (biases of norms, embeddings left out by ``layers=``) keep their group's lr
(unless ``schedule_rest``).

The releases' other rules, each an option that is off by default (file:line of the TempBalance
release, YefanZhou/TempBalance ``tempbalance.py``, and of the FARMS release,
HUST-AI-HYZ/FARMS ``Image_Classification/``):

- ``eigs_thresh``: a layer whose ESD has fewer eigenvalues than this keeps the base lr and is
  left out of the map (TempBalance ``tempbalance.py:22`` 50, ``:145-147``; FARMS
  ``tempbalance_farms.py:23`` 5, which ``main_tb.py:216-234`` leaves at its default). The count
  is ``n_eigs_raw``, the layer's own spectrum (``min(rows, cols)`` per conv kernel position, the
  releases' ``eigs_num`` on their non-windowed path, ``tempbalance_farms.py:387-389``), for both
  ``alphas``, so raw and FARMS arms map the same layers (FARMS' pooled ``n_eigs_farms`` is
  never small: 144 for the digits CNN's 9-eigenvalue conv1). Order as FARMS: small layers leave
  first, then ``keep_first``/``keep_last`` take the first/last of the layers left
  (``tempbalance_farms.py:389-390`` skips them before ``:165-172``); TempBalance drops
  first/last among all layers, then the small ones (``tempbalance.py:136-147``).
- ``tie_norms``: a norm layer (batch, layer, group, instance, RMS norm) takes the lr of the weight
  layer right before it in module order (registration order, as ``named_modules`` yields it),
  if no other norm lies between them; otherwise it keeps its group's lr. This is the releases'
  ``batchnorm_type='order'`` (``tempbalance_farms.py:113-126``; ``layernorm``, ``:128-139``, for
  LayerNorm after Linear). Their scripts run ``'name'`` (``bnK`` takes ``convK``'s lr,
  ``:101-111``; ``config/farms_imagecls_main.txt`` column 20), which differs only where a
  norm's name is not a conv's with ``bn`` -> ``conv``: ResNet's shortcut BN (``shortcut.1``,
  ``networks/resnet.py:28-31``) stays at the base lr there and follows ``shortcut.0`` here.
- a schedule: ``step(lr)`` (or setting :attr:`base_lr`) moves the base lr; every map is
  proportional to it, so between re-analyses the lrs are rescaled exactly. ``schedule_rest``:
  the parameters outside the analysed layers take the base lr too, as the releases set every
  untuned group to the scheduled lr (``tempbalance_farms.py:249-253``). :func:`cosine_lr` is
  their schedule (``config.py:34-38``), applied after each epoch with the epoch just ended
  (``main_tb.py:387-392``, epochs counted from 1, ``config.py:4``); they re-analyse every
  epoch (``--ww-interval``, ``main_tb.py:43``, is parsed and never read).
"""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import torch
from torch import nn

from farms_viz.analyses.allocate import MAPS, param_groups, tempbalance
from farms_viz.errors import FarmsError
from farms_viz.pipeline.analyze import analyze
from farms_viz.pipeline.schema import SIDES
from farms_viz.settings import Settings

#: the TempBalance release's names for the maps of :func:`~farms_viz.analyses.allocate.tempbalance_lrs`
RELEASE_MAPS = {"tb_linear_map": "linear", "tb_sqrt": "sqrt", "tb_log2": "log2", "tb_step": "step"}
#: the modules ``tie_norms`` ties to the weight layer before them
NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm, nn.LayerNorm, nn.GroupNorm,
         nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d, nn.RMSNorm)


def scheme_map(scheme: str) -> str:
    """The map name (``linear`` ...) of a scheme given by its name here or in the release."""
    if scheme in MAPS:
        return scheme
    if scheme in RELEASE_MAPS:
        return RELEASE_MAPS[scheme]
    raise FarmsError(f"unknown TempBalance scheme {scheme!r}; use one of {', '.join([*RELEASE_MAPS, *MAPS])}.")


def cosine_lr(base: float, epoch: float, epochs: int) -> float:
    """``base * (1 + cos(pi * min(epoch, epochs) / epochs)) / 2``: ``base`` at epoch 0, half at
    ``epochs / 2``, 0 from ``epochs`` on (the releases' ``cosine_decay``, ``config.py:34-38``)."""
    if not isinstance(epochs, (int, np.integer)) or isinstance(epochs, bool) or epochs < 1:
        raise FarmsError(f"epochs must be a whole number >= 1 (got {epochs!r}).")
    if not (np.isfinite(epoch) and epoch >= 0):
        raise FarmsError(f"the epoch must be a number >= 0 (got {epoch!r}).")
    return float(base) * 0.5 * (1.0 + math.cos(math.pi * min(float(epoch), epochs) / epochs))


def tied_norms(model: nn.Module, layers) -> dict[str, str]:
    """``{norm module name: layer name}``: each norm tied to the weight layer right before it in
    module order (a module with a direct ``weight`` of 2 or more dimensions), when no other norm
    lies between them and that weight layer is one of ``layers`` (module names; ``.weight`` ignored)."""
    wanted = {re.sub(r"\.weight$", "", str(n)) for n in layers}
    ties, last = {}, None
    for name, mod in model.named_modules():
        if isinstance(mod, NORMS):
            if last in wanted and list(mod.parameters(recurse=False)):
                ties[name] = last
            last = None
        elif isinstance(getattr(mod, "weight", None), nn.Parameter) and mod.weight.ndim >= 2:
            last = name
    return ties


class TempBalance:
    """Layer-wise learning rates from the model's alphas, recomputed while it trains.

    ``optimizer``: a torch optimizer over (some of) ``model``'s parameters; its groups are split
    by layer here. ``alphas``: ``"farms"`` or ``"raw"``. ``scheme``: ``tb_linear_map`` (default)
    or ``linear``, ``tb_sqrt``/``sqrt``, ``tb_log2``/``log2``, ``tb_step``/``step``. ``every``:
    re-analyse at every ``every``-th :meth:`step` call (call it after each optimizer step, or
    once per epoch). ``lr``: the base learning rate (default: the optimizer's first group's);
    set :attr:`base_lr`, or pass ``step(lr)``, to follow a schedule (:func:`cosine_lr`).
    ``lr_min_ratio``, ``lr_max_ratio``, ``keep_first``, ``keep_last``: as
    :func:`~farms_viz.analyses.allocate.tempbalance`. ``eigs_thresh``, ``tie_norms``,
    ``schedule_rest``: the releases' rules (module docstring), off by default.
    ``settings``/``preset``/``layers``/``**options``: how the layers are analysed, as for
    :func:`farms_viz.analyze`. :attr:`history` holds one table per re-analysis (``step``,
    ``layer``, ``alpha``, ``lr``).
    """

    def __init__(self, optimizer: torch.optim.Optimizer, model: torch.nn.Module, alphas: str = "farms",
                 scheme: str = "tb_linear_map", every: int = 1, lr: float | None = None, lr_min_ratio: float = 0.5,
                 lr_max_ratio: float = 1.5, keep_first: bool = False, keep_last: bool = False,
                 settings: Settings | None = None, preset: str | None = None, layers: str | None = None,
                 eigs_thresh: int = 0, tie_norms: bool = False, schedule_rest: bool = False, **options):
        if alphas not in SIDES:
            raise FarmsError(f"alphas must be one of {', '.join(SIDES)} (got {alphas!r}).")
        if not isinstance(every, (int, np.integer)) or isinstance(every, bool) or every < 1:
            raise FarmsError(f"every must be a whole number >= 1 (got {every!r}).")
        if not isinstance(eigs_thresh, (int, np.integer)) or isinstance(eigs_thresh, bool) or eigs_thresh < 0:
            raise FarmsError(f"eigs_thresh must be a whole number >= 0 (got {eigs_thresh!r}).")
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise FarmsError("optimizer must be a torch.optim.Optimizer over the model's parameters.")
        self.optimizer, self.model, self.alphas, self.every = optimizer, model, alphas, int(every)
        self.map = scheme_map(scheme)
        self.base_lr = float(optimizer.param_groups[0]["lr"] if lr is None else lr)
        self.options = dict(lr_min_ratio=lr_min_ratio, lr_max_ratio=lr_max_ratio, keep_first=keep_first,
                            keep_last=keep_last)
        self.eigs_thresh, self.tie_norms, self.schedule_rest = int(eigs_thresh), bool(tie_norms), bool(schedule_rest)
        self.settings = Settings.resolve(settings, preset, **options)
        self.layers = layers
        self.steps = 0
        self.history: list[pd.DataFrame] = []
        #: ``{norm module: the layer whose lr it takes}`` (``tie_norms``), found at the first analysis
        self.ties: dict[str, str] = {}
        self._ratios: dict[str, float] = {}
        lrs = self._allocate()
        self._regroup(lrs)
        self._apply(lrs)

    def _allocate(self) -> dict[str, float]:
        t = analyze(self.model, settings=self.settings, layers=self.layers, cache=False).table
        if self.tie_norms and not self.history:
            self.ties = tied_norms(self.model, t["layer"])
        # a base lr of 0 (a cosine's end) has no map: the map at 1, times 0 (every map is proportional)
        base = self.base_lr if self.base_lr > 0 else 1.0
        small = t["n_eigs_raw"].to_numpy(float) < self.eigs_thresh
        lrs = dict.fromkeys(t["layer"], base)
        if not small.all():
            alloc = tempbalance(t[~small], base, self.map, **self.options)
            lrs.update(zip(alloc.table["layer"], alloc.table[f"lr_{self.alphas}"].astype(float)))
        lrs.update({norm: lrs[layer] for norm, layer in self.ties.items()})
        self._ratios = {k: v / base for k, v in lrs.items()}
        if self.base_lr <= 0:
            lrs = dict.fromkeys(lrs, 0.0)
        self.history.append(pd.DataFrame({"step": self.steps, "layer": t["layer"],
                                          "alpha": t[f"alpha_{self.alphas}"].to_numpy(float),
                                          "lr": [lrs[n] for n in t["layer"]]}))
        return lrs

    def _regroup(self, lrs: dict[str, float]) -> None:
        """Split every optimizer group by layer (its settings kept); optimizer state is per tensor, so kept."""
        layer_of = {}
        for g in param_groups(self.model, lrs, self.base_lr):
            for p in g["params"]:
                layer_of[id(p)] = g["name"] if g["name"] in lrs else None
        model_params = {id(p) for p in self.model.parameters()}
        new = []
        for g in self.optimizer.param_groups:
            if any(id(p) not in model_params for p in g["params"]):
                raise FarmsError("the optimizer holds parameters that are not the model's; TempBalance needs "
                                 "the optimizer of this model.")
            by_layer: dict = {}
            for p in g["params"]:
                by_layer.setdefault(layer_of.get(id(p)), []).append(p)
            for name, params in by_layer.items():
                new.append({**{k: v for k, v in g.items() if k not in ("params", "layer")}, "params": params,
                            "layer": name})
        self.optimizer.param_groups.clear()
        for g in new:
            self.optimizer.add_param_group(g)

    def _apply(self, lrs: dict[str, float]) -> None:
        for g in self.optimizer.param_groups:
            if g.get("layer") is not None:
                g["lr"] = lrs[g["layer"]]
            elif self.schedule_rest:
                g["lr"] = self.base_lr

    def rebalance(self) -> pd.DataFrame:
        """Analyse the model now and set the layers' learning rates; the new history row."""
        self._apply(self._allocate())
        return self.history[-1]

    def step(self, lr: float | None = None) -> bool:
        """Count one step (or epoch); re-analyse when the count reaches a multiple of ``every``.
        ``lr``: the new base lr (a schedule's value); without a re-analysis the current lrs are
        rescaled to it (every map is proportional to the base lr). True when it re-analysed."""
        if lr is not None:
            if not (np.isfinite(lr) and lr >= 0):
                raise FarmsError(f"the base learning rate must be a number >= 0 (got {lr!r}).")
            self.base_lr = float(lr)
        self.steps += 1
        if self.steps % self.every:
            if lr is not None:
                self._apply({k: r * self.base_lr for k, r in self._ratios.items()})
            return False
        self.rebalance()
        return True

    def lrs(self) -> dict[str, float]:
        """The current lr of each analysed layer (and each tied norm), by module name."""
        return {g["layer"]: float(g["lr"]) for g in self.optimizer.param_groups if g.get("layer") is not None}
