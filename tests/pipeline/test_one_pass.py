"""One spectral pass (issue 24): every metric from the eigenvalues the analysis computes once, by the
alphas' torch route, checked against independent float64 numpy routes; bounded copies; WW's rule for
layers too small to analyse."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from farms_viz import analyze
from farms_viz.core import randomize as RZ
from farms_viz.pipeline.metrics import METRICS, WW_MIN_EVALS


def heavy(rows: int, cols: int, seed: int = 0, df: float = 3.0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy((rng.standard_t(df, (rows, cols)) / np.sqrt(rows)).astype(np.float32))


@pytest.mark.parametrize("shape", [(300, 120), (90, 200), (40, 12)])
def test_randomized_columns_equal_numpy_float64_shuffles_of_the_same_seed(shape):
    """The pipeline shuffles in place with numpy's Generator.shuffle and solves with torch; core.randomize
    draws the permutations and solves float64 Gram matrices in numpy: same seed, same numbers
    (40 x 12 has fewer than 100 eigenvalues: WW's five pooled shuffles)."""
    w = heavy(*shape)
    rep = analyze({"w.weight": w}, seed=7, fit="ks", cache=False)
    row, e = rep.table.iloc[0], rep.layer("w").esd_raw
    ref = RZ.randomized_metrics(w.double().numpy(), e, max(shape), min(shape), 7).columns()
    for m in ("rand_sigma_mp", "rand_bulk_max"):
        assert row[f"{m}_raw"] == pytest.approx(ref[m], rel=1e-6, abs=1e-12), m
    # the shuffled matrix's eigenvalues from a float32 Gram matrix (error ~eps32 * l_max each) against
    # float64: the distance weighs every eigenvalue, measured 2.5e-6 to 5e-6 relative here
    assert row["rand_distance_raw"] == pytest.approx(ref["rand_distance"], rel=1e-4)
    assert row["num_traps_raw"] == ref["num_traps"]


def test_singular_value_columns_equal_a_float64_svd():
    """sv_max, sv_min, rank_loss come from the Gram eigenvalues (an SVD only for near-singular slices):
    a rank-deficient layer (SVD route) and a well-conditioned one (Gram route) against numpy's SVD."""
    g = torch.Generator().manual_seed(0)
    low = torch.randn(200, 80, generator=g) / 50
    low[:, 30:] = 0  # exactly rank 30: 50 singular values are zero
    for name, w in {"low": low, "full": heavy(200, 80)}.items():
        row = analyze({f"{name}.weight": w}, cache=False, randomize=False).table.iloc[0]
        sv = np.linalg.svd(w.double().numpy(), compute_uv=False)
        assert row["sv_max_raw"] == pytest.approx(sv.max(), rel=1e-6)
        expected_loss = int(np.sum(sv <= sv.max() * 200 * np.finfo(np.float64).eps))
        assert row["rank_loss_raw"] == expected_loss
        if name == "full":
            assert row["sv_min_raw"] == pytest.approx(sv.min(), rel=1e-4)
        else:
            assert expected_loss == 50


def test_randomized_farms_side_of_a_whole_window_layer_is_its_raw_side():
    rep = analyze({"w.weight": heavy(30, 30)}, cache=False)  # 30 eigenvalues: five pooled shuffles
    t, spec = rep.table.iloc[0], rep.layer("w")
    for m in ("rand_sigma_mp", "rand_bulk_max", "rand_num_spikes", "rand_distance", "num_traps"):
        assert t[f"{m}_farms"] == t[f"{m}_raw"], m
    assert np.array_equal(spec.rand_farms.esd, spec.rand_raw.esd) and spec.rand_raw.esd.size == 5 * 30


def test_layers_with_fewer_eigenvalues_than_ww_analyses_get_no_metric_columns():
    small = analyze({"a.weight": heavy(3, 2), "b.weight": heavy(16, WW_MIN_EVALS)}, cache=False).table
    assert all(math.isnan(small[f"{m}_{s}"][0]) for m in METRICS for s in ("raw", "farms"))
    assert math.isfinite(small["log_norm_raw"][1]) and math.isfinite(small["rand_distance_raw"][1])


def test_the_callers_tensors_are_not_shuffled():
    w = heavy(120, 60)
    before = w.clone()
    analyze({"w.weight": w}, cache=False)
    module = torch.nn.Linear(60, 120, bias=False)
    with torch.no_grad():
        module.weight.copy_(before)
    analyze(torch.nn.Sequential(module), cache=False)
    assert torch.equal(w, before) and torch.equal(module.weight.detach(), before)


def test_a_file_source_gives_the_same_table_as_the_tensor_in_memory(tmp_path):
    """A tensor read from a file is the analysis' own (shuffled in place, no copy): same numbers."""
    from safetensors.torch import save_file

    tensors = {"w.weight": heavy(150, 60), "v.weight": heavy(64, 64, seed=1)}
    save_file(tensors, str(tmp_path / "m.safetensors"))
    a = analyze(tensors, cache=False).table.drop(columns="seconds")
    b = analyze(str(tmp_path / "m.safetensors"), cache=False).table.drop(columns="seconds")
    pd.testing.assert_frame_equal(a.set_index("layer").sort_index(), b.set_index("layer").sort_index())


def test_ww_mp_fit_residual_at_one_sigma_equals_the_vectorised_one():
    """fit_mp_kde's polish uses a one-sigma residual over the bulk only: the same sigma as WW's
    vectorised residual evaluated at every grid point (core.mp._mp_residual), to 1e-12."""
    from farms_viz.core import mp as MP

    rng = np.random.default_rng(0)
    for n, q in ((50, 2.0), (400, 4.0), (120, 1.0)):
        e = np.sort(rng.pareto(2.5, n) + 0.1)
        r = e * (n / e.sum())
        to_fit = np.sqrt(r) if q == 1 else r
        xde = np.linspace(0, to_fit.max() + 0.5, MP.KDE_POINTS)
        yde = MP.linear_kde(to_fit, xde, MP.KDE_BANDWIDTH)
        good = yde > MP.KDE_FLOOR
        xg, yg = xde[good], yde[good]
        peak = float(xg[MP.peak_index(yg)])
        for s in np.linspace(0.05, 3, 60):
            full = MP._mp_residual(xg, yg, q, np.array([s]))[0]
            assert MP.mp_residual_at(xg, yg, q, s, peak) == pytest.approx(full, rel=1e-12)
