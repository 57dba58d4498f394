"""The figures' shared look and traces: colours, the common layout, histogram, MP curve, CCDF.

Raw is always orange (:data:`RAW_COLOR`), FARMS always blue (:data:`FARMS_COLOR`); every figure
module builds on :func:`layout` and :func:`figure`.
"""

from __future__ import annotations

import html
import math
import re

import numpy as np
import plotly.graph_objects as go

from farms_viz.core.fits import nonzero_eigs
from farms_viz.core.mp import mp_density

RAW_COLOR = "#D9822B"
FARMS_COLOR = "#2E6FBA"
COLORS = {"raw": RAW_COLOR, "farms": FARMS_COLOR}
NAMES = {"raw": "raw", "farms": "FARMS"}
#: fitted lines and reference marks (MP curve, power law, xmin, targets)
INK = "#323F4B"
#: secondary text and marks
MUTED = "#52606D"
#: the |W| picture behind the window grid is pooled to at most this many pixels per side
#: for display (figure JSON 148 KB -> 40 KB at 160; layer switch 0.65 -> 0.58 s)
DISPLAY_SIDE = 96
_AXIS = dict(gridcolor="#EBF0F8", linecolor="#CBD2D9", zerolinecolor="#EBF0F8", zerolinewidth=2, ticks="",
             automargin=True, title=dict(standoff=12))
#: plotly_white's look, trimmed to what these figures use (the full template costs ~8 ms per figure)
TEMPLATE = go.layout.Template(layout=dict(
    paper_bgcolor="white", plot_bgcolor="white", colorway=[RAW_COLOR, FARMS_COLOR, "#323F4B", "#C2362F"],
    hovermode="closest", hoverlabel=dict(align="left"), xaxis=_AXIS, yaxis=_AXIS,
))
FONT = dict(family="Inter, 'Source Sans Pro', 'DejaVu Sans', Arial, sans-serif", size=13, color="#1F2933")
MAX_CCDF_POINTS = 800


#: characters a line of a title, an x-axis title, a y-axis title and a legend entry holds before it
#: wraps: what a half-width chart (about 250 px wide, 1024 px window with the sidebar open) shows
#: unclipped, at ~7.6 px a character of 15 px title text and ~6.5 px of 12-13 px text (a legend
#: entry also has its 40 px symbol: 'randomized ESD (384 eigenvalues)', 32 characters, was cut off)
TITLE_CHARS, X_TITLE_CHARS, Y_TITLE_CHARS, LEGEND_CHARS = 32, 30, 40, 29
#: the narrowest a figure is shown: a half-width chart at 1024 px (the default), and a chart that
#: always has the page's width (1024 px less the sidebar and the page's margins)
NARROW_PX, WIDE_PX = 250, 540
_SPAN = re.compile(r"^(<span[^>]*>)(.*)(</span>)$")


def _pack(tokens: list[str], chars: int) -> list[str]:
    lines, cur = [], ""
    for word in tokens:
        if cur and len(cur) + 1 + len(word) > chars:
            lines.append(cur)
            cur = word
        else:
            cur = f"{cur} {word}" if cur else word
    return lines + [cur]


def wrap(text: str, chars: int) -> str:
    """``text`` broken at spaces into lines of at most ``chars`` characters, joined by ``<br>`` (plotly
    never wraps a title or a legend entry; a long one is cut off at the figure's edge).

    As few lines as fit, made as even as they can be ("ESD raw with / Marchenko–Pastur fit", not a
    lone "fit"); a parenthesis stays on one line where it fits; a single word longer than ``chars``
    stays whole. Lines already broken by ``<br>`` wrap one by one, a line that is one ``<span>``
    (smaller text: 1.25 ``chars``) keeps the span on each piece.
    """
    if not text or len(text) <= chars:
        return text
    out = []
    for line in text.split("<br>"):
        m = _SPAN.match(line)
        head, body, tail = m.groups() if m else ("", line, "")
        room = int(chars * 1.25) if m else chars
        if "<" in body or len(body) <= room:
            out.append(line)
            continue
        tokens = [w for tok in re.findall(r"\([^()]*\)\S*|\S+", body)
                  for w in (tok.split(" ") if len(tok) > room else [tok])]
        best = _pack(tokens, room)
        for lim in range(room - 1, 0, -1):
            lines = _pack(tokens, lim)
            if len(lines) > len(best):
                break
            best = lines
        out += [head + p + tail for p in best]
    return "<br>".join(out)


def _wrap_axis_titles(lay: dict, scale: float) -> None:
    for key, axis in lay.items():
        if key[1:5] == "axis" and isinstance(axis, dict) and isinstance(axis.get("title"), dict):
            text = axis["title"].get("text")
            if isinstance(text, str):
                chars = X_TITLE_CHARS if key[0] == "x" else Y_TITLE_CHARS
                axis["title"] = dict(axis["title"], text=wrap(text, int(chars * scale)))


def base_layout(title: str, height: int, legend_top: bool = True, width: int = NARROW_PX, **extra) -> dict:
    """The common layout: template, fonts, title top-left, legend in one row above the plot.

    ``width``: the narrowest the figure is shown, in px (:data:`NARROW_PX`, a half-width chart at
    1024 px, or :data:`WIDE_PX` for one that always has the page's width). Titles and axis titles
    wrap to fit it (:func:`wrap`); each title line past the first adds its height to the top
    margin, and to the title's top pad (a title anchored at its top is placed by its first line:
    without it a second line pushes the first out of the figure)."""
    scale = width / NARROW_PX
    title = wrap(title, int(TITLE_CHARS * scale))
    more = 20 * title.count("<br>")
    lay = dict(
        template=TEMPLATE, font=FONT, height=height + more,
        title=dict(text=title, x=0, xanchor="left", font=dict(size=15), y=1, yref="container", yanchor="top",
                   pad=dict(t=10 + more)),
        margin=dict(l=10, r=10, t=(80 if legend_top else 50) + more, b=10), hoverlabel=dict(font_size=12),
    )
    if legend_top:  # one row just under the title, above the plot
        lay["legend"] = dict(orientation="h", yanchor="bottom", y=1.01, xanchor="left", x=0,
                             bgcolor="rgba(255,255,255,0.6)", font=dict(size=12))
    else:  # at the figure's foot: plotly lifts the plot and its x title clear of it, however many rows
        # (a paper-relative y = -0.2 sat on a two-line x title, or on one under a short plot)
        lay["legend"] = dict(orientation="h", yref="container", yanchor="bottom", y=0, xanchor="left", x=0,
                             font=dict(size=12))
    lay.update(extra)
    _wrap_axis_titles(lay, scale)
    return lay


#: a title's context line (model, layer, settings) keeps at most this many characters, the middle of
#: a longer one elided: 64 characters of 12 px text fit a half-width chart at 1440 px
CONTEXT_CHARS = 64


def elide(text: str, chars: int) -> str:
    """``text`` at most ``chars`` characters long, its middle replaced by ``…`` (a layer name's start
    and its end are what tell layers apart)."""
    if len(text) <= chars:
        return text
    head = (chars - 1) // 2
    return text[:head] + "…" + text[len(text) - (chars - 1 - head):]


def subtitle(*lines, chars: int = CONTEXT_CHARS) -> dict:
    """A figure title's subtitle (``layout.title.subtitle``) of smaller ``lines`` under the title (the
    model and layer, the settings), so a PNG of the figure says what it shows. Each line is
    HTML-escaped (a layer name is text from the model file), control characters shown as ``?``, and
    elided to ``chars`` characters. (A subtitle, not ``<br>`` in the title: a title anchored at the top
    of the figure lost the top of its first line to every extra line.)"""
    shown = [elide("".join(c if c.isprintable() else "?" for c in str(line)), chars) for line in lines if line]
    return dict(text="<br>".join(html.escape(line, quote=False) for line in shown), font=dict(size=12, color=MUTED))


#: px a legend character (12 px text), an entry's symbol and gap, a legend line's height
LEGEND_CHAR_PX, LEGEND_SYMBOL_PX, LEGEND_LINE_PX = 6.6, 44, 19


def legend_height(names: list[str], width: float = NARROW_PX) -> int:
    """The height in px of a horizontal legend of ``names`` (lines broken by ``<br>``) in ``width``.

    Plotly wraps such a legend into a grid: columns as wide as the widest entry, as many as fit.
    """
    if not names:
        return 0
    lines = [name.split("<br>") for name in names]
    entry = LEGEND_SYMBOL_PX + LEGEND_CHAR_PX * max(len(line) for ls in lines for line in ls)
    cols = max(1, int(width // entry))
    rows = [lines[i:i + cols] for i in range(0, len(lines), cols)]
    return LEGEND_LINE_PX * sum(max(len(ls) for ls in row) for row in rows)


def make_figure(traces: list, layout: dict, width: int = NARROW_PX) -> go.Figure:
    """One constructor call (plotly's update_* calls cost ~ms each; layer switching must stay fast).

    Legend entries longer than :data:`LEGEND_CHARS` wrap (:func:`wrap`); a legend above the plot
    gets the room its rows take in the figure's narrowest ``width`` (as given to base_layout; it
    grows upwards, into the title)."""
    names = []
    for t in traces:
        name = t.name
        if name and t.showlegend is not False and t.type in ("scatter", "bar"):
            if len(name) > LEGEND_CHARS * width // NARROW_PX:
                t.name = name = wrap(name, LEGEND_CHARS * width // NARROW_PX)
            names.append(name)
    legend = layout.get("legend") or {}
    shown = layout.get("showlegend", len(names) > 1)
    above = legend.get("yanchor") == "bottom" and legend.get("yref") != "container"
    if shown and above and legend.get("orientation") == "h" and layout.get("margin"):
        extra = max(0, legend_height(names, width) - LEGEND_LINE_PX)  # one row was allowed for
        layout = dict(layout, margin=dict(layout["margin"], t=layout["margin"]["t"] + extra),
                      height=layout["height"] + extra)
    return go.Figure(data=traces, layout=layout)


def finite(a) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    return a[np.isfinite(a)]


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


def rgba(hex_color: str, alpha: float) -> str:
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


