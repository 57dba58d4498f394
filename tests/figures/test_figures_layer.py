"""Figures and diagnosis helpers: pure functions, checked against closed forms."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from farms_viz.analyses import diagnosis
from farms_viz.core.fits import PowerLawFit, fit_power_law
from farms_viz.core.mp import MPFit, fit_mp, mp_edges
from farms_viz.core.spectra import window_grid
from farms_viz.errors import FarmsError
from farms_viz.figures import layer as figures
from farms_viz.figures import overview, style


def _table(n=6):
    rng = np.random.default_rng(0)
    rows = rng.integers(64, 512, n)
    cols = np.full(n, 64)
    return pd.DataFrame({
        "layer": [f"block.{i}.fc" for i in range(n)], "kind": ["linear"] * (n - 1) + ["conv2d"],
        "rows": rows, "cols": cols, "aspect_ratio": rows / cols,
        "alpha_raw": np.linspace(1.5, 7.0, n), "alpha_farms": np.linspace(2.5, 4.0, n),
    })


def _trace(fig, prefix):
    hits = [t for t in fig.data if (t.name or "").replace("<br>", " ").startswith(prefix)]  # long names wrap
    assert hits, f"no trace named {prefix!r} in {[t.name for t in fig.data]}"
    return hits[0]


# ---------------------------------------------------------------- diagnosis

@pytest.mark.parametrize("alpha,label", [(1.2, "over-trained"), (2.0, "well-trained"), (4, "well-trained"),
                                         (6.0, "well-trained"), (6.5, "under-trained"), (math.nan, "no fit")])
def test_label_follows_htsr_bands(alpha, label):
    assert diagnosis.label(alpha) == label


def test_diagnosis_table_lists_flips_first():
    t = pd.DataFrame({"layer": ["a", "b", "c"], "kind": "linear", "rows": [10, 40, 10], "cols": [10, 10, 10],
                      "aspect_ratio": [1, 4, 1], "alpha_raw": [3.0, 1.5, 7.0], "alpha_farms": [3.0, 2.5, 7.5]})
    d = diagnosis.diagnosis_table(t)
    assert list(d["layer"]) == ["b", "a", "c"]
    assert list(d["flipped"]) == [True, False, False]
    assert d.loc[0, "shape"] == "40 × 10"


def test_summary_counts_flips_and_spread():
    t = _table()
    s = diagnosis.summarize(t)
    assert s.n_layers == 6
    assert s.mean_raw == pytest.approx(t["alpha_raw"].mean())
    assert s.std_farms == pytest.approx(t["alpha_farms"].std(ddof=1))
    assert s.n_flipped == int((diagnosis.diagnosis_table(t)["flipped"]).sum()) > 0


def test_filter_layers_regex_and_kinds():
    t = _table()
    assert len(diagnosis.filter_layers(t, r"block\.[0-2]\.")) == 3
    assert list(diagnosis.filter_layers(t, "", ["conv2d"])["layer"]) == ["block.5.fc"]
    with pytest.raises(FarmsError, match="not a valid regular expression"):
        diagnosis.filter_layers(t, "block[")


# ---------------------------------------------------------------- overview figures

def test_alpha_bars_grouped_named_in_model_order_with_bands():
    t = _table()
    fig = overview.alpha_bars(t)
    assert isinstance(fig, go.Figure) and fig.layout.barmode == "group"
    raw, farms = _trace(fig, "α raw"), _trace(fig, "α FARMS")
    assert raw.marker.color == style.RAW_COLOR and farms.marker.color == style.FARMS_COLOR
    assert list(raw.y) == list(t["layer"]) and fig.layout.yaxis.autorange == "reversed"
    assert raw.customdata[0][0] == "block.0.fc"  # layer name for click-through
    bands = {s.name: (s.x0, s.x1) for s in fig.layout.shapes}
    assert bands["over-trained"] == (0, 2) and bands["well-trained"] == (2, 6) and "under-trained" in bands
    texts = " ".join(a.text for a in fig.layout.annotations)
    assert "over-trained" in texts and "well-trained" in texts and "under-trained" in texts


def test_alpha_bars_stay_readable_for_many_layers():
    big = pd.concat([_table(6)] * 10, ignore_index=True)
    big["layer"] = [f"features.{i}.conv" for i in range(len(big))]
    fig = overview.alpha_bars(big)
    assert fig.layout.height >= 13 * len(big)  # every layer gets a row: no hidden ticks
    assert fig.layout.yaxis.tickfont.size >= 9


def test_alpha_vs_aspect_trend_recovers_slope():
    t = _table(8)
    t["alpha_raw"] = 2 + 1.5 * np.log10(t["aspect_ratio"])
    t["alpha_farms"] = 3.0
    fig = overview.alpha_vs_aspect(t)
    assert fig.layout.xaxis.type == "log"
    assert _trace(fig, "raw trend").name == "raw trend +1.50 per 10×<br>(95% CI +1.50 to +1.50)"  # wrapped
    assert _trace(fig, "FARMS trend").name.replace("<br>", " ").startswith("FARMS trend +0.00 ")
    assert _trace(fig, "α raw").customdata[3][0] == t.loc[3, "layer"]


# ---------------------------------------------------------------- layer figures

def _noise(n=600, m=200, seed=0):
    w = np.random.default_rng(seed).standard_normal((n, m)) / math.sqrt(n)
    return np.linalg.eigvalsh(w.T @ w)


@pytest.mark.parametrize("log_x", [False, True])
def test_histogram_density_integrates_to_one(log_x):
    e = _noise()
    edges, dens = style.histogram_density(e, bins=40, log_x=log_x)
    widths = np.diff(np.log10(edges)) if log_x else np.diff(edges)
    assert np.sum(dens * widths) == pytest.approx(1.0, abs=1e-9)
    assert dens.size == 40


@pytest.mark.parametrize("log_x", [False, True])
def test_mp_overlay_integrates_to_one_over_support(log_x):
    mp = MPFit(Q=3.0, scale=1.0, sigma=0.1, lambda_minus=mp_edges(3.0, 1.0)[0], lambda_plus=mp_edges(3.0, 1.0)[1],
               n_spikes=0)
    x, y = style.mp_curve(mp, log_x, n=20000)
    u = np.log10(x) if log_x else x
    assert np.trapezoid(y, u) == pytest.approx(1.0, abs=5e-3)
    assert x[0] == pytest.approx(mp.lambda_minus) and x[-1] == pytest.approx(mp.lambda_plus)


def test_esd_histogram_marks_mp_edge_and_spikes():
    e = _noise()
    e = np.sort(np.append(e, [30.0, 50.0]))  # two planted spikes
    mp = fit_mp(e, 600, 200)
    fig = figures.esd_histogram(e, mp, "farms", log_x=True)
    assert mp.n_spikes == 2
    assert _trace(fig, "ESD FARMS").line.color == style.FARMS_COLOR
    assert "Marchenko–Pastur" in _trace(fig, "Marchenko").name
    edge = _trace(fig, "bulk edge λ+")
    assert edge.x[0] == pytest.approx(mp.lambda_plus)
    assert sorted(_trace(fig, "spikes above λ+ (2)").x) == [30.0, 50.0]
    assert fig.layout.xaxis.type == "log"
    lin = figures.esd_histogram(e, mp, "raw", log_x=False)
    assert lin.layout.xaxis.type == "linear" and _trace(lin, "ESD raw").line.color == style.RAW_COLOR


def test_mp_overlay_matches_noise_histogram():
    e = _noise(2000, 500)
    mp = fit_mp(e, 2000, 500)
    edges, dens = style.histogram_density(e, bins=30, log_x=False)
    centers = (edges[:-1] + edges[1:]) / 2
    from farms_viz.core.mp import mp_density
    inner = (centers > mp.lambda_minus * 1.1) & (centers < mp.lambda_plus * 0.9)
    assert np.allclose(dens[inner], mp_density(centers[inner], mp.Q, mp.scale), rtol=0.2)


def test_tail_line_has_slope_one_minus_alpha_on_ccdf():
    rng = np.random.default_rng(1)
    e = (1 - rng.random(3000)) ** (-1 / 1.5)  # Pareto, alpha = 2.5
    fit = fit_power_law(e, "xmin_mid", 2.0)
    fig = figures.tail_ccdf(e, fit, "raw")
    line = _trace(fig, "power law")
    slope = np.polyfit(np.log10(line.x), np.log10(line.y), 1)[0]
    assert slope == pytest.approx(1 - fit.alpha, rel=1e-9)
    assert fit.alpha == pytest.approx(2.5, abs=0.2)
    assert f"α = {fit.alpha:.2f}" in line.name and "D = " in line.name
    assert _trace(fig, "xmin").x[0] == pytest.approx(fit.xmin)
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log"
    # the line starts on the empirical CCDF at xmin
    assert line.y[0] == pytest.approx(fit.n_tail / fit.n_eigs)


def test_ccdf_is_downsampled_but_keeps_the_extremes():
    e = np.sort(np.random.default_rng(2).pareto(2.0, 50_000) + 1)
    x, y = style.ccdf_points(e)
    assert len(x) <= style.MAX_CCDF_POINTS
    assert x[0] == e[0] and x[-1] == e[-1] and y[0] == 1.0 and y[-1] == pytest.approx(1 / e.size)
    assert np.all(np.diff(x) >= 0) and np.all(np.diff(y) < 0)


def test_tail_without_fit_says_why():
    fig = figures.tail_ccdf(np.array([1.0, 2.0]), PowerLawFit.failed("xmin_peak", 2, "too few eigenvalues"), "raw")
    assert "too few eigenvalues" in fig.layout.annotations[0].text


def _outlined(fig):
    """The windows drawn in full: traces whose meta names a window."""
    return [t for t in fig.data if isinstance(t.meta, dict) and "window" in t.meta]


def _by_meta(fig, meta):
    (t,) = [t for t in fig.data if t.meta == meta]
    return t


def test_window_grid_draws_windows_in_matrix_coordinates():
    g = window_grid(1536, 384, 2000, 1.0, 15)  # 15 windows of 384 x 384 down a tall matrix, row step 82
    thumb = np.random.default_rng(0).random((160, 160))
    fig = figures.window_grid_figure(thumb, g)
    for t in _outlined(fig):
        (r0, r1), (c0, c1) = t.meta["rows"], t.meta["cols"]
        assert (min(t.x), max(t.x), min(t.y), max(t.y)) == (c0, c1 + 1, r0, r1 + 1)  # one closed rectangle
        assert (r1 - r0 + 1, c1 - c0 + 1) == (g.h, g.w) and r1 < 1536 and c1 < 384
    heat = _by_meta(fig, "|W|")
    assert heat.x[-1] < 384 and heat.y[-1] < 1536  # thumbnail stretched over the matrix
    assert fig.layout.yaxis.scaleanchor == "x" and fig.layout.yaxis.scaleratio == 1  # 4:1 is drawn true to shape
    assert "15" in diagnosis.grid_caption(g) and "384 × 384" in diagnosis.grid_caption(g)


def test_window_grid_outlines_at_most_nine_distinct_windows_and_the_rest_on_demand():
    g = window_grid(4096, 11008, 2000, 1.0, 15)  # llama's MLP: 15 x 15 = 225 windows
    fig = figures.window_grid_figure(None, g)
    shown = _outlined(fig)
    assert len(shown) == 9 <= figures.MAX_OUTLINES  # 3 x 3: rows of windows 149 apart would crowd past 3
    assert len({t.line.color for t in shown}) == 9  # each its own colour
    assert {t.meta["window"] for t in shown} >= {1, 225}  # both corners of the grid
    assert sum(t.showlegend is not False for t in shown) == 1  # one legend entry toggles them together
    every = _by_meta(fig, "all windows")
    assert every.visible == "legendonly" and every.name == "all 225"
    assert int(np.isnan(np.asarray(every.x, dtype=float)).sum()) == 225  # one rectangle each
    few = figures.window_grid_figure(None, window_grid(60, 20, 10, 1.0, 3))  # 3 x 3 = 9 windows: all drawn
    assert len(_outlined(few)) == 9 and not [t for t in few.data if t.meta == "all windows"]


def test_overlapping_windows_are_outlined_at_least_half_a_window_apart():
    g = window_grid(384, 1536, 2000, 1.0, 15)  # 15 windows of 384 x 384, 82 columns apart
    starts = sorted(t.meta["cols"][0] for t in _outlined(figures.window_grid_figure(None, g)))
    assert starts[0] == 0 and starts[-1] == g.col_starts[-1]
    assert min(np.diff(starts)) >= 384 / 2 and len(starts) == 5  # 6 evenly chosen would be 164 apart


def test_window_hover_gives_rows_and_columns():
    g = window_grid(384, 1536, 2000, 1.0, 15)  # col step (1536 - 384) // 14 = 82
    fig = figures.window_grid_figure(None, g)
    centres = _by_meta(fig, "window centres")
    cd = np.asarray(centres.customdata)
    assert cd.shape == (15, 5)
    assert list(cd[1]) == [2, 0, 383, 82, 465]  # window 2: rows 0-383, columns 82-465
    assert list(cd[-1]) == [15, 0, 383, 1148, 1531]  # 14 steps of 82: the release leaves 4 columns out
    assert "of 15" in centres.hovertemplate and "rows %{customdata[1]}–%{customdata[2]}" in centres.hovertemplate
    np.testing.assert_allclose(centres.x, cd[:, 3] + 192)  # dots at the windows' centres
    texts = {t.text for t in _outlined(fig)}
    assert "window 1 of 15: rows 0–383, columns 0–383" in texts
    assert "window 15 of 15: rows 0–383, columns 1148–1531" in texts


@pytest.mark.parametrize("n_r,n_c,rows,cols", [(15, 15, [0, 7, 14], [0, 7, 14]), (15, 1, [0, 2, 4, 5, 7, 9, 10, 12, 14], [0]),
                                               (15, 2, [0, 5, 9, 14], [0, 1]), (2, 2, [0, 1], [0, 1]), (1, 1, [0], [0])])
def test_shown_windows_spread_evenly_with_both_ends(n_r, n_c, rows, cols):
    assert figures.shown_windows(n_r, n_c) == (rows, cols)


def test_axis_ticks_are_whole_numbers_never_closer_than_their_labels():
    assert figures.axis_ticks(9, 105, 32) == [0, 5, 9]  # 9 columns on a 105 px axis: not 0 2 4 6 8
    assert figures.axis_ticks(1, 100, 40) == [0, 1]
    for n, px, gap in [(11008, 400, 64), (1536, 420, 40), (144, 420, 40), (4096, 400, 56), (7, 300, 40)]:
        ticks = figures.axis_ticks(n, px, gap)
        assert ticks[0] == 0 and ticks[-1] <= n and all(isinstance(v, int) for v in ticks)
        assert min(np.diff(ticks)) * px / n >= gap  # labels never collide
        assert len(ticks) >= 2


@pytest.mark.parametrize("rows,cols,note", [(144, 9, "columns drawn 4× wider"), (1, 4096, "rows drawn 1024× taller"),
                                            (384, 1536, None), (4096, 11008, None)])
def test_window_grid_draws_long_matrices_stretched_and_says_so(rows, cols, note):
    fig = figures.window_grid_figure(np.ones((min(rows, 96), min(cols, 96))), window_grid(rows, cols, 100, 1.0, 9))
    drawn = rows * fig.layout.yaxis.scaleratio / cols  # the plot's height / width
    assert 1 / 4 - 1e-9 <= drawn <= 4 + 1e-9
    title = fig.layout.title.text.replace("<br>", " ")
    assert (note in title) if note else "drawn" not in title
    assert list(fig.layout.xaxis.tickvals)[-1] <= cols and list(fig.layout.yaxis.tickvals)[-1] <= rows


def test_figures_share_template_font_and_titles():
    t = _table()
    e = _noise()
    figs = [overview.alpha_bars(t), overview.alpha_vs_aspect(t), figures.esd_histogram(e, fit_mp(e, 600, 200)),
            figures.tail_ccdf(e, fit_power_law(e)), figures.window_grid_figure(None, window_grid(60, 20, 10, 1.0, 3))]
    for f in figs:
        assert f.layout.template.layout.plot_bgcolor == "white"
        assert f.layout.title.text and f.layout.xaxis.title.text
        assert f.layout.font.size >= 12


# ---------------------------------------------------------------- text that fits a 1024 px window

@pytest.mark.parametrize("text", ["ESD raw with Marchenko–Pastur fit", "raw trend +1.50 (95% CI +1.50 to +1.50) per 10×",
                                  "one window = whole matrix (Δ = 0 by construction)", "short", "a" * 40 + " b"])
def test_wrap_keeps_every_word_and_lines_within_the_width(text):
    out = style.wrap(text, 32)
    lines = out.split("<br>")
    assert " ".join(lines) == text  # nothing lost or reordered
    assert all(len(line) <= 32 for line in lines if " " in line)  # only a single long word may exceed
    assert len(lines) == (1 if len(text) <= 32 else 2)


def test_wrap_balances_lines_and_keeps_a_parenthesis_whole():
    assert style.wrap("ESD raw with Marchenko–Pastur fit", 32) == "ESD raw with<br>Marchenko–Pastur fit"  # no lone "fit"
    assert style.wrap("raw trend +1.50 (95% CI +1.50 to +1.50) per 10×", 32) == \
        "raw trend +1.50<br>(95% CI +1.50 to +1.50) per 10×"
    span = "<span style='font-size:12px'>minilm · encoder.layer.5.output.dense · fit xmin_peak</span>"
    assert all(p.startswith("<span") and p.endswith("</span>") for p in style.wrap(span, 32).split("<br>"))


def test_a_legend_above_the_plot_gets_room_for_its_rows_at_half_width():
    short = figures.esd_histogram(_noise(), fit_mp(_noise(), 600, 200), log_x=True)  # legend below: untouched
    lay = style.base_layout("t", 400)
    one = style.make_figure([go.Scatter(x=[1], y=[1], name="a"), go.Scatter(x=[1], y=[1], name="b")], dict(lay))
    names = [f"a long legend entry number {i}" for i in range(4)]
    many = style.make_figure([go.Scatter(x=[1], y=[1], name=n) for n in names], dict(lay))
    rows = style.legend_height(names) // style.LEGEND_LINE_PX
    assert rows == 4  # 44 + 6.6 * 28 px each: one entry per 250 px row
    assert many.layout.margin.t - one.layout.margin.t == (rows - 1) * style.LEGEND_LINE_PX
    wide = style.make_figure([go.Scatter(x=[1], y=[1], name=n) for n in names], dict(lay), width=style.WIDE_PX)
    assert wide.layout.margin.t - one.layout.margin.t == style.LEGEND_LINE_PX  # two per 540 px row
    assert short.layout.legend.yref == "container" and short.layout.legend.y == 0  # below: at the figure's foot


def test_titles_wrap_for_the_narrowest_width_the_figure_gets():
    title = "AlphaPruning: sparsity (fraction pruned) per layer, from raw vs FARMS α"
    assert style.base_layout(title, 400)["title"]["text"].count("<br>") >= 2
    assert style.base_layout(title, 400, width=style.WIDE_PX)["title"]["text"].count("<br>") == 1
    lay = style.base_layout("x", 400, xaxis=dict(title=dict(text="aspect ratio (long / short side, log scale)")))
    assert lay["xaxis"]["title"]["text"] == "aspect ratio<br>(long / short side, log scale)"
