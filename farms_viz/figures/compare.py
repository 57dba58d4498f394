"""Figures of the compare page: pure functions, comparison/series tables or spectra in, ``go.Figure`` out.

Same look as :mod:`farms_viz.figures.layer`: raw orange, FARMS blue; checkpoint A is drawn lighter or
dashed, checkpoint B full. No Streamlit here.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from farms_viz.analyses.compare import ONLY_A, ONLY_B, change_text, delta_column, series_wide, value_column
from farms_viz.analyses.diagnosis import BAND_EDGES, BANDS
from farms_viz.core.fits import nonzero_eigs
from farms_viz.figures.overview import metric_label
from farms_viz.figures.style import (
    COLORS,
    INK,
    MUTED,
    NAMES,
    WIDE_PX,
    base_layout,
    ccdf_points,
    histogram_density,
    make_figure,
    rgba,
)

CHANGED_FILL = "#FFF1DB"  # the overview table's highlight for a changed diagnosis
#: alpha colour scale for heatmaps, 0..8: red (over-trained) | green (well-trained, darkest at 4) | grey (under)
ALPHA_ZMAX = 8.0
ALPHA_SCALE = [[0.0, "#B8322F"], [0.25, "#F2C4C0"], [0.25, "#DCEFD6"], [0.5, "#7DB872"],
               [0.75, "#DCEFD6"], [0.75, "#E6E8EB"], [1.0, "#9AA5B1"]]


def _alpha_text(x) -> str:
    return f"{x:.2f}" if x is not None and np.isfinite(x) else "–"


def _value_text(metric: str):
    return _alpha_text if metric == "alpha" else (lambda x: f"{x:.4g}" if x is not None and np.isfinite(x) else "–")


def _cmp_hover(cmp: pd.DataFrame, metric: str = "alpha") -> np.ndarray:
    changes = [change_text(r) or "no change of diagnosis" for _, r in cmp.iterrows()]
    text = _value_text(metric)
    cols = [cmp["layer"].astype(str), cmp["shape_a"].astype(str), cmp["shape_b"].astype(str),
            *(cmp[value_column(metric, w, s)].map(text) for w in ("raw", "farms") for s in ("a", "b")),
            pd.Series(changes, index=cmp.index), cmp["status"].astype(str)]
    return np.stack([np.asarray(c, dtype=object) for c in cols], axis=1) if len(cmp) else np.empty((0, 9))


def _cmp_template(metric: str = "alpha") -> str:
    m = metric_label(metric)
    return ("<b>%{customdata[0]}</b> (%{customdata[8]})<br>shape A %{customdata[1]}, B %{customdata[2]}"
            f"<br>{m} raw %{{customdata[3]}} → %{{customdata[4]}}<br>{m} FARMS %{{customdata[5]}} → %{{customdata[6]}}"
            "<br>%{customdata[7]}<extra>%{fullData.name}</extra>")


def delta_bars(cmp: pd.DataFrame, label_a: str = "A", label_b: str = "B",
               title: str = "Change of α per layer, B − A", metric: str = "alpha") -> go.Figure:
    """Horizontal bars of delta alpha (B - A), raw and FARMS, in model order (top to bottom).

    Layers whose HT-SR diagnosis changes (raw or FARMS) get a highlighted row and a bold name
    ending in ``◆``; layers on one side only are left out (they have no delta). ``customdata[0]``
    is the layer name. ``metric``: the change of another metric (compare_tables(metric=...)).
    """
    t = cmp[~cmp["status"].isin([ONLY_A, ONLY_B])].reset_index(drop=True)
    n, ml = len(t), metric_label(metric)
    cd = _cmp_hover(t, metric)
    y = t["layer"].astype(str).tolist()
    traces = [go.Bar(x=t[delta_column(metric, w)].astype(float).to_numpy(), y=y, orientation="h",
                     name=f"Δ{ml} {NAMES[w]}", meta=delta_column(metric, w),
                     marker=dict(color=COLORS[w], line=dict(width=0)), customdata=cd, hovertemplate=_cmp_template(metric))
              for w in ("raw", "farms")]
    changed = (t["changed_raw"] | t["changed_farms"]).to_numpy(dtype=bool) if n else np.zeros(0, bool)
    shapes = [dict(type="rect", xref="paper", yref="y", x0=0, x1=1, y0=i - 0.5, y1=i + 0.5, fillcolor=CHANGED_FILL,
                   line_width=0, layer="below") for i in np.flatnonzero(changed)]
    shapes.append(dict(type="line", xref="x", yref="paper", x0=0, x1=0, y0=0, y1=1, line=dict(color=INK, width=1)))
    ticktext = [f"<b>{name} ◆</b>" if c else name for name, c in zip(y, changed)]
    if changed.any():  # a legend entry for the highlight
        traces.append(go.Bar(x=[None], y=[None], orientation="h", name="◆ diagnosis changes (raw or FARMS)",
                             marker=dict(color=CHANGED_FILL, line=dict(color="#E0B97A", width=1)),
                             hoverinfo="skip"))
    d = (np.concatenate([t[delta_column(metric, w)].astype(float) for w in ("raw", "farms")]) if n
         else np.array([]))
    d = d[np.isfinite(d)]
    m = max(0.5 if metric == "alpha" else 0.0, float(np.abs(d).max()) * 1.12) if d.size else 1.0
    m = m or 1.0
    row_px = 24 if n <= 40 else (18 if n <= 120 else 13)
    tick_size = 12 if n <= 40 else (11 if n <= 120 else 9)
    return make_figure(traces, base_layout(
        title, height=max(320, 150 + row_px * n), barmode="group", bargap=0.25, bargroupgap=0.05,
        shapes=shapes, width=WIDE_PX,
        yaxis=dict(autorange="reversed", type="category", tickfont=dict(size=tick_size), showgrid=False,
                   tickmode="array", tickvals=y, ticktext=ticktext),
        xaxis=dict(range=[-m, m], zeroline=False, showline=True,
                   title=dict(text=f"Δ{ml} = {ml}({label_b}) − {ml}({label_a})" + (
                       "<br>◀ heavier tail in B        lighter tail in B ▶" if metric == "alpha" else ""))),
    ), width=WIDE_PX)


def alpha_scatter(cmp: pd.DataFrame, label_a: str = "A", label_b: str = "B",
                  title: str = "α of A vs α of B, per layer", metric: str = "alpha") -> go.Figure:
    """Scatter of alpha_A (x) against alpha_B (y), raw and FARMS, with the diagonal alpha_B = alpha_A.

    Points below the diagonal: alpha fell from A to B (a heavier tail, "more trained"). The band
    edges alpha = 2 and 6 are drawn on both axes. ``customdata[0]`` is the layer name.
    ``metric``: another metric's A and B values (no band edges).
    """
    t = cmp[~cmp["status"].isin([ONLY_A, ONLY_B])].reset_index(drop=True)
    cd, ml = _cmp_hover(t, metric), metric_label(metric)
    symbols = {"raw": "circle", "farms": "diamond"}
    traces = []
    vals = []
    for w in ("raw", "farms"):
        xa, xb = (t[value_column(metric, w, s)].astype(float).to_numpy() for s in ("a", "b"))
        vals += [xa, xb]
        changed = t[f"changed_{w}"].to_numpy(dtype=bool) if len(t) else np.zeros(0, bool)
        traces.append(go.Scatter(
            x=xa, y=xb, mode="markers", name=f"{ml} {NAMES[w]}", customdata=cd, hovertemplate=_cmp_template(metric),
            meta=value_column(metric, w),
            marker=dict(color=COLORS[w], symbol=symbols[w], size=np.where(changed, 13, 9), opacity=0.85,
                        line=dict(width=np.where(changed, 2, 1), color=np.where(changed, INK, "white"))),
        ))
    allv = np.concatenate(vals) if vals else np.array([])
    allv = allv[np.isfinite(allv)]
    lo, hi = _square_range(allv, metric)
    traces.append(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", line=dict(color=INK, dash="dash", width=1.5),
                             name="diagonal: no change", hoverinfo="skip"))
    shapes = []
    for edge in [e for e in BAND_EDGES if lo < e < hi and metric == "alpha"]:
        shapes.append(dict(type="line", xref="x", yref="paper", x0=edge, x1=edge, y0=0, y1=1,
                           line=dict(color="#CBD2D9", width=1, dash="dot"), layer="below"))
        shapes.append(dict(type="line", xref="paper", yref="y", x0=0, x1=1, y0=edge, y1=edge,
                           line=dict(color="#CBD2D9", width=1, dash="dot"), layer="below"))
    notes = [dict(xref="paper", yref="paper", x=0.02, y=0.98, xanchor="left", yanchor="top", showarrow=False,
                  text=f"above the diagonal: {ml} grew in B", font=dict(size=11, color=MUTED)),
             dict(xref="paper", yref="paper", x=0.98, y=0.02, xanchor="right", yanchor="bottom", showarrow=False,
                  text=f"below: {ml} fell in B" + (" (heavier tail)" if metric == "alpha" else ""),
                  font=dict(size=11, color=MUTED))]
    if len(t):
        notes.append(dict(xref="paper", yref="paper", x=0.02, y=0.91, xanchor="left", yanchor="top",
                          showarrow=False, text="outlined: diagnosis changes", font=dict(size=11, color=MUTED)))
    return make_figure(traces, base_layout(
        title, height=540, shapes=shapes, annotations=notes, legend_top=False,
        xaxis=dict(range=[lo, hi], title=dict(text=f"{ml} of A ({label_a})"), showline=True, zeroline=False),
        yaxis=dict(range=[lo, hi], title=dict(text=f"{ml} of B ({label_b})"), zeroline=False),
    ))


def _square_range(vals: np.ndarray, metric: str = "alpha") -> tuple[float, float]:
    """One padded range for both axes that holds every value and (alpha) the band edge alpha = 2."""
    if not vals.size:
        return 0.0, 7.5
    if metric != "alpha":  # any sign (log_norm < 0 for small weights)
        lo, hi = float(vals.min()), float(vals.max())
        pad = 0.08 * (hi - lo) or 0.5
        return lo - pad, hi + pad
    lo, hi = min(float(vals.min()), 2.0), max(float(vals.max()), 2.0)
    pad = max(0.3, 0.08 * (hi - lo))
    return max(0.0, lo - pad), hi + pad


def _bins(n: int) -> int:
    """Histogram bins for n eigenvalues: 2 sqrt(n), between 12 and 50."""
    return int(min(50, max(12, round(2 * math.sqrt(max(n, 1))))))


def esd_overlay(spec_a, spec_b, label_a: str = "A", label_b: str = "B", bins: int | None = None,
                title: str | None = None) -> go.Figure:
    """A 2 x 2 grid for one layer: ESD histograms (top) and power-law tails with fits (bottom),
    raw (left) and FARMS (right); checkpoint A dashed/hollow, B solid/filled. Either spectra may be None.

    Histograms are densities per decade of lambda (log-x, :func:`figures.histogram_density`);
    tails are the empirical CCDF with the fitted line ``(n_tail/N) (lambda/xmin)^(1-alpha)``.
    """
    def alphas(w: str) -> str:
        parts = [f"{side} {_alpha_text(s.side(w).fit.alpha)}"
                 for side, s in (("A", spec_a), ("B", spec_b)) if s is not None]
        return "α " + " → ".join(parts)

    fig = make_subplots(rows=2, cols=2, horizontal_spacing=0.08, vertical_spacing=0.16,
                        # two lines: a panel is ~240 px wide at 1024 px (one line ran into its neighbour)
                        subplot_titles=("ESD raw", "ESD FARMS", f"Power-law tail raw (CCDF)<br>{alphas('raw')}",
                                        f"Power-law tail FARMS (CCDF)<br>{alphas('farms')}"))
    for col, w in ((1, "raw"), (2, "farms")):
        color = COLORS[w]
        for side, spec, lab in (("A", spec_a, label_a), ("B", spec_b, label_b)):
            if spec is None:
                continue
            is_b = side == "B"
            eigs, fit = spec.side(w).esd, spec.side(w).fit
            e = nonzero_eigs(eigs)
            edges, dens = histogram_density(e, bins or _bins(e.size), True)
            name = f"{side} {NAMES[w]} ({lab})"
            fig.add_trace(go.Scatter(
                x=edges, y=np.append(dens, dens[-1]), mode="lines", name=f"ESD {name}", showlegend=False,
                line=dict(shape="hv", color=color, width=2 if is_b else 1.6, dash=None if is_b else "dash"),
                fill="tozeroy" if is_b else None, fillcolor=rgba(color, 0.28) if is_b else None,
                hovertemplate=f"{side}: λ ≥ %{{x:.3g}}<br>density %{{y:.3g}}<extra></extra>"), row=1, col=col)
            x, y = ccdf_points(e)
            fig.add_trace(go.Scatter(
                x=x, y=y, mode="markers", name=f"CCDF {name}", showlegend=False,
                # an "-open" symbol is drawn in marker.color (white made A's points invisible)
                marker=dict(color=color, size=5 if is_b else 6, opacity=0.8,
                            symbol="circle" if is_b else "circle-open", line=dict(color=color, width=1)),
                hovertemplate=f"{side}: P(Λ ≥ %{{x:.3g}}) = %{{y:.3g}}<extra></extra>"), row=2, col=col)
            if fit is not None and np.isfinite(fit.alpha) and np.isfinite(fit.xmin) and fit.n_eigs > 0 and x.size:
                xs = np.geomspace(fit.xmin, float(x[-1]), 50)
                fig.add_trace(go.Scatter(
                    x=xs, y=fit.n_tail / fit.n_eigs * (xs / fit.xmin) ** (1 - fit.alpha), mode="lines",
                    name=f"fit {side} {NAMES[w]}: α = {fit.alpha:.2f}", showlegend=False,
                    line=dict(color=INK if is_b else MUTED, width=2.5 if is_b else 2, dash=None if is_b else "dash"),
                    hovertemplate=f"fit {side}: α = {fit.alpha:.2f}, xmin = {fit.xmin:.3g}<extra></extra>"),
                    row=2, col=col)
    for side, lab, dash, sym in (("A", label_a, "dash", "circle-open"), ("B", label_b, None, "circle")):
        if (spec_a if side == "A" else spec_b) is not None:
            fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines+markers", name=f"{side} = {lab}",
                                     line=dict(color=MUTED, dash=dash, width=2), marker=dict(symbol=sym, color=MUTED),
                                     hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name="power-law fit from xmin (dark line)",
                             line=dict(color=INK, width=2.5), hoverinfo="skip"))
    fig.update_xaxes(type="log", showline=True, title_text="eigenvalue λ (log scale)", row=2)
    fig.update_xaxes(type="log", showline=True, title_text="eigenvalue λ of WᵀW", row=1)  # log: the ticks say
    fig.update_yaxes(title_text="density per decade", row=1, col=1, rangemode="tozero")
    fig.update_yaxes(rangemode="tozero", row=1, col=2)
    # labels at 1, 2, 5 per decade: on a short range plotly's default labels every digit, 1-9,
    # and they run into each other
    fig.update_yaxes(type="log", dtick="D2", title_text="P(Λ ≥ λ)", row=2, col=1)
    fig.update_yaxes(type="log", dtick="D2", row=2, col=2)
    for ann in fig.layout.annotations:  # subplot titles: left-aligned, in the raw/FARMS colour
        ann.update(font=dict(size=13, color=COLORS["raw"] if "raw" in ann.text else COLORS["farms"]))
    lay = base_layout(title or "ESDs of A and B", height=820, legend_top=False, width=WIDE_PX)
    fig.update_layout(**lay)
    return fig


# ------------------------------------------------------------------ series

def _band_lines(fig, rows: int, cols: int) -> None:
    for r in range(1, rows + 1):
        for c in range(1, cols + 1):
            for edge in BAND_EDGES:
                fig.add_hline(y=edge, line=dict(color="#CBD2D9", width=1, dash="dot"), layer="below", row=r, col=c)


def series_lines(long: pd.DataFrame, title: str = "α per layer across training", max_cols: int = 4,
                 metric: str = "alpha") -> go.Figure:
    """Small multiples, one panel per layer: alpha (or ``metric``, series_long(metric=...)) across
    steps, raw dashed orange, FARMS solid blue.

    Steps are categories in training order; dotted lines mark alpha = 2 and 6 (the band edges).
    """
    ml = metric_label(metric)
    steps = long.drop_duplicates("step_index").sort_values("step_index")["step"].tolist()
    layers = long.drop_duplicates("layer").sort_values("layer_index")["layer"].tolist()
    unit, ticks = _step_ticks(steps)
    n = max(1, len(layers))
    ncols = min(max_cols, n)
    nrows = math.ceil(n / ncols)
    fig = make_subplots(rows=nrows, cols=ncols, subplot_titles=[_short(x) for x in layers] or [""],
                        shared_yaxes=True, horizontal_spacing=0.04, vertical_spacing=min(0.12, 0.35 / nrows))
    for k, layer in enumerate(layers):
        g = long[long["layer"] == layer].sort_values("step_index")
        r, c = k // ncols + 1, k % ncols + 1
        for w, dash, sym in (("raw", "dash", "circle"), ("farms", None, "diamond")):
            fig.add_trace(go.Scatter(
                x=g["step"], y=g[f"{metric}_{w}"].astype(float), mode="lines+markers", name=f"{ml} {NAMES[w]}",
                meta=f"{metric}_{w}",
                legendgroup=w, showlegend=k == 0, line=dict(color=COLORS[w], dash=dash, width=2.5),
                marker=dict(color=COLORS[w], symbol=sym, size=7),
                hovertemplate=f"<b>{layer}</b><br>%{{x}}: {ml} {NAMES[w]} %{{y:.4g}}<extra></extra>"), row=r, col=c)
    vals = (np.concatenate([long[f"{metric}_raw"].astype(float), long[f"{metric}_farms"].astype(float)])
            if len(long) else [])
    vals = np.asarray(vals)[np.isfinite(vals)] if len(vals) else np.array([])
    if metric == "alpha":
        _band_lines(fig, nrows, ncols)
        fig.update_yaxes(range=[0, max(6.5, float(vals.max()) * 1.08) if vals.size else 7.5], zeroline=False)
    for r in range(1, nrows + 1):
        fig.update_yaxes(title_text=ml, row=r, col=1)
    fig.update_xaxes(type="category", categoryorder="array", categoryarray=steps, showline=True, tickangle=0,
                     tickmode="array", tickvals=steps, ticktext=ticks)
    for c in range(1, ncols + 1):
        fig.update_xaxes(title_text=unit, row=nrows, col=c)
    for ann in fig.layout.annotations:
        ann.update(font=dict(size=12, color=INK))
    lay = base_layout(title, height=150 + 260 * nrows, width=WIDE_PX)
    lay["legend"].update(yref="container", y=1, yanchor="top", xanchor="right", x=1)
    fig.update_layout(**lay)
    return fig


def _step_ticks(steps: list[str]) -> tuple[str, list[str]]:
    """Short tick labels: ``epoch 0, epoch 1`` -> (``epoch``, [``0``, ``1``]) when every label has one unit."""
    heads = {s.split(" ", 1)[0] for s in steps if " " in s}
    if len(heads) == 1 and all(" " in s for s in steps):
        return heads.pop(), [s.split(" ", 1)[1] for s in steps]
    return "checkpoint", list(steps)


def _short(name: str, n: int = 38) -> str:
    return name if len(name) <= n else "…" + name[-(n - 1):]


def series_mean_figure(mean: pd.DataFrame, title: str = "Mean α over layers across training",
                       metric: str = "alpha") -> go.Figure:
    """Mean alpha (or ``metric``: series_mean(metric=...)) over layers per step, raw dashed orange and
    FARMS solid blue, ± one std as a band; the alpha bands for alpha only."""
    traces, ml = [], metric_label(metric)
    x = mean["step"].tolist()
    for w, dash in (("raw", "dash"), ("farms", None)):
        m, s = mean[f"mean_{w}"].astype(float).to_numpy(), mean[f"std_{w}"].astype(float).to_numpy()
        traces.append(go.Scatter(x=x + x[::-1], y=np.concatenate([m + s, (m - s)[::-1]]), fill="toself",
                                 mode="lines", fillcolor=rgba(COLORS[w], 0.12), line=dict(width=0), hoverinfo="skip",
                                 name=f"± 1 std over layers ({NAMES[w]})", showlegend=False, legendgroup=w))
        traces.append(go.Scatter(
            x=x, y=m, mode="lines+markers", name=f"mean {ml} {NAMES[w]}", legendgroup=w, meta=f"mean_{w}",
            line=dict(color=COLORS[w], dash=dash, width=3), marker=dict(size=8, color=COLORS[w]),
            customdata=np.stack([s, mean["n_layers"].to_numpy()], axis=1) if len(mean) else None,
            hovertemplate=f"%{{x}}: mean {ml} {NAMES[w]} %{{y:.4g}} ± %{{customdata[0]:.3g}} "
                          f"(%{{customdata[1]}} layers)<extra></extra>"))
    allv = np.concatenate([mean[c].astype(float) + mean[s].astype(float).fillna(0)
                           for c, s in (("mean_raw", "std_raw"), ("mean_farms", "std_farms"))]) if len(mean) else []
    allv = np.asarray(allv)[np.isfinite(allv)] if len(allv) else np.array([])
    hi = max(6.5, float(allv.max()) * 1.1) if allv.size else 7.5
    shapes = [dict(type="rect", xref="paper", yref="y", x0=0, x1=1, y0=lo, y1=min(up, hi), fillcolor=color,
                   opacity=0.45, line_width=0, layer="below") for lo, up, _, color in BANDS if lo < hi]
    if metric != "alpha":
        shapes = []
    return make_figure(traces, base_layout(
        title, height=400, shapes=shapes, width=WIDE_PX,
        xaxis=dict(type="category", categoryorder="array", categoryarray=x, showline=True,
                   title=dict(text="checkpoint")),
        yaxis=dict(range=[0, hi] if metric == "alpha" else None, zeroline=False,
                   title=dict(text=f"mean {ml} over layers (band: ± 1 std)")),
    ), width=WIDE_PX)


def series_heatmap(long: pd.DataFrame, title: str = "α per layer (rows) and checkpoint (columns)",
                   metric: str = "alpha") -> go.Figure:
    """Two heatmaps side by side, raw | FARMS: layers (model order, top to bottom) x steps, value printed.

    One colour scale for both: red below 2 (over-trained), green from 2 to 6 (darkest at 4), grey above
    6; another ``metric``: Viridis over its range.
    """
    wr, wf = series_wide(long, f"{metric}_raw"), series_wide(long, f"{metric}_farms")
    n, ml, text = len(wr), metric_label(metric), _value_text(metric)
    both = np.concatenate([wr.to_numpy(dtype=float).ravel(), wf.to_numpy(dtype=float).ravel()])
    both = both[np.isfinite(both)]
    scale = (dict(zmin=0, zmax=ALPHA_ZMAX, colorscale=ALPHA_SCALE) if metric == "alpha" else
             dict(zmin=float(both.min()) if both.size else 0, zmax=float(both.max()) if both.size else 1,
                  colorscale="Viridis"))
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.03,
                        subplot_titles=(f"raw {ml}", f"FARMS {ml}"))
    for col, w, wide in ((1, "raw", wr), (2, "farms", wf)):
        if wide.empty:
            continue
        z = wide.to_numpy(dtype=float)
        fig.add_trace(go.Heatmap(
            z=z, x=list(wide.columns), y=[_short(s, 44) for s in wide.index], **scale,
            showscale=col == 2, xgap=2, ygap=2, meta=f"{metric}_{w}",
            text=[[text(v) for v in row] for row in z], texttemplate="%{text}",
            textfont=dict(size=11 if n <= 40 else 8),
            customdata=np.array([[name] * z.shape[1] for name in wide.index], dtype=object),
            colorbar=dict(title=dict(text=ml, side="right"), thickness=12, len=0.9,
                          **(dict(tickvals=[0, 2, 4, 6, 8], ticktext=["0", "2", "4", "6", "≥ 8"])
                             if metric == "alpha" else {})),
            hovertemplate=f"<b>%{{customdata}}</b><br>%{{x}}: {ml} {NAMES[w]} %{{z:.4g}}<extra></extra>"),
            row=1, col=col)
    fig.update_yaxes(autorange="reversed", type="category", showgrid=False, tickfont=dict(size=12 if n <= 40 else 9))
    fig.update_xaxes(type="category", showgrid=False, side="bottom")
    for ann in fig.layout.annotations:
        ann.update(font=dict(size=13, color=COLORS["raw"] if ann.text.startswith("raw") else COLORS["farms"]))
    lay = base_layout(title, height=max(300, 170 + (26 if n <= 40 else 14) * n), legend_top=False, width=WIDE_PX)
    lay["margin"] = dict(l=10, r=10, t=70, b=10)
    fig.update_layout(**lay)
    return fig
