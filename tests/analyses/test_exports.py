"""One layer's exports (analyses/exports.py): its eigenvalues and its numbers card."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from farms_viz import analyze
from farms_viz.analyses.diagnosis import layer_numbers
from farms_viz.analyses.exports import esd_table, layer_numbers_table
from farms_viz.core.spectra import window_grid


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
