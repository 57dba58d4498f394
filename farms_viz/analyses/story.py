"""What FARMS changes in one model, in words written from its own numbers (the Home page's text).

Pure: a report table and settings in, numbers and sentences out. Which layers FARMS can change at
all (a layer whose one FARMS window is the whole matrix gets raw = FARMS by construction), how
many diagnoses flip, which allocation moves most, and, when the effect is small, why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from farms_viz.analyses.allocate import alphapruning, movers, tempbalance
from farms_viz.analyses.diagnosis import fmt_number, summarize
from farms_viz.analyses.trend import TrendPair, trend_pair
from farms_viz.errors import FarmsError
from farms_viz.pipeline.schema import window_is_whole
from farms_viz.settings import Settings

#: the Allocations page's defaults, which the Home page's sentence about allocations uses
ALPHAPRUNING = dict(sparsity=0.7, epsilon=0.3)
TEMPBALANCE = dict(lr=1.0)


def whole_matrix_window(table: pd.DataFrame, settings: Settings) -> np.ndarray:
    """Per layer: its FARMS window is the whole matrix (see pipeline.schema.window_is_whole)."""
    return window_is_whole(table, settings)


@dataclass(frozen=True)
class Coverage:
    """How many layers FARMS can change, and why the others are raw = FARMS."""

    n_layers: int
    n_changeable: int
    n_whole: int
    n_square_whole: int
    n_identical: int
    max_shift: float
    max_shift_layer: str


def coverage(table: pd.DataFrame, settings: Settings) -> Coverage:
    whole = whole_matrix_window(table, settings)
    square = (table["rows"].astype(float) == table["cols"].astype(float)).to_numpy()
    a0, a1 = table["alpha_raw"].astype(float).to_numpy(), table["alpha_farms"].astype(float).to_numpy()
    shift = np.abs(a1 - a0)
    fin = np.isfinite(shift)
    i = int(np.nanargmax(np.where(fin, shift, -1))) if fin.any() else -1
    return Coverage(len(table), int((~whole).sum()), int(whole.sum()), int((whole & square).sum()),
                    int((fin & (shift == 0)).sum()), float(shift[i]) if i >= 0 else math.nan,
                    str(table["layer"].iloc[i]) if i >= 0 else "")


def most_moved_layer(table: pd.DataFrame, candidates=None) -> str | None:
    """The layer whose alpha moves most between raw and FARMS (|FARMS - raw|), among ``candidates``."""
    t = table if candidates is None else table[table["layer"].isin(list(candidates))]
    shift = (t["alpha_farms"].astype(float) - t["alpha_raw"].astype(float)).abs()
    if not np.isfinite(shift.to_numpy()).any():
        return None
    return str(t["layer"].iloc[int(np.nanargmax(shift.to_numpy()))])


@dataclass(frozen=True)
class Move:
    """The layer whose allocated value moves most from raw to FARMS alphas under one scheme."""

    scheme: str
    layer: str
    raw: float
    farms: float


def biggest_moves(table: pd.DataFrame) -> list[Move]:
    """AlphaPruning (sparsity 0.7, epsilon 0.3, blocks only) and TempBalance (lr factor) biggest moves."""
    out = []
    for scheme, make in (("AlphaPruning", lambda t: alphapruning(t, blocks_only=True, **ALPHAPRUNING)),
                         ("TempBalance", lambda t: tempbalance(t, **TEMPBALANCE))):
        try:
            alloc = make(table)
            m = movers(alloc, table[table["layer"].isin(alloc.table["layer"])], top=1)
        except FarmsError:
            continue
        if len(m) and np.isfinite(m["delta"].iloc[0]):
            c_raw, c_farms = alloc.columns()
            out.append(Move(scheme, str(m["layer"].iloc[0]), float(m[c_raw].iloc[0]), float(m[c_farms].iloc[0])))
    return out


@dataclass(frozen=True)
class Story:
    coverage: Coverage
    trend: TrendPair
    n_flipped: int
    n_fitted: int
    moves: list
    small: bool
    sentences: list


def story(table: pd.DataFrame, settings: Settings, published: bool = False) -> Story:
    """The Home page's account of what FARMS changes in this model, sentence by sentence."""
    cov = coverage(table, settings)
    s = summarize(table)
    pair = trend_pair(table)
    moves = biggest_moves(table)
    small = s.n_flipped == 0 and not pair.farms_changes_trend
    out = []
    can = (f"FARMS can change {cov.n_changeable} of {cov.n_layers} layers (non-square, or larger than one "
           f"{settings.window}-row window)")
    if cov.n_whole:
        what = (f"{cov.n_square_whole} are square and within one window" if cov.n_square_whole == cov.n_whole
                else f"{cov.n_whole} fit in one window ({cov.n_square_whole} of them square)")
        can += f"; {what}: raw = FARMS by construction."
    else:
        can += "."
    out.append(can)
    if math.isfinite(cov.max_shift):
        out.append(f"The largest shift is {fmt_number(cov.max_shift)} in α, in {cov.max_shift_layer}.")
    out.append(f"{s.n_flipped} of {s.n_fitted} diagnoses flip between raw and FARMS"
               + (" (HT-SR bands 2 and 6)." if s.n_fitted else "."))
    for m in moves:
        what = "sparsity" if m.scheme == "AlphaPruning" else "learning-rate factor"
        setting = "at sparsity 0.7, ε 0.3" if m.scheme == "AlphaPruning" else "base 1"
        out.append(f"{m.scheme} ({setting}) moves most in {m.layer}: {what} {fmt_number(m.raw)} raw → "
                   f"{fmt_number(m.farms)} FARMS.")
    if small:
        why = []
        if cov.n_whole and cov.n_whole >= cov.n_layers / 2:
            why.append(f"{cov.n_whole} of {cov.n_layers} layers are within one window, so raw = FARMS there")
        if not published and settings.fit == "xmin_peak":
            why.append("the xmin_peak rule is not flat even on pure noise, which can hide the bias (try xmin_mid)")
        if why:
            out.append("The effect is small here: " + "; ".join(why) + ".")
    return Story(cov, pair, s.n_flipped, s.n_fitted, moves, small, out)
