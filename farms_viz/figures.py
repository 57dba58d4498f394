"""Every Plotly figure the app shows: pure functions, report or arrays in, ``go.Figure`` out.

No Streamlit here, so each figure is unit-tested and usable from a notebook. Raw is always
orange (:data:`RAW_COLOR`), FARMS always blue (:data:`FARMS_COLOR`).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from .diagnosis import BANDS
from .fits import nonzero_eigs
from .mp import mp_density

RAW_COLOR = "#D9822B"
FARMS_COLOR = "#2E6FBA"
COLORS = {"raw": RAW_COLOR, "farms": FARMS_COLOR}
NAMES = {"raw": "raw", "farms": "FARMS"}
_AXIS = dict(gridcolor="#EBF0F8", linecolor="#CBD2D9", zerolinecolor="#EBF0F8", zerolinewidth=2, ticks="",
             automargin=True, title=dict(standoff=12))
#: plotly_white's look, trimmed to what these figures use (the full template costs ~8 ms per figure)
TEMPLATE = go.layout.Template(layout=dict(
    paper_bgcolor="white", plot_bgcolor="white", colorway=[RAW_COLOR, FARMS_COLOR, "#323F4B", "#C2362F"],
    hovermode="closest", hoverlabel=dict(align="left"), xaxis=_AXIS, yaxis=_AXIS,
))
FONT = dict(family="Inter, 'Source Sans Pro', 'DejaVu Sans', Arial, sans-serif", size=13, color="#1F2933")
MAX_CCDF_POINTS = 800


def _layout(title: str, height: int, legend_top: bool = True, **extra) -> dict:
    """The common layout: template, fonts, title top-left, legend in one row above the plot."""
    lay = dict(
        template=TEMPLATE, font=FONT, height=height,
        title=dict(text=title, x=0, xanchor="left", font=dict(size=15)),
        margin=dict(l=10, r=10, t=80 if legend_top else 50, b=10), hoverlabel=dict(font_size=12),
    )
    if legend_top:  # one row just under the title, above the plot
        lay["title"].update(y=1, yref="container", yanchor="top", pad=dict(t=10))
        lay["legend"] = dict(orientation="h", yanchor="bottom", y=1.01, xanchor="left", x=0,
                             bgcolor="rgba(255,255,255,0.6)", font=dict(size=12))
    else:  # below the x-axis title (multi-row legends never cover the title or the data)
        lay["legend"] = dict(orientation="h", yanchor="top", y=-0.2, xanchor="left", x=0, font=dict(size=12))
    lay.update(extra)
    return lay


def _figure(traces: list, layout: dict) -> go.Figure:
    """One constructor call (plotly's update_* calls cost ~ms each; layer switching must stay fast)."""
    return go.Figure(data=traces, layout=layout)


def _finite(a) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    return a[np.isfinite(a)]


def _alpha_range(alphas) -> tuple[float, float]:
    a = _finite(alphas)
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
                              showarrow=False, font=dict(size=11, color="#52606D")))
        else:
            shapes.append(dict(type="rect", xref="paper", yref="y", x0=0, x1=1, y0=lo, y1=up, fillcolor=color,
                               opacity=0.55, line_width=0, layer="below", name=name))
            notes.append(dict(xref="paper", yref="y", x=1, y=(lo + up) / 2, xanchor="right", yanchor="middle",
                              text=texts[name], showarrow=False, font=dict(size=11, color="#52606D")))
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
    return _figure(traces, _layout(
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
    return _figure(traces, _layout(title, height=460, shapes=shapes, annotations=notes, xaxis=xaxis,
                                   yaxis=dict(range=[lo, hi], title=dict(text="α"), zeroline=False)))


def histogram_density(eigs, bins: int = 60, log_x: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``(edges, density)`` of the nonzero eigenvalues, normalised to integrate to 1.

    Linear: density per unit of lambda. Log-x: equal bins in log10(lambda), density per decade.
    """
    e = nonzero_eigs(eigs)
    if e.size == 0:
        return np.array([0.0, 1.0]), np.array([0.0])
    lo, hi = float(e[0]), float(e[-1])
    if hi <= lo:
        lo, hi = lo * 0.9, hi * 1.1 if hi > 0 else 1.0
    if log_x:
        edges_log = np.linspace(math.log10(lo), math.log10(hi), bins + 1)
        counts, _ = np.histogram(np.log10(e), bins=edges_log)
        density = counts / (e.size * np.diff(edges_log))
        return 10 ** edges_log, density
    counts, edges = np.histogram(e, bins=bins, range=(lo, hi))
    return edges, counts / (e.size * np.diff(edges))


def mp_curve(mp, log_x: bool, weight: float = 1.0, n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """The Marchenko-Pastur density on its support, times ``weight``; per decade when ``log_x``."""
    lo, hi = mp.lambda_minus, mp.lambda_plus
    if not (np.isfinite(hi) and hi > 0):
        return np.array([]), np.array([])
    lo = max(lo, hi * 1e-4) if log_x else max(lo, 0.0)
    x = np.geomspace(lo, hi, n) if log_x else np.linspace(lo, hi, n)
    y = mp_density(x, mp.Q, mp.scale) * weight
    if log_x:
        y = y * x * math.log(10)
    return x, y


def esd_histogram(eigs, mp, which: str = "raw", log_x: bool = True, bins: int | None = None,
                  title: str | None = None) -> go.Figure:
    """The ESD as a normalised histogram with the Marchenko-Pastur density, bulk edge and spikes.

    The MP curve is scaled by the bulk's share of the eigenvalues (1 - spikes / N), so it sits
    on the bulk of the histogram; spikes are the eigenvalues above lambda+ (plus a Tracy-Widom margin).
    """
    color, name = COLORS[which], NAMES[which]
    e = nonzero_eigs(eigs)
    if bins is None:  # about 2 sqrt(N) bins, 10..60: a 64-eigenvalue ESD is not a comb of single counts
        bins = int(np.clip(2 * math.sqrt(max(e.size, 1)), 10, 60))
    edges, dens = histogram_density(e, bins, log_x)
    traces = [go.Scatter(
        x=edges, y=np.append(dens, dens[-1]), mode="lines", line=dict(shape="hv", color=color, width=1.2),
        fill="tozeroy", fillcolor=_rgba(color, 0.35), name=f"ESD {name} ({e.size} eigenvalues)",
        hovertemplate="λ ≥ %{x:.3g}<br>density %{y:.3g}<extra></extra>",
    )]
    ymax = float(dens.max()) if dens.size else 1.0
    n_spikes = int(getattr(mp, "n_spikes", 0) or 0)
    weight = 1.0 - n_spikes / e.size if e.size else 1.0
    x, y = mp_curve(mp, log_x, weight)
    if x.size:
        traces.append(go.Scatter(
            x=x, y=y, mode="lines", line=dict(color="#323F4B", width=2),
            name=f"Marchenko–Pastur (Q = {mp.Q:.3g}, σ = {mp.sigma:.3g})",
            hovertemplate="MP density %{y:.3g} at λ = %{x:.3g}<extra></extra>",
        ))
        ymax = max(ymax, float(np.nanmax(y)) if y.size else 0.0)
    lp = mp.lambda_plus
    if np.isfinite(lp) and lp > 0:
        traces.append(go.Scatter(
            x=[lp, lp], y=[0, ymax * 1.08], mode="lines", line=dict(color="#323F4B", dash="dot", width=1.5),
            name=f"bulk edge λ+ = {lp:.3g}", hoverinfo="skip",
        ))
    if n_spikes > 0 and e.size:
        spikes = e[-n_spikes:]
        if spikes.size > 400:
            spikes = spikes[np.linspace(0, spikes.size - 1, 400).astype(int)]
        traces.append(go.Scatter(
            x=spikes, y=np.full(spikes.size, -0.035 * ymax), mode="markers",
            marker=dict(symbol="line-ns-open", size=10, color="#C2362F", line=dict(width=1.5)),
            name=f"spikes above λ+ ({n_spikes})", hovertemplate="spike λ = %{x:.4g}<extra></extra>",
        ))
    return _figure(traces, _layout(
        title or f"ESD {name}", height=470, legend_top=False,
        xaxis=dict(type="log" if log_x else "linear", showline=True,
                   title=dict(text="eigenvalue λ of WᵀW" + (" (log scale)" if log_x else ""))),
        yaxis=dict(title=dict(text="density per decade of λ" if log_x else "density (per unit λ)"),
                   range=[-0.08 * ymax, ymax * 1.12], zeroline=False),
    ))


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def ccdf_points(eigs, max_points: int = MAX_CCDF_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """Empirical CCDF P(Lambda >= lambda) at (at most ``max_points``) sorted nonzero eigenvalues.

    Thinned evenly in rank for the bulk and log-evenly near the top, so the tail keeps its shape.
    """
    e = nonzero_eigs(eigs)
    n = e.size
    if n == 0:
        return e, e
    ccdf = (n - np.arange(n)) / n
    if n > max_points:
        half = max_points // 2
        top = n - np.unique(np.geomspace(1, n, half).astype(int))
        idx = np.unique(np.concatenate([np.linspace(0, n - 1, max_points - half).astype(int), top]))
        idx = idx[(idx >= 0) & (idx < n)]
        idx = np.union1d(idx, [0, n - 1])[:max_points]
        e, ccdf = e[idx], ccdf[idx]
    return e, ccdf


def tail_ccdf(eigs, fit, which: str = "raw", title: str | None = None) -> go.Figure:
    """Empirical CCDF of the ESD on log-log with the fitted power law from xmin.

    For p(l) ~ l^-alpha above xmin the CCDF is (n_tail / N) (l / xmin)^(1 - alpha): a line of
    slope 1 - alpha on log-log axes, anchored at the empirical CCDF at xmin.
    """
    color, name = COLORS[which], NAMES[which]
    x, y = ccdf_points(eigs)
    traces = [go.Scatter(
        x=x, y=y, mode="markers", marker=dict(color=color, size=4, opacity=0.7),
        name=f"empirical CCDF {name}", hovertemplate="P(Λ ≥ %{x:.3g}) = %{y:.3g}<extra></extra>",
    )]
    notes = []
    ok = fit is not None and np.isfinite(fit.alpha) and np.isfinite(fit.xmin) and fit.n_eigs > 0 and x.size
    if ok:
        xs = np.geomspace(fit.xmin, float(x[-1]), 60)
        frac = fit.n_tail / fit.n_eigs
        traces.append(go.Scatter(
            x=xs, y=frac * (xs / fit.xmin) ** (1 - fit.alpha), mode="lines",
            line=dict(color="#323F4B", width=2.5), name=f"power law α = {fit.alpha:.2f}, D = {fit.D:.3f}",
            hovertemplate="fit P(Λ ≥ %{x:.3g}) = %{y:.3g}<extra></extra>",
        ))
        traces.append(go.Scatter(
            x=[fit.xmin, fit.xmin], y=[float(y.min()), 1.0], mode="lines",
            line=dict(color="#323F4B", dash="dot", width=1.5), name=f"xmin = {fit.xmin:.3g}", hoverinfo="skip",
        ))
    elif fit is not None:
        notes.append(dict(text=f"no power-law fit: {fit.status}", xref="paper", yref="paper", x=0.5, y=0.5,
                          showarrow=False, font=dict(color="#C2362F")))
    return _figure(traces, _layout(
        title or f"Power-law tail {name}", height=440, legend_top=False, annotations=notes,
        xaxis=dict(type="log", title=dict(text="eigenvalue λ (log scale)"), showline=True),
        yaxis=dict(type="log", dtick=1, title=dict(text="P(Λ ≥ λ) (log scale)")),
    ))


def _pool_to(a: np.ndarray, side: int) -> np.ndarray:
    """Block-average a 2-D array down to at most ``side`` per dimension."""
    fh, fw = -(-a.shape[0] // side), -(-a.shape[1] // side)
    if fh == 1 and fw == 1:
        return a
    h, w = a.shape[0] // fh * fh, a.shape[1] // fw * fw
    return a[:h, :w].reshape(h // fh, fh, w // fw, fw).mean(axis=(1, 3))


def window_grid(thumb: np.ndarray | None, grid, title: str | None = None, max_rects: int = 600) -> go.Figure:
    """The |W| heatmap (block means) with the FARMS windows drawn as rectangles, in matrix coordinates."""
    rows, cols = grid.rows, grid.cols
    traces = []
    if thumb is not None and thumb.size:
        thumb = _pool_to(np.asarray(thumb, dtype=np.float32), 96)  # plenty for a picture; a lighter redraw
        th, tw = thumb.shape
        traces.append(go.Heatmap(
            z=np.asarray(thumb, dtype=np.float32), x=(np.arange(tw) + 0.5) * cols / tw,
            y=(np.arange(th) + 0.5) * rows / th, colorscale="Greys", name="|W|",
            colorbar=dict(title=dict(text="|W|", side="right"), thickness=12, len=0.8),
            hovertemplate="row ≈ %{y:.0f}, col ≈ %{x:.0f}<br>mean |W| = %{z:.3g}<extra></extra>",
        ))
    # all window outlines as one trace (None-separated), far cheaper to draw than one shape each
    xs, ys = [], []
    for r0 in grid.row_starts:
        for c0 in grid.col_starts:
            if len(xs) >= 6 * max_rects:
                break
            xs += [c0, c0 + grid.w, c0 + grid.w, c0, c0, None]
            ys += [r0, r0, r0 + grid.h, r0 + grid.h, r0, None]
    traces.append(go.Scatter(x=xs, y=ys, mode="lines", line=dict(color=FARMS_COLOR, width=1.5),
                             fill="toself", fillcolor=_rgba(FARMS_COLOR, 0.05), hoverinfo="skip",
                             name=f"FARMS window {grid.h} × {grid.w} ({grid.n_windows})"))
    shapes = []
    tall = rows / max(cols, 1)
    height = int(min(560, max(340, 280 * min(tall, 2.0))))
    return _figure(traces, _layout(
        title or f"FARMS window grid on |W| ({rows} × {cols})", height=height, shapes=shapes,
        xaxis=dict(range=[0, cols], title=dict(text="column (input dimension)"), constrain="domain",
                   showgrid=False, zeroline=False),
        yaxis=dict(range=[rows, 0], title=dict(text="row (output dimension)"), scaleanchor="x", scaleratio=1,
                   constrain="domain", showgrid=False, zeroline=False),
    ))
