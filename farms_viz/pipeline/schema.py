"""The report's shape: its columns, and what one layer's plots need (``LayerSpectra``, two sides).

A layer is analysed twice, on the whole matrix (``raw``) and on the FARMS windows (``farms``);
every column that exists in both forms is ``<name>_raw`` / ``<name>_farms``, and
``LayerSpectra.side(which)`` gives one side's ESD, power-law fit and MP fit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from farms_viz.core.fits import PowerLawFit
from farms_viz.core.mp import MPFit
from farms_viz.core.spectra import WindowGrid
from farms_viz.pipeline.metrics import METRICS, RandSide, metric_columns

COLUMNS = [
    "layer", "kind", "rows", "cols", "aspect_ratio", "n_slices", "window_rows", "window_cols",
    "n_windows", "n_eigs_raw", "n_eigs_farms", "alpha_raw", "alpha_farms", "xmin_raw", "xmin_farms",
    "D_raw", "D_farms", "n_tail_raw", "n_tail_farms", "spectral_norm", "frobenius_norm2",
    "stable_rank", "alpha_hat_raw", "alpha_hat_farms", "mp_sigma_raw", "mp_sigma_farms",
    "n_spikes_raw", "n_spikes_farms", *metric_columns(), "dtype", "seconds", "status",
]

#: the metrics :meth:`Report.summary` averages: alpha and the columns of pipeline.metrics
SUMMARY_METRICS = ("alpha", "alpha_hat", *METRICS)

#: ``progress(done, total, layer)``, called before each layer and once at the end.
Progress = Callable[[int, int, str], None]
#: The |W| picture behind the window grid is block-averaged to at most this many pixels per side.
THUMB_SIDE = 160


#: The two sides of every layer, in the order the app shows them.
SIDES = ("raw", "farms")


@dataclass(frozen=True)
class Side:
    """One side of a layer: its ESD (ascending eigenvalues), power-law fit and Marchenko-Pastur fit."""

    esd: np.ndarray
    fit: PowerLawFit
    mp: MPFit


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
    #: block-mean |W| of the first slice, at most THUMB_SIDE per side, for the window-grid picture
    thumbnail: np.ndarray | None = None
    #: FARMS by the release's conv blocks (one fit per block, alpha averaged), not one pooled fit
    blocks: bool = False
    #: the blocks' own ESDs (each ascending), kept so the fits can be redone under another rule
    #: without new spectra (analyses.rules); empty unless ``blocks``
    block_esds: tuple[np.ndarray, ...] = ()
    #: the randomized ESD (element-wise shuffled matrix) of each side, its MP bulk edge and traps;
    #: None unless ``Settings.randomize``
    rand_raw: RandSide | None = None
    rand_farms: RandSide | None = None

    def rand(self, which: str) -> RandSide | None:
        """The ``raw`` or ``farms`` randomized side, or None."""
        if which not in SIDES:
            raise ValueError(f"which must be one of {SIDES}, not {which!r}")
        return getattr(self, f"rand_{which}")

    def side(self, which: str) -> Side:
        """The ``raw`` or ``farms`` side of this layer."""
        if which not in SIDES:
            raise ValueError(f"which must be one of {SIDES}, not {which!r}")
        return Side(getattr(self, f"esd_{which}"), getattr(self, f"fit_{which}"), getattr(self, f"mp_{which}"))


def window_is_whole(table, settings) -> np.ndarray:
    """Per row: the layer's FARMS window is the whole matrix (one window), so raw and FARMS see the
    same ESD and FARMS cannot change it. From the table's window columns, or for published tables
    without them, from ``settings`` (the window capped by the short side, times q)."""
    out = []
    for _, r in table.iterrows():
        try:
            rows, cols = float(r["rows"]), float(r["cols"])
            wr, wc = float(r.get("window_rows", math.nan)), float(r.get("window_cols", math.nan))
            if not (math.isfinite(wr) and math.isfinite(wc)):
                wr = min(float(settings.window), min(rows, cols))
                wc = min(max(1.0, math.floor(wr * settings.q)), max(rows, cols))
        except (KeyError, TypeError, ValueError):
            out.append(False)
            continue
        out.append(bool(wr * wc >= rows * cols))
    return np.array(out, dtype=bool)
