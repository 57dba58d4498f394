"""The model overview's figures: alpha per layer with the bands, alpha vs aspect ratio.

Pure functions: a report table in, a ``go.Figure`` out.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from farms_viz.analyses.blocks import block_ids, matrix_role
from farms_viz.analyses.diagnosis import BANDS
from farms_viz.analyses.trend import TrendPair, trend_pair
from farms_viz.figures.style import COLORS, INK, MUTED, NAMES, WIDE_PX, base_layout, finite, make_figure, rgba


def _alpha_range(alphas) -> tuple[float, float]:
    a = finite(alphas)
    hi = max(7.5, float(a.max()) * 1.06) if a.size else 7.5
    return 0.0, hi


def metric_label(metric: str) -> str:
    """How axes, legends and hovers name ``metric``: α for alpha, WeightWatcher's name otherwise."""
    return "α" if metric == "alpha" else metric


def _range(t: pd.DataFrame, metric: str) -> tuple[float, float] | None:
    """The value axis: from 0 with room for the bands for alpha; the data's span, padded, otherwise
    (None: no finite value, the axis ranges itself)."""
    v = np.concatenate([t[f"{metric}_raw"].astype(float), t[f"{metric}_farms"].astype(float)]) if len(t) else []
    if metric == "alpha":
        return _alpha_range(v)
    a = finite(v)
    if not a.size:
        return None
    lo, hi = min(0.0, float(a.min())), max(0.0, float(a.max()))
    pad = 0.06 * (hi - lo) or 1.0
    return lo - (pad if lo < 0 else 0.0), hi + pad


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


def _rough(table: pd.DataFrame, rough: pd.DataFrame | None, which: str) -> np.ndarray:
    """Per row, why this side's fit is rough ('' when it is not); see diagnosis.rough_fits."""
    if rough is None or f"rough_{which}" not in rough:
        return np.array([""] * len(table), dtype=object)
    return rough[f"rough_{which}"].astype(str).to_numpy()


def _hover_data(table: pd.DataFrame, rough: pd.DataFrame | None = None, metric: str = "alpha") -> np.ndarray:
    shape = [f"{int(r)} × {int(c)}" if np.isfinite(r) and np.isfinite(c) else "?"
             for r, c in zip(table["rows"].astype(float), table["cols"].astype(float))]
    notes = [("<br>⚠ rough fit: " + "; ".join(f"{w} {n}" for w, n in (("raw", a), ("FARMS", b)) if n)) if a or b else ""
             for a, b in zip(_rough(table, rough, "raw"), _rough(table, rough, "farms"))]
    return np.stack([table["layer"].astype(str).to_numpy(), np.array(shape, dtype=object),
                     table["aspect_ratio"].astype(float).to_numpy(),
                     table[f"{metric}_raw"].astype(float).to_numpy(),
                     table[f"{metric}_farms"].astype(float).to_numpy(), np.array(notes, dtype=object)], axis=1)


def _hover(metric: str = "alpha") -> str:
    m, f = metric_label(metric), ":.2f" if metric == "alpha" else ":.4g"
    return ("<b>%{customdata[0]}</b><br>shape %{customdata[1]}, aspect ratio %{customdata[2]:.2f}"
            f"<br>{m} raw %{{customdata[3]{f}}} · {m} FARMS %{{customdata[4]{f}}}%{{customdata[5]}}"
            "<extra>%{fullData.name}</extra>")




def alpha_bars(table: pd.DataFrame, title: str | None = None,
               rough: pd.DataFrame | None = None, metric: str = "alpha") -> go.Figure:
    """Grouped horizontal bars of alpha raw and FARMS per layer, in model order (top to bottom).

    Horizontal bars keep every layer name readable, however many layers (height grows with
    the count); the alpha bands are shaded and labelled. ``customdata[0]`` is the layer name.
    Bars of rough fits (``rough``: diagnosis.rough_fits of the same rows) are hatched.
    ``metric``: any ``<metric>_raw`` / ``<metric>_farms`` pair of the table (WeightWatcher's
    log_norm, entropy ...) in place of alpha; the bands are alpha's only.
    """
    t = table.reset_index(drop=True)
    n = len(t)
    m = metric_label(metric)
    title = title or ("Power-law exponent α per layer" if metric == "alpha" else f"{metric} per layer")
    cd = _hover_data(t, rough, metric) if n else np.empty((0, 6))
    y = t["layer"].astype(str).tolist()
    traces = [go.Bar(x=t[col].astype(float).to_numpy(), y=y, orientation="h", name=f"{m} {NAMES[which]}",
                     marker=dict(color=COLORS[which], line=dict(width=0),
                                 pattern=dict(shape=["/" if r else "" for r in _rough(t, rough, which)],
                                              fgcolor="white", size=6)),
                     customdata=cd, hovertemplate=_hover(metric), meta=f"{metric}_{which}")
              for which, col in (("raw", f"{metric}_raw"), ("farms", f"{metric}_farms"))]
    span = _range(t, metric)
    shapes, notes = _band_shapes("x", span[1]) if metric == "alpha" else ([], [])
    row_px = 24 if n <= 40 else (18 if n <= 120 else 13)
    tick_size = 12 if n <= 40 else (11 if n <= 120 else 9)
    return make_figure(traces, base_layout(
        title, height=max(320, 140 + row_px * n), barmode="group", bargap=0.25, bargroupgap=0.05,
        shapes=shapes, annotations=notes, width=WIDE_PX,
        yaxis=dict(autorange="reversed", type="category", tickfont=dict(size=tick_size), showgrid=False),
        xaxis=dict(range=span, title=dict(text="α (power-law exponent of the ESD tail)" if metric == "alpha"
                                          else f"{metric} (WeightWatcher)"), zeroline=metric != "alpha",
                   showline=True),
    ), width=WIDE_PX)


def _trend_line(ar: np.ndarray, a: np.ndarray) -> tuple[float, float] | None:
    """Intercept and slope of alpha = a + b log10(aspect ratio) (the slope analyses.trend reports)."""
    ok = np.isfinite(ar) & np.isfinite(a) & (ar > 0)
    if ok.sum() < 2 or np.ptp(np.log10(ar[ok])) < 1e-9:
        return None
    b, a0 = np.polyfit(np.log10(ar[ok]), a[ok], 1)
    return float(a0), float(b)


def alpha_vs_aspect(table: pd.DataFrame, title: str | None = None,
                    rough: pd.DataFrame | None = None, trend: TrendPair | None = None,
                    metric: str = "alpha") -> go.Figure:
    """Scatter of alpha against the matrix aspect ratio, raw and FARMS, with a least-squares trend each.

    The trend is alpha = a + b log10(aspect ratio) over the layers with both alphas (the legend
    gives b and its bootstrap interval, analyses.trend). Rough fits are hollow markers. The layer
    name is in ``customdata[0]``. ``metric``: another ``<metric>_raw`` / ``_farms`` pair in place of
    alpha (its trend from analyses.trend too; the bands are alpha's only).
    """
    t = table.reset_index(drop=True)
    m, raw_col, farms_col = metric_label(metric), f"{metric}_raw", f"{metric}_farms"
    title = title or f"{m} vs aspect ratio, raw and FARMS"
    cd = _hover_data(t, rough, metric) if len(t) else np.empty((0, 6))
    both = np.isfinite(t[raw_col].astype(float)) & np.isfinite(t[farms_col].astype(float))
    trend = trend if trend is not None else trend_pair(t, raw_col, farms_col)
    ar = t["aspect_ratio"].astype(float).to_numpy()
    traces = []
    symbols = {"raw": "circle", "farms": "diamond"}
    # raw a little left, FARMS a little right of each aspect ratio, joined per layer, so the
    # pairs do not hide each other and each layer's shift is visible
    offset = {"raw": 0.965, "farms": 1.035}
    if len(t):
        xs_pair, ys_pair = [], []
        for x, a0, a1 in zip(ar, t[raw_col].astype(float), t[farms_col].astype(float)):
            if np.isfinite([x, a0, a1]).all() and a0 != a1:
                xs_pair += [x * offset["raw"], x * offset["farms"], None]
                ys_pair += [a0, a1, None]
        traces.append(go.Scatter(x=xs_pair, y=ys_pair, mode="lines", hoverinfo="skip", showlegend=False,
                                 line=dict(color="rgba(82,96,109,0.35)", width=1)))
    for which, col in (("raw", raw_col), ("farms", farms_col)):
        a = t[col].astype(float).to_numpy()
        hollow = _rough(t, rough, which) != ""
        traces.append(go.Scatter(
            x=ar * offset[which], y=a, mode="markers", name=f"{m} {NAMES[which]}", customdata=cd,
            hovertemplate=_hover(metric), meta=col,
            marker=dict(color=COLORS[which], symbol=[symbols[which] + ("-open" if h else "") for h in hollow],
                        size=9, opacity=0.8, line=dict(width=np.where(hollow, 2, 1).tolist(),
                                                       color=[COLORS[which] if h else "white" for h in hollow])),
        ))
        tr = _trend_line(ar[both], a[both])
        slope = getattr(trend, which)
        if tr is not None and slope.defined:
            xs = np.geomspace(np.nanmin(ar[ar > 0]), np.nanmax(ar), 30)
            ci = f" (95% CI {slope.low:+.2f} to {slope.high:+.2f})" if np.isfinite(slope.low) else ""
            traces.append(go.Scatter(
                x=xs, y=tr[0] + tr[1] * np.log10(xs), mode="lines", hoverinfo="skip",
                name=f"{NAMES[which]} trend {slope.value:+.2f} per 10×{ci}",  # the interval wraps as one line
                line=dict(color=COLORS[which], dash="dash", width=2),
            ))
    vspan = _range(t, metric)  # (span below is the x axis's)
    shapes, notes = _band_shapes("y", vspan[1]) if metric == "alpha" else ([], [])
    xaxis = dict(title=dict(text="aspect ratio (log scale)"), showline=True, type="log")  # long / short side: in the hover
    fin = ar[np.isfinite(ar) & (ar > 0)]
    if fin.size:
        span = (math.log10(fin.min()), math.log10(fin.max()))
        pad = max(0.08, 0.06 * (span[1] - span[0]))
        xaxis["range"] = [span[0] - pad, span[1] + pad]
    return make_figure(traces, base_layout(title, height=480, shapes=shapes, annotations=notes, xaxis=xaxis,
                                           legend_top=False, margin=dict(l=10, r=10, t=50, b=10),
                                           yaxis=dict(range=vspan, title=dict(text=m), zeroline=False)))




#: at most this many roles get a panel in the by-block view (LLaMA has 7: q k v o gate up down)
MAX_ROLES = 12


def block_layout(table: pd.DataFrame) -> tuple[list, list] | None:
    """``(block numbers, roles)`` of a model whose layers sit in numbered blocks with repeating roles
    (LLaMA's 32 blocks of q k v o gate up down), or None (then the per-layer bars suit it)."""
    blocks = block_ids(table["layer"])
    if sum(b is not None for b in blocks) < 0.8 * len(table):
        return None
    roles = [matrix_role(n) for n, b in zip(table["layer"], blocks) if b is not None]
    uniq = list(dict.fromkeys(roles))
    ids = sorted({int(b) for b in blocks if b is not None})
    if len(ids) < 4 or len(uniq) > MAX_ROLES:
        return None
    return ids, uniq


def alpha_by_block(table: pd.DataFrame, title: str | None = None, metric: str = "alpha") -> go.Figure:
    """Small multiples for long models: one panel per matrix role (q_proj, up_proj, ...), block
    number on x, alpha (or ``metric``) raw and FARMS as lines. ``customdata[0]`` is the layer name.
    Raises ValueError for a table without numbered blocks (see :func:`block_layout`)."""
    lay = block_layout(table)
    if lay is None:
        raise ValueError("the layers are not in numbered blocks with repeating roles")
    ids, roles = lay
    m = metric_label(metric)
    title = title or f"{m} by block, one panel per matrix role"
    t = table.reset_index(drop=True).copy()
    t["block"] = [int(b) if b is not None else -1 for b in block_ids(t["layer"])]
    t["role"] = [matrix_role(n) for n in t["layer"]]
    cols = min(4, len(roles))
    nrows = math.ceil(len(roles) / cols)
    fig = make_subplots(rows=nrows, cols=cols, shared_xaxes=True, shared_yaxes=True, subplot_titles=roles,
                        horizontal_spacing=0.03, vertical_spacing=0.12 if nrows > 1 else 0.0)
    span = _range(t, metric)
    for k, role in enumerate(roles):
        sub = t[t["role"] == role].sort_values("block")
        cd = _hover_data(sub, None, metric)
        for which in ("raw", "farms"):
            fig.add_trace(go.Scatter(
                x=sub["block"], y=sub[f"{metric}_{which}"].astype(float), mode="lines+markers",
                name=f"{m} {NAMES[which]}", legendgroup=which, showlegend=k == 0, customdata=cd,
                hovertemplate=_hover(metric), meta=f"{metric}_{which}", line=dict(color=COLORS[which], width=1.5),
                marker=dict(size=4, color=COLORS[which])), row=k // cols + 1, col=k % cols + 1)
    for edge in (2.0, 6.0) if metric == "alpha" else ():
        if edge < span[1]:
            fig.add_hline(y=edge, line=dict(color=MUTED, width=1, dash="dot"))
    height = 150 + 230 * nrows
    lay = base_layout(title, height=height, width=WIDE_PX)
    lay["margin"] = dict(l=10, r=10, t=110, b=40)
    lay["legend"].update(y=1 + 48 / (height - 150), yanchor="bottom")  # above the panels' titles
    fig.update_layout(**lay)
    if span is not None:
        fig.update_yaxes(range=list(span))
    fig.update_xaxes(title_text="block", row=nrows)
    fig.update_yaxes(title_text=m, col=1)
    return fig


def rule_trends(pairs: dict[str, TrendPair], title: str = "Aspect-ratio trend under each fit rule") -> go.Figure:
    """Per fit rule, the raw and FARMS slopes (alpha per 10x aspect ratio) with their 95 % bootstrap
    intervals as error bars; 0 (no trend) is drawn as a line."""
    rules = list(pairs)
    traces = []
    for which, dx in (("raw", -0.12), ("farms", 0.12)):
        s = [getattr(pairs[r], which) for r in rules]
        v = np.array([x.value for x in s])
        traces.append(go.Scatter(
            x=np.arange(len(rules)) + dx, y=v, mode="markers", name=f"{NAMES[which]} slope",
            marker=dict(color=COLORS[which], size=11, symbol="circle" if which == "raw" else "diamond"),
            error_y=dict(type="data", symmetric=False, array=np.array([x.high for x in s]) - v,
                         arrayminus=v - np.array([x.low for x in s]), color=rgba(COLORS[which], 0.7), thickness=2),
            customdata=np.array([[r, x.text()] for r, x in zip(rules, s)], dtype=object),
            hovertemplate="%{customdata[0]}: %{customdata[1]} per 10×<extra>" + NAMES[which] + "</extra>"))
    return make_figure(traces, base_layout(
        title, height=330, shapes=[dict(type="line", xref="paper", x0=0, x1=1, y0=0, y1=0,
                                         line=dict(color=INK, width=1, dash="dot"))],
        xaxis=dict(tickmode="array", tickvals=list(range(len(rules))), ticktext=rules, range=[-0.6, len(rules) - 0.4],
                   showgrid=False),
        yaxis=dict(title=dict(text="Δα per 10× aspect ratio"), zeroline=False)))
