"""The aspect-ratio lab's figures: pure functions, arrays in, ``go.Figure`` out.

Built on :mod:`farms_viz.figures.layer` (same colours, layout, histogram and CCDF code); the tail
CCDF and the window grid are :func:`farms_viz.figures.layer.tail_ccdf` and :func:`farms_viz.figures.layer.window_grid_figure` as is.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from farms_viz.analyses.diagnosis import fmt_number
from farms_viz.core.fits import nonzero_eigs
from farms_viz.core.mp import MPFit, mp_density
from farms_viz.figures.style import COLORS, INK, NAMES, base_layout, histogram_density, make_figure, rgba

SPIKE = "#C2362F"
GREY = "#7B8794"


def mp_line(Q: float, scale: float, log_x: bool = False, weight: float = 1.0,
            n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """The Marchenko-Pastur density on its support [l-, l+], times ``weight``.

    Linear x: density per unit lambda on a cosine-spaced grid (dense near the edges, where the
    density has square-root behaviour, or 1/sqrt(l) at 0 when Q = 1), so the trapezoid rule
    integrates it to ~1. Log x: density per decade, lambda * p(lambda) * ln 10, on a log grid.
    """
    r = 1.0 / math.sqrt(Q)
    lo, hi = scale * (1 - r) ** 2, scale * (1 + r) ** 2
    if not (np.isfinite(hi) and hi > 0):
        return np.array([]), np.array([])
    if log_x:
        x = np.geomspace(max(lo, hi * 1e-4), hi, n)
        y = mp_density(x, Q, scale) * x * math.log(10)
    else:
        x = lo + (hi - lo) * (1 - np.cos(np.linspace(0.0, math.pi, n))) / 2
        y = mp_density(x, Q, scale)
    return x, y * weight


def _vline(x: float, ymax: float, name: str, dash: str = "dot", color: str = INK) -> go.Scatter:
    return go.Scatter(x=[x, x], y=[0, ymax], mode="lines", line=dict(color=color, dash=dash, width=1.5),
                      name=name, hoverinfo="skip")


def lab_esd(eigs, theory: MPFit | None, fitted: MPFit | None, which: str = "raw", log_x: bool = False,
            bins: int | None = None, show_fit: bool = True, title: str | None = None) -> go.Figure:
    """The ESD histogram with the Marchenko-Pastur law for the matrix's aspect ratio.

    ``theory`` is MP with the known entry variance (None when the variance is infinite);
    ``fitted`` is the MP fit to the bulk (drawn dashed when ``show_fit`` or when there is no
    theory). The bulk edges l-, l+ of the law drawn solid are dotted lines; eigenvalues above
    l+ (plus a Tracy-Widom margin) are spikes, red ticks under the axis. Both curves are scaled
    by the bulk's share of the eigenvalues, (N - spikes) / N, so they sit on the bulk. ``bins``
    defaults to N / 8 between 20 and 60. The y range follows the curve and the histogram away
    from lambda = 0, where the MP density of a square matrix diverges (that bin may run off the top).
    """
    color, name = COLORS[which], NAMES[which]
    e = nonzero_eigs(eigs)
    bins = bins or int(np.clip(e.size // 8, 20, 60))
    edges, dens = histogram_density(e, bins, log_x)
    traces = [go.Scatter(
        x=edges, y=np.append(dens, dens[-1]), mode="lines", line=dict(shape="hv", color=color, width=1.2),
        fill="tozeroy", fillcolor=rgba(color, 0.35), name=f"ESD {name}: {e.size} eigenvalues",
        hovertemplate="λ ≥ %{x:.3g}<br>density %{y:.3g}<extra></extra>",
    )]
    main = theory if theory is not None else fitted
    n = max(e.size, 1)
    ymax = float(dens.max()) if dens.size else 1.0
    if not log_x and dens.size > 4:  # a square matrix's 1/sqrt(lambda) pile-up at 0 would flatten the rest
        ymax = min(ymax, 1.25 * float(np.max(dens[2:])))
    curve_max = 0.0
    if main is not None and np.isfinite(main.lambda_plus):
        label = "MP theory" if theory is not None else "MP fitted to the bulk"
        x, y = mp_line(main.Q, main.scale, log_x, 1 - main.n_spikes / n)
        traces.append(go.Scatter(x=x, y=y, mode="lines", line=dict(color=INK, width=2.5),
                                 name=f"{label}, Q = {main.Q:.3g}",
                                 hovertemplate="MP density %{y:.3g} at λ = %{x:.3g}<extra></extra>"))
        if y.size:  # ignore the integrable 1/sqrt(λ) blow-up at 0 (Q = 1) when scaling the axis
            curve_max = float(np.max(y[x >= main.lambda_minus + 0.03 * (main.lambda_plus - main.lambda_minus)]))
    if theory is not None and fitted is not None and show_fit and np.isfinite(fitted.lambda_plus):
        x, y = mp_line(fitted.Q, fitted.scale, log_x, 1 - fitted.n_spikes / n)
        traces.append(go.Scatter(x=x, y=y, mode="lines", line=dict(color=GREY, width=1.8, dash="dash"),
                                 name=f"MP fitted to the bulk, σ = {fitted.sigma:.3g}",
                                 hovertemplate="fitted MP %{y:.3g} at λ = %{x:.3g}<extra></extra>"))
    if curve_max > 0:
        ymax = min(max(ymax, curve_max), 1.6 * curve_max)
    ymax *= 1.1
    if main is not None and np.isfinite(main.lambda_plus):
        if main.lambda_minus > (e[0] if e.size else 0) * 0.5 and main.lambda_minus > 0:
            traces.append(_vline(main.lambda_minus, ymax, f"bulk edges λ− = {fmt_number(main.lambda_minus)}"))
            traces.append(_vline(main.lambda_plus, ymax, f"λ+ = {fmt_number(main.lambda_plus)}"))
        else:
            traces.append(_vline(main.lambda_plus, ymax, f"bulk edge λ+ = {fmt_number(main.lambda_plus)}"))
        if main.n_spikes > 0 and e.size:
            spikes = e[-main.n_spikes:][-400:]
            traces.append(go.Scatter(
                x=spikes, y=np.full(spikes.size, -0.04 * ymax), mode="markers",
                marker=dict(symbol="line-ns-open", size=12, color=SPIKE, line=dict(width=2)),
                name=f"spikes above λ+: {main.n_spikes}", hovertemplate="spike λ = %{x:.4g}<extra></extra>"))
    return make_figure(traces, base_layout(
        title or f"ESD {name}", height=430, legend_top=False,
        xaxis=dict(type="log" if log_x else "linear", showline=True,
                   title=dict(text="eigenvalue λ of WᵀW")),
        yaxis=dict(title=dict(text="density per decade of λ" if log_x else "density"),
                   range=[-0.09 * ymax, ymax], zeroline=False),
    ))


def numbers_table(row: dict, theory_raw: MPFit | None, theory_farms: MPFit | None) -> pd.DataFrame:
    """The lab's numbers, a row each for raw and FARMS: alpha, xmin, D, tail size, MP edge, spikes."""
    def side(which: str, th: MPFit | None) -> list[str]:
        sp = row.get(f"n_spikes_{which}")
        if th is not None:  # counted against the theoretical edge; FARMS: per window, like the table
            sp = th.n_spikes if which == "raw" else th.n_spikes / max(1, int(row["n_windows"]))
        return [fmt_number(row[f"alpha_{which}"]), fmt_number(row[f"xmin_{which}"]), fmt_number(row[f"D_{which}"]),
                f"{int(row[f'n_tail_{which}'])} of {int(row[f'n_eigs_{which}'])}",
                fmt_number(th.lambda_plus) if th is not None else "– (infinite variance)",
                str(int(sp)) if which == "raw" else f"{fmt_number(sp)} per window"]

    index = ["α (tail exponent)", "xmin (tail start)", "KS distance D", "eigenvalues in the tail",
             "MP bulk edge λ+ (theory)", "spikes above λ+"]
    return pd.DataFrame([side("raw", theory_raw), side("farms", theory_farms)], index=["raw", "FARMS"],
                        columns=index)


def _band(x: np.ndarray, lo: np.ndarray, hi: np.ndarray, color: str, name: str) -> go.Scatter:
    ok = np.isfinite(lo) & np.isfinite(hi)
    xs, lo, hi = x[ok], lo[ok], hi[ok]
    return go.Scatter(x=np.concatenate([xs, xs[::-1]]), y=np.concatenate([hi, lo[::-1]]), fill="toself",
                      fillcolor=rgba(color, 0.2), line=dict(width=0), hoverinfo="skip", name=name,
                      showlegend=False)


def sweep_figure(result, reference: float | None = None, title: str | None = None) -> go.Figure:
    """alpha raw and FARMS against the aspect ratio: mean over seeds, a +-1 std band, every seed faint.

    ``result`` is a :class:`farms_viz.analyses.lab.SweepResult`; ``reference`` a theoretical alpha to mark
    (1 + mu/2 for entries with tail index mu < 2).
    """
    x = np.asarray(result.aspect_ratios, dtype=float)
    traces = []
    symbols = {"raw": "circle", "farms": "diamond"}
    for which in ("raw", "farms"):
        color = COLORS[which]
        a = result.alphas(which)
        lo, hi = result.band(which)
        traces.append(_band(x, lo, hi, color, f"{NAMES[which]} ± 1 sd"))
        xs = np.repeat(x, a.shape[1])
        traces.append(go.Scatter(x=xs, y=a.ravel(), mode="markers", showlegend=False,
                                 marker=dict(color=color, size=5, opacity=0.35),
                                 hovertemplate=f"{NAMES[which]}: α = %{{y:.2f}} (one seed)<extra></extra>"))
        slope = result.slope(which)
        traces.append(go.Scatter(
            x=x, y=result.mean(which), mode="lines+markers", name=f"α {NAMES[which]}: {slope:+.2f} per doubling",
            line=dict(color=color, width=3), marker=dict(color=color, size=10, symbol=symbols[which],
                                                          line=dict(width=1, color="white")),
            hovertemplate=f"aspect ratio %{{x:.3g}}<br>mean α {NAMES[which]} = %{{y:.2f}}<extra></extra>"))
    notes = []
    if reference is not None:
        traces.append(go.Scatter(x=[x.min(), x.max()], y=[reference, reference], mode="lines",
                                 line=dict(color=INK, dash="dot", width=1.5), hoverinfo="skip",
                                 name=f"theory 1 + μ/2 = {reference:.2f}"))
    all_a = np.concatenate([result.alpha_raw.ravel(), result.alpha_farms.ravel()])
    all_a = all_a[np.isfinite(all_a)]
    top = float(all_a.max()) if all_a.size else 4.0
    bottom = float(all_a.min()) if all_a.size else 1.0
    pad = 0.08 * max(top - bottom, 0.5)
    ticks = [t for t in (1, 1.5, 2, 3, 4, 6, 8, 12, 16, 24, 32) if x.min() * 0.99 <= t <= x.max() * 1.01]
    return make_figure(traces, base_layout(
        title or "α vs aspect ratio", height=480, annotations=notes,
        xaxis=dict(type="log", tickvals=ticks, ticktext=[f"{t:g}" for t in ticks], showline=True,
                   title=dict(text="aspect ratio Q = long side / short side (log scale)"),
                   range=[math.log10(x.min()) - 0.04, math.log10(x.max()) + 0.04]),
        yaxis=dict(title=dict(text="α (power-law exponent of the ESD tail)"),
                   range=[max(0.0, bottom - pad), top + pad], zeroline=False),
    ))
