"""The aspect-ratio trend of alpha, with its uncertainty, and the sentence that states it.

The trend is the least-squares line alpha = a + b log10(aspect ratio) over a model's layers; b is
"alpha per 10x aspect ratio". Its uncertainty is a bootstrap over layers (layers resampled with
replacement, ``N_BOOT`` times, seeded): a 95 % percentile interval for b raw, b FARMS and, with
the same resamples for both, their difference. Sentences say what these intervals say: a trend
is called flat only when its interval contains 0, and FARMS is said to change the trend only
when the interval of the difference excludes 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

N_BOOT = 2000
LEVEL = 0.95


@dataclass(frozen=True)
class Slope:
    """b of alpha = a + b log10(aspect ratio), with a bootstrap interval (NaN when undefined)."""

    value: float
    low: float
    high: float

    @property
    def defined(self) -> bool:
        return math.isfinite(self.value)

    @property
    def flat(self) -> bool:
        """The interval contains 0 (so the data do not show a trend)."""
        return self.defined and self.low <= 0 <= self.high

    def cell(self) -> str:
        """Short form for a table: ``+1.04 [+0.88, +1.19]``, with `` flat`` when the interval holds 0."""
        if not self.defined:
            return "–"
        ci = f" [{self.low:+.2f}, {self.high:+.2f}]" if math.isfinite(self.low) else ""
        return f"{self.value:+.2f}{ci}" + (" flat" if self.flat else "")

    def text(self) -> str:
        if not self.defined:
            return "undefined"
        return f"{self.value:+.2f} (95% CI {self.low:+.2f} to {self.high:+.2f})"


UNDEFINED = Slope(math.nan, math.nan, math.nan)


@dataclass(frozen=True)
class TrendPair:
    """The raw and FARMS trends of one table and their difference (raw minus FARMS)."""

    raw: Slope
    farms: Slope
    difference: Slope
    n_layers: int
    n_ratios: int

    @property
    def farms_changes_trend(self) -> bool:
        return self.difference.defined and not self.difference.flat


def _slopes(x: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Least-squares slopes of each column of Y on x (rows: observations); NaN where x is constant."""
    xc = x - x.mean(axis=0, keepdims=True)
    sxx = (xc ** 2).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (xc * (Y - Y.mean(axis=0, keepdims=True))).sum(axis=0) / np.where(sxx > 1e-18, sxx, np.nan)


def _interval(samples: np.ndarray, value: float) -> Slope:
    s = samples[np.isfinite(samples)]
    if not math.isfinite(value) or s.size < 0.5 * samples.size:
        return Slope(value, math.nan, math.nan) if math.isfinite(value) else UNDEFINED
    lo, hi = np.quantile(s, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
    return Slope(value, float(lo), float(hi))


def trend_pair(table: pd.DataFrame, raw: str = "alpha_raw", farms: str = "alpha_farms",
               n_boot: int = N_BOOT, seed: int = 0) -> TrendPair:
    """Slopes of ``raw`` and ``farms`` alpha on log10(aspect ratio) over the layers where both are
    finite, with paired bootstrap intervals (the same resampled layers for both and the difference)."""
    ar = table["aspect_ratio"].astype(float).to_numpy()
    a0 = table[raw].astype(float).to_numpy()
    a1 = table[farms].astype(float).to_numpy()
    ok = np.isfinite(ar) & (ar > 0) & np.isfinite(a0) & np.isfinite(a1)
    x, a0, a1 = np.log10(ar[ok]), a0[ok], a1[ok]
    n, n_ratios = int(ok.sum()), int(np.unique(np.round(x, 9)).size)
    if n < 3 or n_ratios < 2:
        return TrendPair(UNDEFINED, UNDEFINED, UNDEFINED, n, n_ratios)
    b = _slopes(x[:, None], np.stack([a0, a1], axis=1))
    idx = np.random.default_rng(seed).integers(0, n, size=(n, n_boot))
    xs = x[idx]
    bs0, bs1 = _slopes(xs, a0[idx]), _slopes(xs, a1[idx])
    return TrendPair(_interval(bs0, float(b[0])), _interval(bs1, float(b[1])),
                     _interval(bs0 - bs1, float(b[0] - b[1])), n, n_ratios)


def trend_rows(pairs: dict[str, TrendPair]) -> list[dict]:
    """One row per fit rule for a table: its raw and FARMS slopes, FARMS minus raw, and the reading."""
    out = []
    for rule, p in pairs.items():
        d = p.difference
        minus = Slope(-d.value, -d.high, -d.low) if d.defined else UNDEFINED
        reading = ("no trend can be fitted" if not d.defined else
                   "FARMS changes the trend" if p.farms_changes_trend else "no difference beyond the uncertainty")
        out.append({"fit rule": rule, "raw slope": p.raw.cell(), "FARMS slope": p.farms.cell(),
                    "FARMS − raw": minus.cell().replace(" flat", ""), "reading": reading})
    return out


def _one(name: str, s: Slope) -> str:
    if not s.defined:
        return f"{name}: no trend can be fitted"
    if s.flat:
        return f"{name}: flat within its uncertainty, {s.text()} per 10× aspect ratio"
    way = "rises" if s.value > 0 else "falls"
    return f"{name}: α {way} by {abs(s.value):.2f} per 10× aspect ratio (95% CI {s.low:+.2f} to {s.high:+.2f})"


def trend_sentence(pair: TrendPair) -> str:
    """What the two trends and their difference show, in words that follow the intervals."""
    if not pair.raw.defined or not pair.farms.defined:
        why = ("all layers share one aspect ratio" if pair.n_ratios < 2 else
               f"only {pair.n_layers} layers have both alphas")
        return f"No aspect-ratio trend can be fitted: {why}."
    head = f"{_one('Raw', pair.raw)}. {_one('FARMS', pair.farms)}."
    d = pair.difference
    if not math.isfinite(d.low):
        return head + " The bootstrap could not bound the difference."
    if pair.farms_changes_trend:
        tail = (f" FARMS changes the trend by {-d.value:+.2f} per 10× (95% CI {-d.high:+.2f} to {-d.low:+.2f}): "
                "larger than its uncertainty.")
    else:
        tail = (f" The raw and FARMS trends do not differ beyond their uncertainty "
                f"(FARMS minus raw {-d.value:+.2f}, 95% CI {-d.high:+.2f} to {-d.low:+.2f}).")
    few = (f" Only {pair.n_ratios} distinct aspect ratios: each slope rests on few points."
           if pair.n_ratios < 3 else "")
    return head + tail + few + f" Intervals: bootstrap over the {pair.n_layers} layers."
