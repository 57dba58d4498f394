"""TempBalance in training: re-analyse the model every few steps and set each layer's learning rate.

:class:`TempBalance` wraps a torch optimizer. It splits the optimizer's parameter groups by
layer (:func:`~farms_viz.analyses.allocate.param_groups`; every group keeps its own settings
such as momentum or weight decay), and at construction and then every ``every``-th call of
:meth:`TempBalance.step` analyses the model's layers afresh (:func:`farms_viz.analyze`, no disk
cache) and sets each layer's group lr to :func:`~farms_viz.analyses.allocate.tempbalance_lrs`
of the layers' ``alpha_raw`` or ``alpha_farms`` (Zhou et al., NeurIPS 2023; the release calls
its maps ``tb_linear_map``, ``tb_sqrt``, ``tb_log2``, ``tb_step``). Parameters outside the
analysed layers (biases of norms, embeddings left out by ``layers=``) keep their group's lr.

:func:`digits_curves` runs it on the digits nets (uniform lr vs TB from raw vs TB from FARMS
alphas, several seeds) with the zoo's own training loop.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from farms_viz.analyses.allocate import MAPS, param_groups, tempbalance
from farms_viz.errors import FarmsError
from farms_viz.pipeline.analyze import analyze
from farms_viz.pipeline.schema import SIDES
from farms_viz.settings import Settings
from farms_viz.zoo import digits

#: the TempBalance release's names for the maps of :func:`~farms_viz.analyses.allocate.tempbalance_lrs`
RELEASE_MAPS = {"tb_linear_map": "linear", "tb_sqrt": "sqrt", "tb_log2": "log2", "tb_step": "step"}
ARMS = ("uniform", "raw", "farms")
ARM_NAMES = {"uniform": "uniform lr", "raw": "TempBalance, raw α", "farms": "TempBalance, FARMS α"}


def scheme_map(scheme: str) -> str:
    """The map name (``linear`` ...) of a scheme given by its name here or in the release."""
    if scheme in MAPS:
        return scheme
    if scheme in RELEASE_MAPS:
        return RELEASE_MAPS[scheme]
    raise FarmsError(f"unknown TempBalance scheme {scheme!r}; use one of {', '.join([*RELEASE_MAPS, *MAPS])}.")


class TempBalance:
    """Layer-wise learning rates from the model's alphas, recomputed while it trains.

    ``optimizer``: a torch optimizer over (some of) ``model``'s parameters; its groups are split
    by layer here. ``alphas``: ``"farms"`` or ``"raw"``. ``scheme``: ``tb_linear_map`` (default)
    or ``linear``, ``tb_sqrt``/``sqrt``, ``tb_log2``/``log2``, ``tb_step``/``step``. ``every``:
    re-analyse at every ``every``-th :meth:`step` call (call it after each optimizer step, or
    once per epoch). ``lr``: the base learning rate (default: the optimizer's first group's);
    set :attr:`base_lr` to follow a schedule, it is read at each re-analysis. ``lr_min_ratio``,
    ``lr_max_ratio``, ``keep_first``, ``keep_last``: as :func:`~farms_viz.analyses.allocate.tempbalance`.
    ``settings``/``preset``/``layers``/``**options``: how the layers are analysed, as for
    :func:`farms_viz.analyze`. :attr:`history` holds one table per re-analysis (``step``,
    ``layer``, ``alpha``, ``lr``).
    """

    def __init__(self, optimizer: torch.optim.Optimizer, model: torch.nn.Module, alphas: str = "farms",
                 scheme: str = "tb_linear_map", every: int = 1, lr: float | None = None, lr_min_ratio: float = 0.5,
                 lr_max_ratio: float = 1.5, keep_first: bool = False, keep_last: bool = False,
                 settings: Settings | None = None, preset: str | None = None, layers: str | None = None, **options):
        if alphas not in SIDES:
            raise FarmsError(f"alphas must be one of {', '.join(SIDES)} (got {alphas!r}).")
        if not isinstance(every, (int, np.integer)) or isinstance(every, bool) or every < 1:
            raise FarmsError(f"every must be a whole number >= 1 (got {every!r}).")
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise FarmsError("optimizer must be a torch.optim.Optimizer over the model's parameters.")
        self.optimizer, self.model, self.alphas, self.every = optimizer, model, alphas, int(every)
        self.map = scheme_map(scheme)
        self.base_lr = float(optimizer.param_groups[0]["lr"] if lr is None else lr)
        self.options = dict(lr_min_ratio=lr_min_ratio, lr_max_ratio=lr_max_ratio, keep_first=keep_first,
                            keep_last=keep_last)
        self.settings = Settings.resolve(settings, preset, **options)
        self.layers = layers
        self.steps = 0
        self.history: list[pd.DataFrame] = []
        lrs = self._allocate()
        self._regroup(lrs)
        self._apply(lrs)

    def _allocate(self) -> dict[str, float]:
        report = analyze(self.model, settings=self.settings, layers=self.layers, cache=False)
        alloc = tempbalance(report.table, self.base_lr, self.map, **self.options)
        lrs = dict(zip(alloc.table["layer"], alloc.table[f"lr_{self.alphas}"].astype(float)))
        self.history.append(pd.DataFrame({"step": self.steps, "layer": report.table["layer"],
                                          "alpha": report.table[f"alpha_{self.alphas}"].to_numpy(float),
                                          "lr": alloc.table[f"lr_{self.alphas}"].to_numpy(float)}))
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

    def rebalance(self) -> pd.DataFrame:
        """Analyse the model now and set the layers' learning rates; the new history row."""
        self._apply(self._allocate())
        return self.history[-1]

    def step(self) -> bool:
        """Count one step (or epoch); re-analyse when the count reaches a multiple of ``every``.
        True when it did."""
        self.steps += 1
        if self.steps % self.every:
            return False
        self.rebalance()
        return True

    def lrs(self) -> dict[str, float]:
        """The current lr of each analysed layer, by layer name."""
        return {g["layer"]: float(g["lr"]) for g in self.optimizer.param_groups if g.get("layer") is not None}


def digits_curves(arch: str = "cnn", seeds=(0, 1, 2), epochs: int = 10, arms=ARMS, every: int = 1,
                  scheme: str = "tb_linear_map", preset: str = "cnn", progress=None) -> pd.DataFrame:
    """Test accuracy after each epoch (0 = initialisation) of the digits ``arch`` trained with the
    zoo's loop (SGD lr 0.05, momentum 0.9, batches of 32), with a uniform lr or TempBalance from
    raw or FARMS alphas re-analysed every ``every`` epochs; columns ``arm, seed, epoch, accuracy,
    seconds`` (seconds: that epoch's training and re-analysis)."""
    import time

    from farms_viz.core.threads import torch_threads

    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        raise FarmsError(f"unknown arm {unknown[0]!r}; use {', '.join(ARMS)}.")
    if arch not in digits.ARCHS:
        raise FarmsError(f"unknown digits architecture {arch!r}; use {', '.join(digits.ARCHS)}.")
    xtr, ytr, _, _ = digits.data()
    rows, total, done = [], len(seeds) * len(arms) * epochs, 0
    with torch_threads(1):
        for seed in seeds:
            for arm in arms:
                model = digits.new_model(arch, seed)
                opt = digits.optimizer(model.parameters())
                tb = None if arm == "uniform" else TempBalance(opt, model, arm, scheme, every=every, preset=preset)
                gen = torch.Generator().manual_seed(seed)
                rows.append({"arm": arm, "seed": seed, "epoch": 0, "accuracy": digits.evaluate(model), "seconds": 0.0})
                for epoch in range(1, epochs + 1):
                    if progress:
                        progress(done, total, f"seed {seed}, {ARM_NAMES[arm]}, epoch {epoch}")
                    t0 = time.perf_counter()
                    digits.train_epoch(model, opt, gen, xtr, ytr)
                    if tb is not None:
                        tb.step()
                    rows.append({"arm": arm, "seed": seed, "epoch": epoch, "accuracy": digits.evaluate(model),
                                 "seconds": time.perf_counter() - t0})
                    done += 1
    if progress:
        progress(total, total, "")
    return pd.DataFrame(rows, columns=["arm", "seed", "epoch", "accuracy", "seconds"])


def summarize_curves(curves: pd.DataFrame) -> pd.DataFrame:
    """Per arm and epoch: ``n``, ``mean``, ``sd`` (ddof 1), ``min``, ``max`` of test accuracy over seeds."""
    g = curves.groupby(["arm", "epoch"], sort=False)["accuracy"]
    out = g.agg(n="count", mean="mean", sd=lambda v: v.std(ddof=1) if len(v) > 1 else np.nan, min="min",
                max="max").reset_index()
    return out
