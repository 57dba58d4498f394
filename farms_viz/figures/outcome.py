"""Figures of what an allocation does: a pruned model's measure vs sparsity, and TempBalance's
accuracy curves; one line per allocation (uniform grey, raw orange, FARMS blue) with its spread
over seeds as a band.

Pure functions: the summaries of :mod:`farms_viz.analyses.outcome` and
:mod:`farms_viz.analyses.tempbalance` in, ``go.Figure`` out. Every line's trace has ``meta`` set
to its allocation (``uniform``, ``raw``, ``farms``); its band has ``meta`` ``"<allocation> band"``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from farms_viz.analyses.calibrate import LABELS
from farms_viz.analyses.outcome import ALLOCATIONS
from farms_viz.analyses.outcome import NAMES as ALLOCATION_NAMES
from farms_viz.analyses.tempbalance import ARM_NAMES
from farms_viz.figures.style import COLORS, INK, MUTED, base_layout, make_figure

LINE_COLORS = {"uniform": MUTED, **COLORS}
#: what the band around each line spans
BANDS = {"minmax": "min–max over seeds", "sd": "mean ± 1 sd over seeds"}


def _fill(color: str, alpha: float = 0.16) -> str:
    c = color.lstrip("#")
    r, g, b = (int(c[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def _band(x, lo, hi, key: str, name: str) -> go.Scatter:
    """A closed polygon from ``lo`` (left to right) back along ``hi``: the spread of one line."""
    x, lo, hi = (np.asarray(v, float) for v in (x, lo, hi))
    return go.Scatter(x=np.concatenate([x, x[::-1]]), y=np.concatenate([lo, hi[::-1]]), mode="lines", fill="toself",
                      fillcolor=_fill(LINE_COLORS[key]), line=dict(width=0), hoverinfo="skip", showlegend=False,
                      name=f"{name}: spread", meta=f"{key} band", legendgroup=key)


def _small(text: str) -> str:
    return f"<span style='font-size:12px'>{text}</span>"


def _spread(band: str, n: int) -> str:
    return f"band: {BANDS[band].replace('seeds', f'{n} seeds')}" if n > 1 else "one seed"


def _bounds(g: pd.DataFrame, band: str) -> tuple[np.ndarray, np.ndarray]:
    if band == "sd":
        sd = g["sd"].fillna(0).to_numpy(float)
        return g["mean"].to_numpy(float) - sd, g["mean"].to_numpy(float) + sd
    return g["min"].to_numpy(float), g["max"].to_numpy(float)


def _epsilon_ticks(s: pd.DataFrame) -> dict:
    """x ticks at the measured sparsities, each with the epsilon the raw and FARMS arms chose written
    under it in their colours (labels on the plot collided where the lines meet)."""
    if not len(s) or "epsilon" not in s.columns or not s["epsilon"].astype(str).str.len().any():
        return dict(tickformat=".2f")
    levels = sorted(set(s["sparsity"]))
    text = []
    for x in levels:
        row = s[s["sparsity"] == x].set_index("allocation")["epsilon"]
        parts = [f"<span style='color:{LINE_COLORS[k]}'>ε {row[k]}</span>" for k in ("raw", "farms")
                 if k in row.index and str(row[k])]
        text.append(f"{x:g}" + (f"<br><span style='font-size:10px'>{' · '.join(parts)}</span>" if parts else ""))
    return dict(tickmode="array", tickvals=levels, ticktext=text)


def outcome_chart(summary: pd.DataFrame, band: str = "minmax", log_y: bool | None = None,
                  title: str | None = None) -> go.Figure:
    """One model and method: its measure vs target sparsity, a line per allocation (mean over
    seeds) with the spread as a band (``minmax`` or ``sd``), the dense model as a dotted line; each
    sparsity tick carries the epsilon the raw and FARMS arms' seeds chose (``summary["epsilon"]``).
    ``log_y`` (default: for perplexity) draws the measure on a log scale."""
    if band not in BANDS:
        raise ValueError(f"band must be one of {', '.join(BANDS)}")
    s = summary
    metric = str(s["metric"].iloc[0]) if len(s) else "measure"
    log_y = ("perplexity" in metric) if log_y is None else log_y
    n = int(s["n"].max()) if len(s) else 0
    traces = []
    for key in ALLOCATIONS:
        g = s[s["allocation"] == key].sort_values("sparsity")
        if g.empty:
            continue
        name = ALLOCATION_NAMES[key]
        if n > 1:
            lo, hi = _bounds(g, band)
            traces.append(_band(g["sparsity"], lo, hi, key, name))
        cd = np.stack([g["n"].to_numpy(float), g["sd"].to_numpy(float), g["min"].to_numpy(float),
                       g["max"].to_numpy(float), g["achieved"].to_numpy(float)], axis=1)
        eps = [str(e) for e in g["epsilon"]] if "epsilon" in g.columns else [""] * len(g)
        shown = key != "uniform" and any(eps)
        traces.append(go.Scatter(
            x=g["sparsity"], y=g["mean"], mode="lines+markers", name=name, meta=key,
            legendgroup=key, customdata=np.column_stack([cd, np.array(eps, dtype=object)]),
            line=dict(color=LINE_COLORS[key], width=2.2, dash="dash" if key == "uniform" else "solid"),
            marker=dict(size=7),
            hovertemplate=(f"<b>{name}</b><br>sparsity %{{x:g}} (achieved %{{customdata[4]:.4f}})"
                           f"<br>{metric}: %{{y:.4g}}<br>sd %{{customdata[1]:.3g}} · min %{{customdata[2]:.4g}} · "
                           "max %{customdata[3]:.4g} (n = %{customdata[0]:.0f})"
                           + ("<br>ε %{customdata[5]} (per seed)" if shown else "") + "<extra></extra>")))
    shapes = []
    if len(s):
        dense = float(s["dense_mean"].iloc[0])
        shapes.append(dict(type="line", xref="paper", yref="y", x0=0, x1=1, y0=dense, y1=dense, layer="below",
                           line=dict(color=INK, dash="dot", width=1.2)))
        traces.append(go.Scatter(x=[None], y=[None], mode="lines", name=f"dense {dense:.4g}", meta="dense",
                                 line=dict(color=INK, dash="dot", width=1.2), hoverinfo="skip"))
    model = str(s["model"].iloc[0]) if len(s) else ""
    method = LABELS.get(str(s["method"].iloc[0]), str(s["method"].iloc[0])) if len(s) else ""
    return make_figure(traces, base_layout(
        title or f"{model} pruned with {method}<br>{_small(f'{metric} vs sparsity; ' + _spread(band, n))}",
        height=460, xaxis=dict(title=dict(text="target sparsity S"), **_epsilon_ticks(s)),
        yaxis=dict(title=dict(text=metric + (" (log scale)" if log_y else "")), type="log" if log_y else "linear"),
        shapes=shapes,
    ))


def curves_chart(summary: pd.DataFrame, band: str = "minmax", title: str | None = None) -> go.Figure:
    """TempBalance vs a uniform lr: test accuracy after each epoch, a line per arm (mean over seeds)
    with the spread as a band; ``summary`` from :func:`~farms_viz.analyses.tempbalance.summarize_curves`."""
    if band not in BANDS:
        raise ValueError(f"band must be one of {', '.join(BANDS)}")
    n = int(summary["n"].max()) if len(summary) else 0
    traces = []
    for key in ALLOCATIONS:
        g = summary[summary["arm"] == key].sort_values("epoch")
        if g.empty:
            continue
        name = ARM_NAMES[key]
        if n > 1:
            lo, hi = _bounds(g, band)
            traces.append(_band(g["epoch"], lo, hi, key, name))
        traces.append(go.Scatter(
            x=g["epoch"], y=g["mean"], mode="lines+markers", name=name, meta=key, legendgroup=key,
            line=dict(color=LINE_COLORS[key], width=2.2, dash="dash" if key == "uniform" else "solid"),
            marker=dict(size=6), customdata=np.stack([g["min"], g["max"]], axis=1),
            hovertemplate=(f"<b>{name}</b><br>epoch %{{x}}: accuracy %{{y:.4f}}"
                           "<br>min %{customdata[0]:.4f} · max %{customdata[1]:.4f}<extra></extra>")))
    return make_figure(traces, base_layout(
        title or f"Test accuracy while training<br>{_small('uniform lr vs TempBalance; ' + _spread(band, n))}",
        height=420,
        xaxis=dict(title=dict(text="epoch"), dtick=1), yaxis=dict(title=dict(text="test accuracy"), tickformat=".2f"),
    ))
