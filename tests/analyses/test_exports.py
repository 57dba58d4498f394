"""The exports (analyses/exports.py): a layer's eigenvalues and numbers card, the Lab's sweep."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from farms_viz import analyze
from farms_viz.analyses import lab
from farms_viz.analyses.diagnosis import layer_numbers
from farms_viz.analyses.exports import esd_table, layer_numbers_table, sweep_table
from farms_viz.core.spectra import window_grid
from farms_viz.settings import Settings


@pytest.fixture(scope="module")
def layer():
    torch.set_num_threads(1)
    w = torch.randn(96, 32, generator=torch.Generator().manual_seed(3))
    report = analyze({"fc.weight": w}, window=16, ops=3, cache=False)
    return w, report.spectra["fc"], report.table.iloc[0]


def test_esd_table_holds_both_sides_in_order(layer):
    w, spec, _ = layer
    t = esd_table(spec)
    assert list(t.columns) == ["side", "eigenvalue"]
    raw, farms = t[t["side"] == "raw"], t[t["side"] == "farms"]
    assert t["side"].tolist() == ["raw"] * len(raw) + ["farms"] * len(farms)
    # raw: the 32 eigenvalues of W^T W (an independent float64 solve)
    x = w.double().numpy()
    ref = np.linalg.eigvalsh(x.T @ x)
    np.testing.assert_allclose(raw["eigenvalue"].to_numpy(), ref, rtol=1e-4)
    # FARMS: 3 x 3 windows of 16 x 16, 16 eigenvalues each, pooled (the grid's own count)
    g = window_grid(96, 32, 16, 1.0, 3)
    assert len(farms) == g.n_windows * min(g.h, g.w) == 144
    np.testing.assert_array_equal(farms["eigenvalue"].to_numpy(), spec.side("farms").esd)
    assert np.all(np.diff(raw["eigenvalue"].to_numpy()) >= 0)


def test_layer_numbers_table_is_the_card_of_both_sides(layer):
    _, spec, row = layer
    t = layer_numbers_table(spec, row)
    assert list(t.columns) == ["quantity", "raw", "farms"]
    raw, farms = layer_numbers(spec, row, "raw"), layer_numbers(spec, row, "farms")
    by = t.set_index("quantity")
    for k, v in raw.items():
        assert by.loc[k, "raw"] == v
    for k, v in farms.items():
        assert by.loc[k, "farms"] == v
    # a quantity only one side has is empty on the other
    assert by.loc["spikes above λ+", "farms"] == "" and by.loc["spikes above λ+ per window", "raw"] == ""
    assert t["quantity"].tolist()[:len(raw)] == list(raw)
    assert by.loc["alpha", "raw"] == f"{row['alpha_raw']:.3f}".rstrip("0").rstrip(".")


def test_sweep_table_puts_each_matrix_on_its_own_row():
    """Each row's alphas are those of its (rows, cols, seed) matrix analysed alone with the sweep's window."""
    torch.set_num_threads(1)
    spec = lab.MatrixSpec(rows=16, cols=16, dist="gaussian", seed=4)
    res = lab.sweep(spec, mode="short", size=16, ratios=(1.0, 2.0, 4.0), n_seeds=2, per_dim=3, fit="xmin_mid")
    t = sweep_table(res)
    assert list(t.columns) == ["aspect_ratio", "rows", "cols", "seed", "window", "alpha_raw", "alpha_farms"]
    assert t[["rows", "cols", "seed"]].values.tolist() == [[16, 16, 4], [16, 16, 5], [32, 16, 4], [32, 16, 5],
                                                          [64, 16, 4], [64, 16, 5]]
    np.testing.assert_array_equal(t["aspect_ratio"], [1, 1, 2, 2, 4, 4])
    settings = Settings(fit="xmin_mid", window=res.window, q=1.0, ops=3)
    for _, r in t.iterrows():
        _, sp = lab.analyze_matrix(lab.make_matrix(spec.replace(rows=int(r["rows"]), seed=int(r["seed"]))), settings)
        assert r["alpha_raw"] == sp.fit_raw.alpha and r["alpha_farms"] == sp.fit_farms.alpha
