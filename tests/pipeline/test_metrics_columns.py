"""WeightWatcher's metric set as report columns, raw and FARMS (pipeline.metrics)."""

import numpy as np
import pytest
import torch
from torch import nn

from farms_viz import analyze
from farms_viz.core.metrics import log_norm
from farms_viz.pipeline.metrics import METRICS, RAW_ONLY


def _linear(rows, cols, seed=0, planted=None):
    torch.manual_seed(seed)
    m = nn.Linear(cols, rows, bias=False)
    with torch.no_grad():
        m.weight.normal_(0, 1 / np.sqrt(rows))
        if planted is not None:
            m.weight[planted] = 40.0
    return nn.Sequential(m)


def test_every_metric_has_a_raw_and_a_farms_column():
    t = analyze(_linear(200, 100), window=50, ops=3, cache=False).table
    for m in METRICS:
        assert f"{m}_raw" in t and f"{m}_farms" in t
        assert np.isfinite(t[f"{m}_raw"]).all(), m
        assert np.isnan(t[f"{m}_farms"]).all() == (m in RAW_ONLY), m


def test_log_norm_is_the_log_of_the_frobenius_norm_squared():
    model = _linear(120, 80)
    rep = analyze(model, cache=False)
    w = model[0].weight.detach().double()
    assert rep.table["log_norm_raw"][0] == pytest.approx(np.log10(float((w ** 2).sum())), rel=1e-6)
    spec = next(iter(rep.spectra.values()))
    assert rep.table["log_norm_farms"][0] == pytest.approx(log_norm(spec.esd_farms), rel=1e-12)


def test_one_window_over_the_whole_matrix_gives_farms_equal_raw():
    t = analyze(_linear(150, 150), window=400, cache=False).table  # square, window capped to the matrix
    for m in ("log_norm", "log_spectral_norm", "alpha_weighted", "entropy", "detX_num", "mp_softrank",
              "rand_distance", "num_traps"):
        assert t[f"{m}_farms"][0] == pytest.approx(t[f"{m}_raw"][0], rel=1e-9), m


def test_a_planted_large_entry_is_one_trap_and_the_seed_reproduces_it():
    t = analyze(_linear(300, 150, planted=(17, 42)), cache=False, seed=3).table
    assert t["num_traps_raw"][0] == 1
    again = analyze(_linear(300, 150, planted=(17, 42)), cache=False, seed=3).table
    other = analyze(_linear(300, 150, planted=(17, 42)), cache=False, seed=4).table
    assert again["rand_distance_raw"][0] == t["rand_distance_raw"][0]
    assert other["rand_distance_raw"][0] != t["rand_distance_raw"][0]
    clean = analyze(_linear(300, 150), cache=False, seed=3).table
    assert clean["num_traps_raw"][0] == 0


def test_randomize_off_leaves_the_rand_columns_empty_and_no_randomized_spectra():
    rep = analyze(_linear(120, 60), randomize=False, cache=False)
    assert np.isnan(rep.table["num_traps_raw"][0]) and np.isfinite(rep.table["log_norm_raw"][0])
    spec = next(iter(rep.spectra.values()))
    assert spec.rand("raw") is None and spec.rand("farms") is None


def test_summary_means_match_the_table_and_the_changeable_subset():
    model = nn.Sequential(nn.Linear(64, 64), nn.Linear(64, 256), nn.Linear(256, 64))
    rep = analyze(model, window=128, cache=False)
    s = rep.summary().set_index("metric")
    t = rep.table
    assert s.loc["log_norm", "raw"] == pytest.approx(t["log_norm_raw"].mean())
    assert s.loc["alpha", "farms_changeable"] == pytest.approx(t["alpha_farms"][1:].mean())  # 64 x 64 is one window
    assert (s["n_changeable"] == 2).all() and (s["n_layers"] == 3).all()


def test_randomized_spectra_survive_the_disk_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FARMS_VIZ_CACHE", str(tmp_path))
    a = analyze(_linear(200, 100), window=50, ops=3)
    b = analyze(_linear(200, 100), window=50, ops=3)
    sa, sb = (next(iter(r.spectra.values())) for r in (a, b))
    for which in ("raw", "farms"):
        np.testing.assert_array_equal(sa.rand(which).esd, sb.rand(which).esd)
        assert sa.rand(which).spike_edge == sb.rand(which).spike_edge
    cols = [c for c in a.table.columns if c not in ("seconds",)]
    assert a.table[cols].equals(b.table[cols])
