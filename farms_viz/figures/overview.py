"""The model overview's figures: alpha per layer with the bands, alpha vs aspect ratio.

Pure functions: a report table in, a ``go.Figure`` out.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from farms_viz.analyses.diagnosis import BANDS
from farms_viz.figures.style import COLORS, MUTED, NAMES, base_layout, finite, make_figure


def _alpha_range(alphas) -> tuple[float, float]:
    a = finite(alphas)
    hi = max(7.5, float(a.max()) * 1.06) if a.size else 7.5
    return 0.0, hi


def _band_shapes(axis: str, hi: float) -> tuple[list, list]:
    """Shade the alpha bands on axis ``x`` (vertical bands) or ``y`` (horizontal bands), labelled."""
    texts = {"over-trained": "α < 2 over-trained", "well-trained": "2 ≤ α ≤ 6 well-trained",
             "under-trained": "α > 6 under-trained"}
    shapes, notes = [], []
    for lo, up, name, color in BANDS:
        up = min(up, hi)
        if up <= lo:
            continue
        if axis == "x":
            shapes.append(dict(type="rect", xref="x", yref="paper", x0=lo, x1=up, y0=0, y1=1, fillcolor=color,
                               opacity=0.55, line_width=0, layer="below", name=name))
            notes.append(dict(xref="x", yref="paper", x=lo, y=1, xanchor="left", yanchor="bottom", text=texts[name],
                              showarrow=False, font=dict(size=11, color=MUTED)))
        else:
            shapes.append(dict(type="rect", xref="paper", yref="y", x0=0, x1=1, y0=lo, y1=up, fillcolor=color,
                               opacity=0.55, line_width=0, layer="below", name=name))
            notes.append(dict(xref="paper", yref="y", x=1, y=(lo + up) / 2, xanchor="right", yanchor="middle",
                              text=texts[name], showarrow=False, font=dict(size=11, color=MUTED)))
    return shapes, notes


def _hover_data(table: pd.DataFrame) -> np.ndarray:
    shape = [f"{int(r)} × {int(c)}" if np.isfinite(r) and np.isfinite(c) else "?"
             for r, c in zip(table["rows"].astype(float), table["cols"].astype(float))]
    return np.stack([table["layer"].astype(str).to_numpy(), np.array(shape, dtype=object),
                     table["aspect_ratio"].astype(float).to_numpy(),
                     table["alpha_raw"].astype(float).to_numpy(),
                     table["alpha_farms"].astype(float).to_numpy()], axis=1)


_HOVER = ("<b>%{customdata[0]}</b><br>shape %{customdata[1]}, aspect ratio %{customdata[2]:.2f}"
          "<br>α raw %{customdata[3]:.2f} · α FARMS %{customdata[4]:.2f}<extra>%{fullData.name}</extra>")


def alpha_bars(table: pd.DataFrame, title: str = "Power-law exponent α per layer") -> go.Figure:
    """Grouped horizontal bars of alpha raw and FARMS per layer, in model order (top to bottom).

    Horizontal bars keep every layer name readable, however many layers (height grows with
    the count); the alpha bands are shaded and labelled. ``customdata[0]`` is the layer name.
    """
    t = table.reset_index(drop=True)
    n = len(t)
    cd = _hover_data(t) if n else np.empty((0, 5))
    y = t["layer"].astype(str).tolist()
    traces = [go.Bar(x=t[col].astype(float).to_numpy(), y=y, orientation="h", name=f"α {NAMES[which]}",
                     marker=dict(color=COLORS[which], line=dict(width=0)), customdata=cd, hovertemplate=_HOVER)
              for which, col in (("raw", "alpha_raw"), ("farms", "alpha_farms"))]
    lo, hi = _alpha_range(np.concatenate([t["alpha_raw"], t["alpha_farms"]]) if n else [])
    shapes, notes = _band_shapes("x", hi)
    row_px = 24 if n <= 40 else (18 if n <= 120 else 13)
    tick_size = 12 if n <= 40 else (11 if n <= 120 else 9)
    return make_figure(traces, base_layout(
        title, height=max(320, 140 + row_px * n), barmode="group", bargap=0.25, bargroupgap=0.05,
        shapes=shapes, annotations=notes,
        yaxis=dict(autorange="reversed", type="category", tickfont=dict(size=tick_size), showgrid=False),
        xaxis=dict(range=[lo, hi], title=dict(text="α (power-law exponent of the ESD tail)"), zeroline=False,
                   showline=True),
    ))


def _trend(x: np.ndarray, y: np.ndarray) -> tuple[float, float] | None:
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0)
    if ok.sum() < 2 or np.ptp(np.log10(x[ok])) < 1e-9:
        return None
    b, a = np.polyfit(np.log10(x[ok]), y[ok], 1)
    return float(a), float(b)


def alpha_vs_aspect(table: pd.DataFrame, title: str = "α vs aspect ratio: the bias FARMS removes") -> go.Figure:
    """Scatter of alpha against the matrix aspect ratio, raw and FARMS, with a least-squares trend each.

    The trend is alpha = a + b log10(aspect ratio); raw alpha drifts with the aspect ratio, FARMS
    alpha should not. The layer name is in ``customdata[0]``.
    """
    t = table.reset_index(drop=True)
    cd = _hover_data(t) if len(t) else np.empty((0, 5))
    ar = t["aspect_ratio"].astype(float).to_numpy()
    traces = []
    symbols = {"raw": "circle", "farms": "diamond"}
    # raw a little left, FARMS a little right of each aspect ratio, joined per layer, so the
    # pairs do not hide each other and each layer's shift is visible
    offset = {"raw": 0.965, "farms": 1.035}
    if len(t):
        xs_pair, ys_pair = [], []
        for x, a0, a1 in zip(ar, t["alpha_raw"].astype(float), t["alpha_farms"].astype(float)):
            if np.isfinite([x, a0, a1]).all() and a0 != a1:
                xs_pair += [x * offset["raw"], x * offset["farms"], None]
                ys_pair += [a0, a1, None]
        traces.append(go.Scatter(x=xs_pair, y=ys_pair, mode="lines", hoverinfo="skip", showlegend=False,
                                 line=dict(color="rgba(82,96,109,0.35)", width=1)))
    for which, col in (("raw", "alpha_raw"), ("farms", "alpha_farms")):
        a = t[col].astype(float).to_numpy()
        traces.append(go.Scatter(
            x=ar * offset[which], y=a, mode="markers", name=f"α {NAMES[which]}", customdata=cd, hovertemplate=_HOVER,
            marker=dict(color=COLORS[which], symbol=symbols[which], size=9, opacity=0.8,
                        line=dict(width=1, color="white")),
        ))
        tr = _trend(ar, a)
        if tr is not None:
            xs = np.geomspace(np.nanmin(ar[ar > 0]), np.nanmax(ar), 30)
            traces.append(go.Scatter(
                x=xs, y=tr[0] + tr[1] * np.log10(xs), mode="lines", hoverinfo="skip",
                name=f"{NAMES[which]} trend: {tr[1]:+.2f} per 10× aspect ratio",
                line=dict(color=COLORS[which], dash="dash", width=2),
            ))
    lo, hi = _alpha_range(np.concatenate([t["alpha_raw"], t["alpha_farms"]]) if len(t) else [])
    shapes, notes = _band_shapes("y", hi)
    xaxis = dict(title=dict(text="aspect ratio (long side / short side, log scale)"), showline=True, type="log")
    fin = ar[np.isfinite(ar) & (ar > 0)]
    if fin.size:
        span = (math.log10(fin.min()), math.log10(fin.max()))
        pad = max(0.08, 0.06 * (span[1] - span[0]))
        xaxis["range"] = [span[0] - pad, span[1] + pad]
    return make_figure(traces, base_layout(title, height=460, shapes=shapes, annotations=notes, xaxis=xaxis,
                                   yaxis=dict(range=[lo, hi], title=dict(text="α"), zeroline=False)))


