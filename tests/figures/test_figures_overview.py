"""The Home and overview figures added for the story FARMS tells (traces found by name)."""

import numpy as np
import pandas as pd
import pytest

from farms_viz.analyses.diagnosis import rough_fits
from farms_viz.analyses.trend import trend_pair
from farms_viz.figures import home, overview
from farms_viz.zoo.registry import published_table


def _trace(fig, name):
    (t,) = [t for t in fig.data if t.name and t.name.replace("<br>", " ").startswith(name)]
    return t


def test_alpha_shift_bars_are_farms_minus_raw_and_grey_where_raw_equals_farms():
    t = pd.DataFrame({"layer": ["a", "b", "c"], "rows": [4, 8, 4], "cols": [4, 2, 4],
                      "alpha_raw": [3.0, 4.0, 2.0], "alpha_farms": [3.0, 3.5, 2.5]})
    fig = home.alpha_shift(t, np.array([True, False, False]))
    can, whole = _trace(fig, "FARMS can change"), _trace(fig, "one window")
    np.testing.assert_allclose(can.y, [-0.5, 0.5])
    assert list(can.customdata[:, 0]) == ["b", "c"] and list(whole.customdata[:, 0]) == ["a"]
    np.testing.assert_allclose(whole.y, [0.0])


def test_rule_trends_draws_each_rule_with_its_interval():
    rng = np.random.default_rng(0)
    ar = 10 ** rng.uniform(0, 1, 30)
    t = pd.DataFrame({"aspect_ratio": ar, "alpha_raw": 2 + np.log10(ar) + rng.normal(0, .1, 30),
                      "alpha_farms": 3 + rng.normal(0, .1, 30)})
    p = trend_pair(t)
    fig = overview.rule_trends({"xmin_peak": p, "ks": p})
    raw = _trace(fig, "raw slope")
    assert raw.y[0] == pytest.approx(p.raw.value)
    assert raw.error_y.array[0] == pytest.approx(p.raw.high - p.raw.value)
    assert raw.error_y.arrayminus[0] == pytest.approx(p.raw.value - p.raw.low)
    assert list(fig.layout.xaxis.ticktext) == ["xmin_peak", "ks"]


def test_long_models_get_one_panel_per_role_with_every_layer():
    t = published_table()
    assert overview.block_layout(t) == (list(range(32)), ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                                          "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj",
                                                          "mlp.down_proj"])
    fig = overview.alpha_by_block(t)
    names = {n for tr in fig.data for n in tr.customdata[:, 0]}
    assert names == set(t["layer"])
    assert fig.layout.height < 800  # not 4,700 px of bars
    short = t.head(3)
    assert overview.block_layout(short) is None
    with pytest.raises(ValueError):
        overview.alpha_by_block(short)


def test_rough_fits_are_hatched_bars_and_hollow_markers():
    t = pd.DataFrame({"layer": ["dw", "fc"], "kind": ["conv2d_depthwise", "linear"], "rows": [144, 512],
                      "cols": [1, 128], "aspect_ratio": [144.0, 4.0], "alpha_raw": [1.5, 3.0],
                      "alpha_farms": [1.6, 2.9], "n_eigs_raw": [9, 128], "n_tail_raw": [5, 60],
                      "n_eigs_farms": [9, 1920], "n_tail_farms": [5, 700]})
    rough = rough_fits(t)
    bars = overview.alpha_bars(t, rough=rough)
    assert list(_trace(bars, "α raw").marker.pattern.shape) == ["/", ""]
    scatter = overview.alpha_vs_aspect(t, rough=rough)
    assert list(_trace(scatter, "α raw").marker.symbol) == ["circle-open", "circle"]
    assert "rough fit" in _trace(scatter, "α raw").customdata[0, 5]
