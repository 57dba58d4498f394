"""WeightWatcher's ``get_summary()``, raw and FARMS (pipeline.analyze.Report.summary), in words for the CLI."""

from __future__ import annotations

import pandas as pd


def summary_lines(summary: pd.DataFrame, indent: str = "  ") -> list[str]:
    """Each metric's mean raw / FARMS over all layers, then over the layers FARMS can change."""
    if not len(summary):
        return []
    n, nc = int(summary["n_layers"].iloc[0]), int(summary["n_changeable"].iloc[0])
    out = [f"{indent}means over {n} layers (raw / FARMS) | over the {nc} FARMS can change"]
    for r in summary.itertuples():
        out.append(f"{indent}  {r.metric:<18} {r.raw:>10.4g} / {r.farms:<10.4g} | "
                   f"{r.raw_changeable:>10.4g} / {r.farms_changeable:.4g}")
    return out


def metrics_with_values(table: pd.DataFrame, metrics) -> list[str]:
    """The ``metrics`` whose ``<m>_raw`` or ``<m>_farms`` column has a finite value in ``table``."""
    out = []
    for m in metrics:
        cols = [c for c in (f"{m}_raw", f"{m}_farms") if c in table]
        if cols and pd.DataFrame({c: pd.to_numeric(table[c], errors="coerce") for c in cols}).notna().any().any():
            out.append(m)
    return out


def metric_trend_sentence(sentence: str, metric: str) -> str:
    """analyses.trend.trend_sentence's words for ``metric`` instead of alpha (its slopes are in the
    metric's units per 10x aspect ratio)."""
    if metric == "alpha":
        return sentence
    return sentence.replace(": α ", f": {metric} ").replace("have both alphas", f"have both {metric} values")
