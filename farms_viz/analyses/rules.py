"""Fit-rule sensitivity: every layer's alpha under each xmin rule, raw and FARMS, from the same ESDs.

The rule that picks the start of the tail (``xmin_peak``, ``xmin_mid``, ``ks``; see
:func:`farms_viz.core.fits.fit_power_law`) moves alpha, and with it the aspect-ratio trend FARMS
is meant to remove. These functions refit the spectra a report already holds (no new
eigenvalues): the raw ESD, the pooled FARMS ESD, or for conv layers under the release's rule
the blocks' own ESDs, averaged as the release averages them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from farms_viz.core.fits import PowerLawFit, fit_power_law, mean_fit
from farms_viz.pipeline.schema import SIDES, LayerSpectra
from farms_viz.settings import FITS


def rule_fit(spec: LayerSpectra, which: str, rule: str, xmin_pos: float = 2.0) -> PowerLawFit:
    """One side of one layer refitted with ``rule`` (dimensions as the analysis used them)."""
    if which == "raw":
        return fit_power_law(spec.esd_raw, rule, xmin_pos, dim=max(spec.rows, spec.cols))
    dim = max(spec.grid.h, spec.grid.w)
    if spec.blocks and spec.block_esds:
        return mean_fit([fit_power_law(b, rule, xmin_pos, dim=dim) for b in spec.block_esds])
    spec.side(which)  # validates ``which``
    return fit_power_law(spec.esd_farms, rule, xmin_pos, dim=dim)


def rule_fits(spec: LayerSpectra, xmin_pos: float = 2.0) -> dict[tuple[str, str], PowerLawFit]:
    """``{(rule, side): fit}`` for every rule in FITS and both sides of one layer."""
    return {(rule, which): rule_fit(spec, which, rule, xmin_pos) for rule in FITS for which in SIDES}


def rule_column(rule: str, which: str) -> str:
    """The column of :func:`rule_table` holding ``rule``'s alpha on side ``which``."""
    return f"alpha_{which}_{rule}"


def rule_table(report) -> pd.DataFrame:
    """A row per layer with spectra (model order): layer, aspect_ratio and ``alpha_<side>_<rule>``
    for every rule and side. The report's own rule reproduces its ``alpha_raw`` / ``alpha_farms``."""
    t = report.table
    xmin_pos = report.settings.xmin_pos
    rows = []
    for _, r in t.iterrows():
        spec = report.spectra.get(r["layer"])
        if spec is None:
            continue
        row = {"layer": r["layer"], "kind": r.get("kind", ""), "aspect_ratio": float(r["aspect_ratio"])}
        for (rule, which), fit in rule_fits(spec, xmin_pos).items():
            row[rule_column(rule, which)] = fit.alpha
        rows.append(row)
    cols = ["layer", "kind", "aspect_ratio"] + [rule_column(r, w) for r in FITS for w in SIDES]
    return pd.DataFrame(rows, columns=cols)


def as_report_table(rules: pd.DataFrame, rule: str) -> pd.DataFrame:
    """``rules`` with one rule's alphas as ``alpha_raw`` / ``alpha_farms`` (for the trend functions)."""
    out = rules[["layer", "kind", "aspect_ratio"]].copy()
    for which in SIDES:
        out[f"alpha_{which}"] = rules[rule_column(rule, which)].astype(float).to_numpy()
    return out


def spread(rules: pd.DataFrame, which: str) -> np.ndarray:
    """Per layer, max minus min alpha over the rules on side ``which`` (NaN where a rule has no fit)."""
    a = rules[[rule_column(r, which) for r in FITS]].astype(float).to_numpy()
    return a.max(axis=1) - a.min(axis=1)
