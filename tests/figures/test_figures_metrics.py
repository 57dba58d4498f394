"""The metrics beyond alpha in the figures: the randomized ESD and traps, trap entries on |W|, any
metric in the overview's bars and aspect-ratio plot."""

from __future__ import annotations

import numpy as np
import pytest

from farms_viz.core.mp import fit_mp, fit_mp_kde
from farms_viz.core.randomize import randomized_esd, trap_entries
from farms_viz.core.spectra import window_grid
from farms_viz.figures import layer as figures
from farms_viz.pipeline.metrics import RandSide


def _by_meta(fig, meta):
    hits = [t for t in fig.data if t.meta == meta]
    assert hits, f"no trace with meta {meta!r} in {[t.meta for t in fig.data]}"
    return hits[0]


def _planted(rows=128, cols=256, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((rows, cols)) / np.sqrt(cols)
    w[10, 20] = 30.0
    return w


def _rand_side(w):
    r = randomized_esd(w, 0)
    f = fit_mp_kde(r.esd, max(w.shape), min(w.shape))
    return RandSide(r.esd, f.bulk_max, f.spike_edge, int(max(f.num_spikes, 0)))


def test_randomized_esd_outline_edges_and_the_planted_trap():
    w = _planted()
    e = np.sort(np.linalg.eigvalsh(w.T @ w if w.shape[0] >= w.shape[1] else w @ w.T))
    rand = _rand_side(w)
    assert rand.n_traps == 1  # one huge entry: one eigenvalue ~ 30^2 beyond the bulk
    fig = figures.esd_histogram(e, fit_mp(e, 256, 128), "raw", rand=rand)
    outline = _by_meta(fig, "randomized ESD")
    assert outline.name.replace("<br>", " ") == "randomized ESD (128 eigenvalues)" and outline.fill is None  # wraps
    assert _by_meta(fig, "randomized bulk edge").x[0] == rand.bulk_max
    assert _by_meta(fig, "trap threshold").x[0] == rand.spike_edge
    traps = _by_meta(fig, "traps")
    assert len(traps.x) == 1 and traps.x[0] > 800 and traps.name == "correlation traps (1)"
    # without a randomized side none of these is drawn
    plain = figures.esd_histogram(e, fit_mp(e, 256, 128), "raw")
    assert not [t for t in plain.data if t.meta in ("randomized ESD", "traps", "trap threshold")]


def test_no_trap_marker_when_the_randomized_esd_stays_inside_its_edge():
    rng = np.random.default_rng(1)
    w = rng.standard_normal((128, 256)) / 16
    e = np.sort(np.linalg.eigvalsh(w @ w.T))
    rand = _rand_side(w)
    fig = figures.esd_histogram(e, fit_mp(e, 256, 128), "raw", rand=rand)
    assert rand.n_traps == 0 and not [t for t in fig.data if t.meta == "traps"]
    assert _by_meta(fig, "randomized ESD")


def test_trap_entries_ringed_on_the_picture_at_their_position():
    w = _planted()
    found = trap_entries(w, 0)
    assert found.cleared and found.positions.tolist() == [[10, 20]]
    fig = figures.window_grid_figure(np.abs(w), window_grid(128, 256, 64, 1.0, 2), traps=found.positions)
    ring = _by_meta(fig, "trap entries")
    assert (ring.x[0], ring.y[0]) == (20.5, 10.5) and ring.name == "trap entries (1)"
    assert "slice" not in ring.hovertemplate
    assert not [t for t in figures.window_grid_figure(np.abs(w), window_grid(128, 256, 64, 1.0, 2)).data
                if t.meta == "trap entries"]


def _metric_table():
    import pandas as pd

    return pd.DataFrame({
        "layer": [f"blocks.{b}.{r}" for b in range(4) for r in ("q", "k")], "kind": "linear",
        "rows": [64, 256] * 4, "cols": [64, 64] * 4, "aspect_ratio": [1.0, 4.0] * 4,
        "alpha_raw": np.linspace(2, 5, 8), "alpha_farms": np.linspace(2.5, 4, 8),
        "log_norm_raw": np.linspace(-1.5, 1.0, 8), "log_norm_farms": np.linspace(0.5, 0.8, 8),
    })


def test_overview_figures_show_the_chosen_metric_without_alpha_bands():
    from farms_viz.figures import overview

    t = _metric_table()
    bars = overview.alpha_bars(t, metric="log_norm")
    raw = _by_meta(bars, "log_norm_raw")
    assert raw.name == "log_norm raw" and np.allclose(raw.x, t["log_norm_raw"])
    assert np.allclose(_by_meta(bars, "log_norm_farms").x, t["log_norm_farms"])
    assert "log_norm raw %{customdata[3]:.4g}" in raw.hovertemplate and np.allclose(
        raw.customdata[:, 3].astype(float), t["log_norm_raw"])
    assert not bars.layout.shapes and "log_norm" in bars.layout.xaxis.title.text
    lo, hi = bars.layout.xaxis.range
    assert lo < -1.5 and hi > 1.0  # a negative log_norm is inside the axis
    alpha = overview.alpha_bars(t)
    assert _by_meta(alpha, "alpha_raw").name == "α raw" and len(alpha.layout.shapes) == 3  # the bands
    scat = overview.alpha_vs_aspect(t, metric="log_norm")
    assert np.allclose(_by_meta(scat, "log_norm_farms").y, t["log_norm_farms"])
    assert scat.layout.yaxis.title.text == "log_norm" and not scat.layout.shapes
    lo, hi = scat.layout.yaxis.range
    assert lo < -1.5 and hi > 1.0  # the values' span, not the aspect-ratio axis's
    blocks = overview.alpha_by_block(t, metric="log_norm")
    assert {tr.meta for tr in blocks.data} == {"log_norm_raw", "log_norm_farms"}
    assert not [s for s in blocks.layout.shapes if s.type == "line"]  # no alpha band edges


def test_compare_and_series_carry_the_chosen_metric():
    from farms_viz.analyses.compare import compare_tables, series_long, series_mean
    from farms_viz.figures import compare as fc

    a, b = _metric_table(), _metric_table()
    b["log_norm_raw"] = a["log_norm_raw"] + 0.25
    b["log_norm_farms"] = a["log_norm_farms"] - 0.5
    cmp = compare_tables(a.assign(status="ok"), b.assign(status="ok"), metric="log_norm")
    assert np.allclose(cmp["delta_log_norm_raw"], 0.25) and np.allclose(cmp["delta_log_norm_farms"], -0.5)
    assert np.allclose(cmp["log_norm_farms_b"], b["log_norm_farms"])
    assert "log_norm_raw_a" not in compare_tables(a.assign(status="ok"), b.assign(status="ok"))
    bars = fc.delta_bars(cmp, metric="log_norm")
    assert np.allclose(_by_meta(bars, "delta_log_norm_farms").x, -0.5)
    assert _by_meta(bars, "delta_log_norm_raw").name == "Δlog_norm raw"
    sc = fc.alpha_scatter(cmp, metric="log_norm")
    assert np.allclose(_by_meta(sc, "log_norm_raw").y, b["log_norm_raw"]) and sc.layout.xaxis.range[0] < -1.5
    long = series_long([("step 0", a.assign(status="ok")), ("step 1", b.assign(status="ok"))], "log_norm")
    mean = series_mean(long, "log_norm")
    assert np.allclose(mean["mean_farms"], [a["log_norm_farms"].mean(), b["log_norm_farms"].mean()])
    lines = fc.series_lines(long, metric="log_norm")
    assert {t.meta for t in lines.data} == {"log_norm_raw", "log_norm_farms"}
    heat = fc.series_heatmap(long, metric="log_norm")
    lowest = min(t[c].min() for t in (a, b) for c in ("log_norm_raw", "log_norm_farms"))
    assert _by_meta(heat, "log_norm_raw").zmin == pytest.approx(lowest) and not heat.layout.shapes
    assert "log_norm" in fc.series_mean_figure(mean, metric="log_norm").layout.yaxis.title.text
