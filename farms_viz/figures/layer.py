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

#: the randomized ESD's colour (an outline over the ESD) and the traps' marker colour
RAND_COLOR, TRAP_COLOR = "#E08A00", "#7B1FA2"


def _rand_traces(rand, bins: int, log_x: bool, ymax: float) -> tuple[list, float]:
    """The randomized ESD as an outline, its MP bulk edge, the trap threshold and the traps."""
    r = nonzero_eigs(rand.esd)
    if not r.size:
        return [], ymax
    edges, dens = histogram_density(r, bins, log_x)
    top = max(ymax, float(dens.max()) if dens.size else 0.0)
    out = [go.Scatter(
        x=edges, y=np.append(dens, dens[-1]), mode="lines", line=dict(shape="hv", color=RAND_COLOR, width=1.6),
        name=f"randomized ESD ({r.size} eigenvalues)", meta="randomized ESD",
        hovertemplate="randomized: λ ≥ %{x:.3g}<br>density %{y:.3g}<extra></extra>")]
    for x, name, dash, meta in ((rand.bulk_max, "randomized bulk edge", "dash", "randomized bulk edge"),
                                (rand.spike_edge, "trap threshold", "dashdot", "trap threshold")):
        if np.isfinite(x) and x > 0:
            out.append(go.Scatter(x=[x, x], y=[0, top * 1.08], mode="lines", meta=meta, hoverinfo="skip",
                                  line=dict(color=RAND_COLOR if meta != "trap threshold" else TRAP_COLOR,
                                            dash=dash, width=1.5), name=f"{name} {x:.3g}"))
    traps = r[r > rand.spike_edge] if np.isfinite(rand.spike_edge) else r[:0]
    if traps.size:
        out.append(go.Scatter(
            x=traps, y=np.full(traps.size, 0.5 * top), mode="markers", meta="traps",
            marker=dict(symbol="x", size=11, color=TRAP_COLOR, line=dict(width=1)),
            name=f"correlation traps ({traps.size})", hovertemplate="trap λ = %{x:.4g}<extra></extra>"))
    return out, top


def esd_histogram(eigs, mp, which: str = "raw", log_x: bool = True, bins: int | None = None,
                  title: str | None = None, rand=None) -> go.Figure:
    """The ESD as a normalised histogram with the Marchenko-Pastur density, bulk edge and spikes.

    The MP curve is scaled by the bulk's share of the eigenvalues (1 - spikes / N), so it sits
    on the bulk of the histogram; spikes are the eigenvalues above lambda+ (plus a Tracy-Widom margin).
    ``rand`` (a pipeline.metrics.RandSide): the element-wise shuffled matrix's ESD drawn as an
    outline over it, with its MP bulk edge, the trap threshold (WW's bulk_max + Tracy-Widom margin)
    and its eigenvalues beyond that threshold (correlation traps) marked.
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
    if rand is not None:
        more, ymax = _rand_traces(rand, bins, log_x, ymax)
        traces += more
    return make_figure(traces, base_layout(
        title or f"ESD {name}", height=470, legend_top=False,
        xaxis=dict(type="log" if log_x else "linear", showline=True,
                   title=dict(text="eigenvalue λ of WᵀW")),
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


#: window outlines drawn in full, each in its own colour; the rest are one legend click away (15-25
#: overlapping outlines in one colour could not be told apart) and show as faint hover dots
MAX_OUTLINES = 9
WINDOW_COLORS = ("#2E6FBA", "#1B9E77", "#C2185B", "#7B3294", "#0097A7", "#8C564B", "#D62728", "#17365D",
                 "#7A8B00")
#: the picture keeps the matrix's shape up to this aspect ratio; longer matrices are drawn stretched
#: (a 144 x 9 slice at 1:1 was a 35 px sliver with colliding ticks) and the title says by how much
MAX_DRAWN_ASPECT = 4.0
#: the plot area the layout is sized for (a wide matrix's plot is PLOT_WIDTH_PX wide in a half-width
#: column at 1024 px, a tall one PLOT_HEIGHT_PX high); ticks are spaced for it
PLOT_WIDTH_PX, PLOT_HEIGHT_PX = 300, 420
NARROWEST_PX = 200
_MARGIN_PX = 150  # title, legend row, x ticks and axis title


def shown_windows(n_r: int, n_c: int, k: int = MAX_OUTLINES, max_r: int | None = None,
                  max_c: int | None = None) -> tuple[list[int], list[int]]:
    """Row and column indices of at most ``k`` windows of an ``n_r`` x ``n_c`` grid: an evenly spread
    sub-grid with both ends of each dimension, as square as the budget allows (15 x 15 -> 3 x 3,
    15 x 1 -> 9 x 1, 15 x 2 -> 4 x 2); at most ``max_r`` rows and ``max_c`` columns of windows."""
    n_r_all, n_c_all = n_r, n_c
    n_r, n_c = min(n_r, max_r or n_r), min(n_c, max_c or n_c)

    def score(kr: int, kc: int) -> tuple:  # both ends of each dimension first, then most windows, then square
        return kr >= min(n_r, 2) and kc >= min(n_c, 2), kr * kc, -abs(kr - kc)
    best = max(((kr, min(n_c, k // kr)) for kr in range(1, min(n_r, k) + 1)), key=lambda b: score(*b))

    return _spread(n_r_all, best[0]), _spread(n_c_all, best[1])


def _spread(n: int, m: int) -> list[int]:
    """``m`` of ``0..n-1`` evenly spread, both ends included."""
    return sorted({int(round(v)) for v in np.linspace(0, n - 1, m)})


def _not_crowded(starts: tuple[int, ...], size: int) -> int:
    """The most windows of ``size`` among ``starts`` that :func:`_spread` picks at least half a window
    apart (then no point is inside more than two outlines of one row or column of windows)."""
    for m in range(len(starts), 1, -1):
        if min(np.diff([starts[i] for i in _spread(len(starts), m)])) >= size / 2:
            return m
    return 1


def axis_ticks(n: int, px: float, min_gap_px: float) -> list[int]:
    """Whole-number ticks over ``0..n`` at a 1-2-5 step, at least ``min_gap_px`` apart on an axis of ``px``;
    ``n`` itself is added when it is at least half a step past the last one (so 0, 5, 9 for 9 columns)."""
    k = max(1, int(px // min_gap_px))
    raw = max(n / k, 1.0)
    mag = 10 ** math.floor(math.log10(raw))
    step = int(next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw - 1e-9))
    vals = list(range(0, n + 1, step))
    if n - vals[-1] >= step / 2 and (n - vals[-1]) / max(n, 1) * px >= min_gap_px:
        vals.append(n)
    return vals


def _plot_height(rows: int, cols: int) -> float:
    """The grid's plot height in px: PLOT_WIDTH_PX wide at the drawn aspect ratio, at most PLOT_HEIGHT_PX."""
    drawn = float(np.clip(rows / max(cols, 1), 1 / MAX_DRAWN_ASPECT, MAX_DRAWN_ASPECT))
    return min(PLOT_HEIGHT_PX, PLOT_WIDTH_PX * drawn)


def _times(f: float) -> str:
    return f"{f:.0f}×" if f >= 10 else f"{f:.2g}×"


def _outline(r0: int, c0: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    return np.array([c0, c0 + w, c0 + w, c0, c0]), np.array([r0, r0, r0 + h, r0 + h, r0])


def _trap_marks(positions) -> go.Scatter:
    """The trap entries on the |W| picture: a ring at each (row, col) (or (slice, row, col))."""
    p = np.asarray(positions, dtype=int).reshape(len(positions), -1)
    rc = p[:, -2:]
    sl = p[:, 0] if p.shape[1] == 3 else np.zeros(len(p), dtype=int)
    stacked = bool(sl.max() > 0) if len(p) else False  # a conv layer's entry in another kernel slice
    return go.Scatter(
        x=rc[:, 1] + 0.5, y=rc[:, 0] + 0.5, mode="markers", meta="trap entries", name=f"trap entries ({len(p)})",
        marker=dict(symbol="circle-open", size=16, color=TRAP_COLOR, line=dict(width=3)),
        customdata=np.stack([rc[:, 0], rc[:, 1], sl, np.arange(1, len(p) + 1)], axis=1),
        hovertemplate="trap entry %{customdata[3]}: row %{customdata[0]}, column %{customdata[1]}"
                      + (", slice %{customdata[2]}" if stacked else "") + "<extra></extra>")


def window_grid_figure(thumb: np.ndarray | None, grid, title: str | None = None, max_rects: int = 600,
                       blocks: bool = False, traps=None) -> go.Figure:
    """The |W| heatmap (block means) with the FARMS windows in matrix coordinates.

    At most :data:`MAX_OUTLINES` windows are outlined, each in its own colour; every window (up to
    ``max_rects``) has a dot at its centre whose hover gives its rows and columns; the outlines of
    all windows are one legend click away. ``blocks``: the release's disjoint conv blocks.
    ``traps``: positions of the entries behind the correlation traps (core.randomize.trap_entries),
    ringed.
    """
    rows, cols, h, w = grid.rows, grid.cols, grid.h, grid.w
    unit = "block" if blocks else "window"
    n_r, n_c = len(grid.row_starts), len(grid.col_starts)
    n = grid.n_windows
    traces = []
    if thumb is not None and thumb.size:
        thumb = _pool_to(np.asarray(thumb, dtype=np.float32), DISPLAY_SIDE)  # plenty for a picture; a lighter redraw
        th, tw = thumb.shape
        traces.append(go.Heatmap(
            z=np.asarray(thumb, dtype=np.float32), x=(np.arange(tw) + 0.5) * cols / tw,
            y=(np.arange(th) + 0.5) * rows / th, colorscale="Greys", name="|W|", meta="|W|",
            colorbar=dict(title=dict(text="|W|", side="right"), thickness=12, lenmode="pixels", y=1, yanchor="top",
                          len=int(max(80, 0.9 * _plot_height(rows, cols)))),  # beside the plot, not below it
            hovertemplate="row ≈ %{y:.0f}, col ≈ %{x:.0f}<br>mean |W| = %{z:.3g}<extra></extra>",
        ))

    def where(i: int, j: int) -> str:
        r0, c0 = grid.row_starts[i], grid.col_starts[j]
        return f"rows {r0}–{r0 + h - 1}, columns {c0}–{c0 + w - 1}"

    sel_r, sel_c = shown_windows(n_r, n_c, max_r=_not_crowded(grid.row_starts, h),
                                 max_c=_not_crowded(grid.col_starts, w))
    n_shown = len(sel_r) * len(sel_c)
    r0s, c0s = np.asarray(grid.row_starts, dtype=float), np.asarray(grid.col_starts, dtype=float)
    idx = np.arange(n)  # window k is (k // n_c, k % n_c), numbered from 1 in the hovers
    if n > max_rects:
        idx = np.unique(np.linspace(0, n - 1, max_rects).astype(int))
    top, left = r0s[idx // n_c], c0s[idx % n_c]
    if n > n_shown:  # the others' outlines on demand: one NaN-separated trace (far cheaper than shapes)
        nan = np.full_like(top, np.nan)
        xs = np.stack([left, left + w, left + w, left, left, nan], axis=1).ravel()
        ys = np.stack([top, top, top + h, top + h, top, nan], axis=1).ravel()
        traces.append(go.Scatter(x=xs.astype(np.float32), y=ys.astype(np.float32), mode="lines",  # exact below 2**24
                                 line=dict(color=FARMS_COLOR, width=1), opacity=0.6,
                                 visible="legendonly", hoverinfo="skip", name=f"all {n}",
                                 meta="all windows"))
    color_of = {}
    for t, (i, j) in enumerate((i, j) for i in sel_r for j in sel_c):
        color = color_of[i, j] = WINDOW_COLORS[t % len(WINDOW_COLORS)]
        x, y = _outline(grid.row_starts[i], grid.col_starts[j], h, w)
        label = f"{unit} {i * n_c + j + 1} of {n}: {where(i, j)}"
        traces.append(go.Scatter(
            x=x, y=y, mode="lines", line=dict(color=color, width=2), legendgroup="shown",
            showlegend=t == 0, text=label, hovertemplate="%{text}<extra></extra>",
            name=f"{n_shown} of {n} {unit}s" if n > n_shown else f"{n} {unit}s, {h} × {w}",
            meta={"window": i * n_c + j + 1, "rows": [grid.row_starts[i], grid.row_starts[i] + h - 1],
                  "cols": [grid.col_starts[j], grid.col_starts[j] + w - 1]},
        ))
    # a dot at every window's centre: its hover names the window (a picture of where the others are)
    traces.append(go.Scatter(
        x=(left + w / 2).astype(np.float32), y=(top + h / 2).astype(np.float32), mode="markers", showlegend=False, name=f"{unit} centres",
        meta="window centres", marker=dict(size=6, color=rgba(FARMS_COLOR, 0.55), line=dict(color="white", width=1)),
        customdata=np.stack([idx + 1, top, top + h - 1, left, left + w - 1], axis=1).astype(np.int32),
        hovertemplate=(f"{unit} %{{customdata[0]}} of {n}<br>rows %{{customdata[1]}}–%{{customdata[2]}}, "
                       "columns %{customdata[3]}–%{customdata[4]}<extra></extra>"),
    ))
    if traps is not None and len(traps):
        traces.append(_trap_marks(traps))

    # drawn aspect between 1:MAX_DRAWN_ASPECT and MAX_DRAWN_ASPECT:1; ticks spaced for the plot's size
    true_aspect = rows / max(cols, 1)
    drawn = float(np.clip(true_aspect, 1 / MAX_DRAWN_ASPECT, MAX_DRAWN_ASPECT))
    plot_h = _plot_height(rows, cols)
    plot_w = plot_h / drawn
    stretch = true_aspect / drawn  # > 1: rows drawn shorter than columns
    note = ""
    if stretch > 1.01:
        note = f", columns drawn {_times(stretch)} wider"
    elif stretch < 0.99:
        note = f", rows drawn {_times(1 / stretch)} taller"
    # x labels need their width (~8 px a digit) plus a gap; y labels stack, a line height apart is enough
    # (spaced for the narrowest plot the grid gets, so they never collide: the Lab's column at 1024 px)
    x_ticks = axis_ticks(cols, min(plot_w, NARROWEST_PX), 8 * len(str(cols)) + 24)
    y_ticks = axis_ticks(rows, min(plot_h, NARROWEST_PX * drawn), 40)
    lay = base_layout(
        title or f"FARMS {unit}s on |W|{note}", height=int(max(260, plot_h + _MARGIN_PX)),
        xaxis=dict(range=[0, cols], title=dict(text="column (input)"), constrain="domain", constraintoward="left",
                   showgrid=False, zeroline=False, tickvals=x_ticks, tickangle=0),
        yaxis=dict(range=[rows, 0], title=dict(text="row (output)"), scaleanchor="x", scaleratio=1 / stretch,
                   constrain="domain", constraintoward="top", showgrid=False, zeroline=False, tickvals=y_ticks),
    )
    lay["margin"]["t"] += 22  # the legend's second row where the plot is narrow, clear of the title
    return make_figure(traces, lay)
