"""A layer's FARMS side: the window grid's pooled ESD and its fit, or the release's conv blocks."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from farms_viz.core.fits import PowerLawFit, fit_power_law, mean_fit
from farms_viz.core.matrices import LayerMatrices
from farms_viz.core.spectra import WindowGrid, conv_block_esds, farms_esd
from farms_viz.settings import Settings

#: Layer kinds made of kernel-position slices, whose FARMS windows follow ``Settings.conv_rule``.
CONV_KINDS = ("conv2d", "conv2d_depthwise", "conv1d")


def uses_blocks(kind: str, settings: Settings) -> bool:
    """Whether FARMS on a layer of ``kind`` is the release's conv blocks (``Settings.conv_rule``)."""
    return kind in CONV_KINDS and settings.conv_rule == "release"


def log10(x: float) -> float:
    return math.log10(x) if x > 0 else math.nan


@dataclass
class FarmsSide:
    """A layer's FARMS result: the pooled ESD (for plots), the window grid, the fit and
    alpha_hat (alpha times log10 of the largest pooled eigenvalue, as in the release)."""

    esd: np.ndarray
    grid: WindowGrid
    fit: PowerLawFit
    alpha_hat: float
    #: the release's conv blocks (one fit per block, averaged) rather than one pooled fit
    blocks: bool = False
    #: those blocks' ESDs, each ascending (empty for the window grid)
    block_esds: tuple[np.ndarray, ...] = ()

    @property
    def is_raw(self) -> bool:
        """One window (or block) covers each whole slice: the FARMS ESD, its dimensions and its
        fits are the raw ones."""
        return covers(self.grid)


def covers(grid: WindowGrid) -> bool:
    """The grid is one window the size of the slice."""
    return grid.n_windows == 1 and (grid.h, grid.w) == (grid.rows, grid.cols)


def farms_spectra(slices: torch.Tensor, settings: Settings, raw: np.ndarray, blocks: bool, bulk_only: bool = False
                  ) -> tuple[list[np.ndarray], WindowGrid]:
    """The FARMS ESDs of a stack of slices: one per conv block (``blocks``) or the one pooled ESD
    of the window grid; ``raw`` (the stack's raw ESD) is returned when one window covers it.
    ``bulk_only``: see spectra.BULK_ONLY_DTYPE."""
    if blocks:
        return conv_block_esds(slices, settings.q, settings.device, raw=raw, bulk_only=bulk_only)
    e, grid = farms_esd(slices, settings.window, settings.q, settings.ops, settings.device, raw=raw,
                        bulk_only=bulk_only)
    return [e], grid


def farms_side(mats: LayerMatrices, settings: Settings, e_raw: np.ndarray, fit_raw: PowerLawFit | None = None
               ) -> FarmsSide:
    """FARMS for one layer: the window grid's pooled ESD and its fit or, for conv layers under
    the ``release`` conv rule, one fit per block (spectra.conv_blocks) averaged like the release
    (alpha_hat too: the mean of the blocks' alpha * log10 of their largest eigenvalue).

    ``fit_raw`` (the raw ESD's fit) is reused where the FARMS ESD is the raw ESD with the same
    dimension, instead of fitting the same numbers twice."""
    blocks = uses_blocks(mats.kind, settings)
    esds, grid = farms_spectra(mats.slices, settings, e_raw, blocks)
    dim = max(grid.h, grid.w)
    same = fit_raw is not None and covers(grid)
    if blocks:
        fits = [fit_raw if same else fit_power_law(b, settings.fit, settings.xmin_pos, dim=dim) for b in esds]
        hats = [f.alpha * log10(float(b[-1])) for f, b in zip(fits, esds) if f.status == "ok" and b.size]
        return FarmsSide(np.sort(np.concatenate(esds)), grid, mean_fit(fits),
                         float(np.mean(hats)) if hats else math.nan, blocks=True,
                         block_esds=tuple(np.sort(np.asarray(b, dtype=np.float64)) for b in esds))
    e = esds[0]
    fit = fit_raw if same else fit_power_law(e, settings.fit, settings.xmin_pos, dim=dim)
    return FarmsSide(e, grid, fit, fit.alpha * log10(float(e[-1]) if e.size else math.nan))
