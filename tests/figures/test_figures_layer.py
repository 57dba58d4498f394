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
    hits = [t for t in fig.data if (t.name or "").startswith(prefix)]
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
    assert "raw trend +1.50 (95% CI +1.50 to +1.50) per 10×" == _trace(fig, "raw trend").name
    assert _trace(fig, "FARMS trend").name.startswith("FARMS trend +0.00 ")
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


def test_window_grid_draws_every_window_in_matrix_coordinates():
    g = window_grid(1536, 384, 2000, 1.0, 15)
    thumb = np.random.default_rng(0).random((160, 160))
    fig = figures.window_grid_figure(thumb, g)
    outline = _trace(fig, "FARMS window")
    xs, ys = list(outline.x), list(outline.y)
    assert xs.count(None) == g.n_windows  # one closed rectangle per window
    last_x, last_y = xs[-6:-1], ys[-6:-1]
    assert (max(last_x) - min(last_x), max(last_y) - min(last_y)) == (g.w, g.h)
    assert max(y for y in ys if y is not None) <= 1536 and max(x for x in xs if x is not None) <= 384
    heat = _trace(fig, "|W|")
    assert heat.x[-1] < 384 and heat.y[-1] < 1536  # thumbnail stretched over the matrix
    assert fig.layout.yaxis.scaleanchor == "x"
    assert "15" in diagnosis.grid_caption(g) and "384 × 384" in diagnosis.grid_caption(g)


def test_figures_share_template_font_and_titles():
    t = _table()
    e = _noise()
    figs = [overview.alpha_bars(t), overview.alpha_vs_aspect(t), figures.esd_histogram(e, fit_mp(e, 600, 200)),
            figures.tail_ccdf(e, fit_power_law(e)), figures.window_grid_figure(None, window_grid(60, 20, 10, 1.0, 3))]
    for f in figs:
        assert f.layout.template.layout.plot_bgcolor == "white"
        assert f.layout.title.text and f.layout.xaxis.title.text
        assert f.layout.font.size >= 12
