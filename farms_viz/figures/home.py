"""The Home page's figure: how far FARMS moves each layer's alpha. Pure: a table in, a Figure out."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from farms_viz.figures.style import COLORS, MUTED, base_layout, make_figure, rgba


def alpha_shift(table: pd.DataFrame, whole=None, title: str = "How far FARMS moves each layer's α") -> go.Figure:
    """Bars of alpha FARMS minus alpha raw per layer, in model order. ``whole`` (a bool per row:
    the FARMS window is the whole matrix, raw = FARMS by construction) greys those layers out.
    ``customdata[0]`` is the layer name."""
    t = table.reset_index(drop=True)
    n = len(t)
    whole = np.zeros(n, bool) if whole is None else np.asarray(whole, bool)
    d = t["alpha_farms"].astype(float).to_numpy() - t["alpha_raw"].astype(float).to_numpy()
    shape = [f"{int(r)} × {int(c)}" for r, c in zip(t["rows"].astype(float).fillna(0), t["cols"].astype(float).fillna(0))]
    why = np.where(whole, "one window covers the matrix: raw = FARMS by construction", "FARMS windows differ from the matrix")
    cd = np.stack([t["layer"].astype(str).to_numpy(), np.array(shape, dtype=object), why,
                   t["alpha_raw"].astype(float).to_numpy(), t["alpha_farms"].astype(float).to_numpy()], axis=1) \
        if n else np.empty((0, 5))
    hover = ("<b>%{customdata[0]}</b> (%{customdata[1]})<br>α raw %{customdata[3]:.2f} → FARMS %{customdata[4]:.2f}"
             " (Δ %{y:+.2f})<br>%{customdata[2]}<extra></extra>")
    traces = []
    for name, mask, color in (("FARMS can change α", ~whole, COLORS["farms"]),
                              ("one window = whole matrix (Δ = 0 by construction)", whole, rgba(MUTED, 0.45))):
        idx = np.flatnonzero(mask)
        traces.append(go.Bar(x=idx + 1, y=d[idx], name=name, marker=dict(color=color, line=dict(width=0)),
                             customdata=cd[idx] if n else cd, hovertemplate=hover, width=0.8))
    # layers whose shift is exactly 0 would be invisible: a small tick marks each of them
    zero = np.flatnonzero(np.isfinite(d) & (d == 0))
    span = float(np.nanmax(np.abs(d))) if np.isfinite(d).any() else 1.0
    traces.append(go.Scatter(x=zero + 1, y=np.zeros(zero.size), mode="markers", showlegend=False, hoverinfo="skip",
                             marker=dict(symbol="line-ew", size=8, line=dict(width=2, color=rgba(MUTED, 0.8)))))
    return make_figure(traces, base_layout(
        title, height=360, bargap=0.15,
        xaxis=dict(title=dict(text="layer (model order; hover for its name)"), showgrid=False,
                   range=[0.3, n + 0.7]),
        yaxis=dict(title=dict(text="α FARMS − α raw"), zeroline=True, zerolinecolor=MUTED,
                   range=[-1.15 * max(span, 0.05), 1.15 * max(span, 0.05)]),
    ))
