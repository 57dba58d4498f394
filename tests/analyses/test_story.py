"""What FARMS changes, in words from the numbers (analyses.story) and the trust marks (diagnosis)."""

import numpy as np
import pandas as pd

from farms_viz import analyze
from farms_viz.analyses.diagnosis import blocks_mask, diagnosis_table, rough_fits, rough_note
from farms_viz.analyses.story import coverage, most_moved_layer, story, whole_matrix_window
from farms_viz.settings import Settings
from farms_viz.zoo.registry import published_table


def _table(shapes, raw, farms, window=None):
    rows = [{"layer": f"l{i}", "rows": r, "cols": c, "aspect_ratio": max(r, c) / min(r, c),
             "alpha_raw": a, "alpha_farms": b} for i, ((r, c), a, b) in enumerate(zip(shapes, raw, farms))]
    t = pd.DataFrame(rows)
    if window is not None:
        t["window_rows"] = [min(window, min(r, c)) for r, c in shapes]
        t["window_cols"] = t["window_rows"]
    return t


def test_square_layers_within_one_window_cannot_change():
    s = Settings(window=400)
    t = _table([(384, 384), (384, 1536), (800, 800), (384, 384)], [3, 3, 3, 3], [3, 2.5, 3.2, 3], window=400)
    np.testing.assert_array_equal(whole_matrix_window(t, s), [True, False, False, True])
    cov = coverage(t, s)
    assert (cov.n_changeable, cov.n_whole, cov.n_square_whole, cov.n_identical) == (2, 2, 2, 2)
    assert cov.max_shift_layer == "l1" and cov.max_shift == 0.5
    assert most_moved_layer(t) == "l1" and most_moved_layer(t, ["l0", "l2"]) == "l2"


def test_published_tables_use_the_settings_windows():
    t = published_table()
    assert not whole_matrix_window(t, Settings(window=2000)).any()  # 4096 and 11008 sides > 2000
    assert whole_matrix_window(t, Settings(window=5000))[t["rows"] == t["cols"]].all()


def test_minilm_story_says_why_the_effect_is_small():
    rep = analyze("minilm")
    st = story(rep.table, rep.settings)
    text = " ".join(st.sentences)
    assert "FARMS can change 12 of 37 layers" in text
    assert "25 are square and within one window: raw = FARMS by construction" in text
    assert st.small and "The effect is small here" in text and "xmin_mid" in text
    assert any(m.scheme == "AlphaPruning" for m in st.moves)
    mid = analyze("minilm", fit="xmin_mid")
    st_mid = story(mid.table, mid.settings)
    assert st_mid.trend.farms_changes_trend and not st_mid.small  # the xmin_mid rule shows the bias


def test_rough_fits_mark_few_eigenvalues_and_short_tails():
    assert rough_note(9, 5) == "9 eigenvalues"
    assert rough_note(384, 6) == "a tail of 6"
    assert rough_note(384, 121) == ""
    assert rough_note(1296, 700, n_fits=144) == "9 eigenvalues per block"


def test_mobilenet_depthwise_layers_are_marked_rough():
    rep = analyze("mobilenet-v2", preset="cnn")
    t = rep.table
    rough = rough_fits(t, blocks_mask(t, rep.settings))
    dw = (t["kind"] == "conv2d_depthwise").to_numpy()
    assert dw.sum() == 17 and (rough["rough_raw"][dw] != "").all()
    d = diagnosis_table(t, blocks_mask(t, rep.settings)).set_index("layer")
    small = t[(t["kind"] == "conv2d_depthwise") & (t["n_eigs_raw"] < 50)]["layer"]
    assert all(d.loc[n, "trust"].startswith("⚠ few eigenvalues") for n in small)
    big = t[(t["n_eigs_raw"] >= 400) & (t["n_tail_raw"] >= 10) & (t["kind"] == "linear")]["layer"]
    assert all(d.loc[n, "trust"] == "" or "FARMS" in d.loc[n, "trust"] for n in big)
