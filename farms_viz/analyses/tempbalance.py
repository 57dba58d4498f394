"""TempBalance on the digits nets: uniform lr vs TempBalance from raw vs from FARMS alphas.

:class:`TempBalance` (the optimizer wrapper, with :func:`cosine_lr` and the releases' rules) lives
in :mod:`farms_viz.analyses.tempbalance_optimizer` and is imported from here too.
:func:`digits_curves` trains the digits nets several seeds per arm, by one of two protocols:

- ``"zoo"`` (default): the zoo's loop (SGD lr 0.05, momentum 0.9, batches of 32, no schedule, no
  weight decay), every layer in the map at lr 0.5-1.5 x the base lr.
- ``"release"``: as the TempBalance and FARMS releases train (file:line in
  :mod:`~farms_viz.analyses.tempbalance_optimizer`): cosine decay of the base lr after every
  epoch for every arm (``main_tb.py:387-400``), weight decay 5e-4 on every parameter
  (``config/farms_imagecls_main.txt`` column 9, ``main_tb.py:240-242``), first and last layer
  at the base lr (``main_tb.py:49-50``; the FARMS scripts also run TB with them in the map,
  ``farms_imagecls_main.txt:8,12``), layers with fewer than 5 eigenvalues left out (FARMS
  ``tempbalance_farms.py:23``), norms tied to their weight layer, and per TB arm and seed the
  lr range chosen from :data:`RELEASE_GRID` (the FARMS release's sweep, ``config/
  farms_imagecls_ablation.txt:25-29``) by :func:`~farms_viz.zoo.digits.tune_accuracy` after
  training. The releases pick by test accuracy (``main_tb.py:368-382`` keeps the best test
  epoch); here the test images are read only after the choice, and the tuning images (the last
  300 of the training split) are held out of training for every arm: trained on, all 10-epoch
  nets score 1.0 on them (the zoo's seed 0), so they could not choose. Ties go to the first
  range in the grid (narrowest first).
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import torch

from farms_viz.analyses.tempbalance_optimizer import RELEASE_MAPS, TempBalance, cosine_lr, scheme_map
from farms_viz.errors import FarmsError
from farms_viz.zoo import digits

__all__ = ["ARMS", "ARM_NAMES", "PROTOCOLS", "RELEASE_GRID", "RELEASE_MAPS", "TempBalance", "cosine_lr",
           "digits_curves", "release_runs", "scheme_map", "summarize_curves"]

ARMS = ("uniform", "raw", "farms")
ARM_NAMES = {"uniform": "uniform lr", "raw": "TempBalance, raw α", "farms": "TempBalance, FARMS α"}
PROTOCOLS = ("zoo", "release")
#: (lr_min_ratio, lr_max_ratio) the FARMS release sweeps (config/farms_imagecls_ablation.txt:25-29),
#: narrowest first: a tie goes to 0.5-1.5, both releases' default (tempbalance_farms.py:26-27)
RELEASE_GRID = ((0.5, 1.5), (0.4, 1.6), (0.3, 1.7), (0.2, 1.8), (0.1, 1.9))
#: the FARMS scripts' weight decay (config/farms_imagecls_main.txt column 9; main_tb.py:35 defaults to 1e-4)
RELEASE_WEIGHT_DECAY = 5e-4
#: FARMS' eigs_thresh (tempbalance_farms.py:23; TempBalance's is 50, tempbalance.py:22)
RELEASE_EIGS_THRESH = 5
CURVE_COLUMNS = ["arm", "seed", "epoch", "accuracy", "seconds"]
RELEASE_COLUMNS = [*CURVE_COLUMNS, "lr_min_ratio", "lr_max_ratio", "tune_accuracy"]


def _check(arch: str, arms, protocol: str) -> None:
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        raise FarmsError(f"unknown arm {unknown[0]!r}; use {', '.join(ARMS)}.")
    if arch not in digits.ARCHS:
        raise FarmsError(f"unknown digits architecture {arch!r}; use {', '.join(digits.ARCHS)}.")
    if protocol not in PROTOCOLS:
        raise FarmsError(f"unknown protocol {protocol!r}; use {', '.join(PROTOCOLS)}.")


def digits_curves(arch: str = "cnn", seeds=(0, 1, 2), epochs: int = 10, arms=ARMS, every: int = 1,
                  scheme: str = "tb_linear_map", preset: str = "cnn", progress=None, protocol: str = "zoo",
                  grid=RELEASE_GRID) -> pd.DataFrame:
    """Test accuracy after each epoch (0 = initialisation) of the digits ``arch`` trained with a
    uniform lr or TempBalance from raw or FARMS alphas re-analysed every ``every`` epochs, by the
    ``protocol`` of the module docstring; columns ``arm, seed, epoch, accuracy, seconds``
    (seconds: that epoch's training and re-analysis), and for ``"release"`` also the chosen
    ``lr_min_ratio, lr_max_ratio`` (NaN for the uniform arm) and its ``tune_accuracy``."""
    _check(arch, arms, protocol)
    if protocol == "release":
        return release_runs(arch, seeds, epochs, arms, every, scheme, preset, progress, grid)[0]
    from farms_viz.core.threads import torch_threads

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
    return pd.DataFrame(rows, columns=CURVE_COLUMNS)


def _release_run(arch, seed, arm, lr_range, epochs, every, scheme, preset, xtr, ytr, tick):
    """One training by the release protocol: the weights after each epoch (0 = init), each
    epoch's seconds, and the tuning accuracy at the end (the test images are not read)."""
    model = digits.new_model(arch, seed)
    opt = digits.optimizer(model.parameters(), weight_decay=RELEASE_WEIGHT_DECAY)
    tb = None if arm == "uniform" else TempBalance(
        opt, model, arm, scheme, every=every, lr_min_ratio=lr_range[0], lr_max_ratio=lr_range[1],
        keep_first=True, keep_last=True, eigs_thresh=RELEASE_EIGS_THRESH, tie_norms=True, schedule_rest=True,
        preset=preset)
    gen = torch.Generator().manual_seed(seed)
    states, seconds = [{k: v.detach().clone() for k, v in model.state_dict().items()}], [0.0]
    for epoch in range(1, epochs + 1):
        tick(epoch)
        t0 = time.perf_counter()
        digits.train_epoch(model, opt, gen, xtr, ytr)
        lr = cosine_lr(digits.LR, epoch, epochs)  # the next epoch's base lr (main_tb.py:387-388)
        if tb is None:
            for g in opt.param_groups:
                g["lr"] = lr
        else:
            tb.step(lr)
        seconds.append(time.perf_counter() - t0)
        states.append({k: v.detach().clone() for k, v in model.state_dict().items()})
    return states, seconds, digits.tune_accuracy(model)


def release_runs(arch: str = "cnn", seeds=(0, 1, 2), epochs: int = 10, arms=ARMS, every: int = 1,
                 scheme: str = "tb_linear_map", preset: str = "cnn", progress=None, grid=RELEASE_GRID
                 ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ``"release"`` protocol of :func:`digits_curves`: its curves (chosen range per TB arm
    and seed) and the choice, one row per arm, seed and range tried: ``arm, seed, lr_min_ratio,
    lr_max_ratio, tune_accuracy, chosen``. Each TB arm trains once per range of ``grid``."""
    from farms_viz.core.threads import torch_threads

    _check(arch, arms, "release")
    grid = tuple((float(lo), float(hi)) for lo, hi in grid)
    if not grid:
        raise FarmsError("the grid of lr ranges is empty; give at least one (lr_min_ratio, lr_max_ratio).")
    xtr, ytr, _, _ = digits.data()
    xfit, yfit = xtr[:-digits.TUNE_IMAGES], ytr[:-digits.TUNE_IMAGES]  # the tuning images held out
    rows, choices = [], []
    total = len(seeds) * epochs * sum(1 if a == "uniform" else len(grid) for a in arms)
    done = [0]

    def tick(what: str) -> None:
        if progress:
            progress(done[0], total, what)
        done[0] += 1

    with torch_threads(1):
        for seed in seeds:
            for arm in arms:
                ranges = [(np.nan, np.nan)] if arm == "uniform" else grid
                runs = []
                for lo, hi in ranges:
                    label = f"seed {seed}, {ARM_NAMES[arm]}" + ("" if arm == "uniform" else f", lr {lo:g}-{hi:g}")
                    runs.append(_release_run(arch, seed, arm, (lo, hi), epochs, every, scheme, preset, xfit, yfit,
                                             lambda epoch, label=label: tick(f"{label}, epoch {epoch}")))
                tune = [r[2] for r in runs]
                best = int(np.argmax(tune))  # the first of the best: ties go to the narrowest range
                choices += [{"arm": arm, "seed": seed, "lr_min_ratio": lo, "lr_max_ratio": hi, "tune_accuracy": a,
                             "chosen": i == best} for i, ((lo, hi), a) in enumerate(zip(ranges, tune))]
                states, seconds, _ = runs[best]
                model = digits.new_model(arch, seed)
                for epoch, (state, sec) in enumerate(zip(states, seconds)):  # test images read after the choice
                    model.load_state_dict(state)
                    rows.append({"arm": arm, "seed": seed, "epoch": epoch, "accuracy": digits.evaluate(model),
                                 "seconds": sec, "lr_min_ratio": ranges[best][0], "lr_max_ratio": ranges[best][1],
                                 "tune_accuracy": tune[best]})
    if progress:
        progress(total, total, "")
    return pd.DataFrame(rows, columns=RELEASE_COLUMNS), pd.DataFrame(choices)


def summarize_curves(curves: pd.DataFrame) -> pd.DataFrame:
    """Per arm and epoch: ``n``, ``mean``, ``sd`` (ddof 1), ``min``, ``max`` of test accuracy over seeds."""
    g = curves.groupby(["arm", "epoch"], sort=False)["accuracy"]
    out = g.agg(n="count", mean="mean", sd=lambda v: v.std(ddof=1) if len(v) > 1 else np.nan, min="min",
                max="max").reset_index()
    return out
