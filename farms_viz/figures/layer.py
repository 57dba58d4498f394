"""The layer browser's figures: ESD histogram with its MP fit, power-law tail, FARMS windows on |W|.

Pure functions: arrays and fits in, a ``go.Figure`` out.
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go

from farms_viz.core.fits import nonzero_eigs
from farms_viz.figures.style import (
    COLORS,
    DISPLAY_SIDE,
    FARMS_COLOR,
    INK,
    NAMES,
    base_layout,
    ccdf_points,
    histogram_density,
    make_figure,
    mp_curve,
    rgba,
)


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
        fill="tozeroy", fillcolor=rgba(color, 0.35), name=f"ESD {name} ({e.size} eigenvalues)",
        hovertemplate="λ ≥ %{x:.3g}<br>density %{y:.3g}<extra></extra>",
    )]
    ymax = float(dens.max()) if dens.size else 1.0
    n_spikes = int(getattr(mp, "n_spikes", 0) or 0)
    weight = 1.0 - n_spikes / e.size if e.size else 1.0
    x, y = mp_curve(mp, log_x, weight)
    if x.size:
        traces.append(go.Scatter(
            x=x, y=y, mode="lines", line=dict(color=INK, width=2),
            name=f"Marchenko–Pastur (Q = {mp.Q:.3g}, σ = {mp.sigma:.3g})",
            hovertemplate="MP density %{y:.3g} at λ = %{x:.3g}<extra></extra>",
        ))
        ymax = max(ymax, float(np.nanmax(y)) if y.size else 0.0)
    lp = mp.lambda_plus
    if np.isfinite(lp) and lp > 0:
        traces.append(go.Scatter(
            x=[lp, lp], y=[0, ymax * 1.08], mode="lines", line=dict(color=INK, dash="dot", width=1.5),
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
    return make_figure(traces, base_layout(
        title or f"ESD {name}", height=470, legend_top=False,
        xaxis=dict(type="log" if log_x else "linear", showline=True,
                   title=dict(text="eigenvalue λ of WᵀW" + (" (log scale)" if log_x else ""))),
        yaxis=dict(title=dict(text="density per decade of λ" if log_x else "density (per unit λ)"),
                   range=[-0.08 * ymax, ymax * 1.12], zeroline=False),
    ))


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
            line=dict(color=INK, width=2.5), name=f"power law α = {fit.alpha:.2f}, D = {fit.D:.3f}",
            hovertemplate="fit P(Λ ≥ %{x:.3g}) = %{y:.3g}<extra></extra>",
        ))
        traces.append(go.Scatter(
            x=[fit.xmin, fit.xmin], y=[float(y.min()), 1.0], mode="lines",
            line=dict(color=INK, dash="dot", width=1.5), name=f"xmin = {fit.xmin:.3g}", hoverinfo="skip",
        ))
    elif fit is not None:
        notes.append(dict(text=f"no power-law fit: {fit.status}", xref="paper", yref="paper", x=0.5, y=0.5,
                          showarrow=False, font=dict(color="#C2362F")))
    return make_figure(traces, base_layout(
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


def window_grid_figure(thumb: np.ndarray | None, grid, title: str | None = None, max_rects: int = 600) -> go.Figure:
    """The |W| heatmap (block means) with the FARMS windows drawn as rectangles, in matrix coordinates."""
    rows, cols = grid.rows, grid.cols
    traces = []
    if thumb is not None and thumb.size:
        thumb = _pool_to(np.asarray(thumb, dtype=np.float32), DISPLAY_SIDE)  # plenty for a picture; a lighter redraw
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
                             fill="toself", fillcolor=rgba(FARMS_COLOR, 0.05), hoverinfo="skip",
                             name=f"FARMS window {grid.h} × {grid.w} ({grid.n_windows})"))
    shapes = []
    tall = rows / max(cols, 1)
    height = int(min(560, max(340, 280 * min(tall, 2.0))))
    return make_figure(traces, base_layout(
        title or f"FARMS window grid on |W| ({rows} × {cols})", height=height, shapes=shapes,
        xaxis=dict(range=[0, cols], title=dict(text="column (input dimension)"), constrain="domain",
                   showgrid=False, zeroline=False),
        yaxis=dict(range=[rows, 0], title=dict(text="row (output dimension)"), scaleanchor="x", scaleratio=1,
                   constrain="domain", showgrid=False, zeroline=False),
    ))
