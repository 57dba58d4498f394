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
