"""farms-viz against independent transcriptions of the FARMS release and WeightWatcher 0.7.7.

tests/reference/release.py and tests/reference/ww.py were written from those projects' code
(not from farms-viz); benchmarks/fidelity.py runs the real code on whole models. Here: the same
eigenvalues give the same fit to 1e-6, and whole layers (Linear, Conv2d, depthwise) the same
alphas as the transcribed procedures.
"""

import math

import numpy as np
import pytest
import torch
from reference import release, ww

from farms_viz import analyze
from farms_viz.core.fits import fit_power_law
from farms_viz.core.spectra import esd


def spectra():
    """Seeded ESDs of the kinds the fits meet: MP bulks (tall, square), heavy tails, a bulk
    reaching far below 1 with its peak above 1 (the release's lower bound bites), tiny values."""
    g = torch.Generator().manual_seed(0)
    out = {
        "tall": esd(torch.randn(1, 600, 150, generator=g)),
        "square": esd(torch.randn(1, 200, 200, generator=g) / 14),
        "student_t": esd(torch.distributions.StudentT(2.5).sample((1, 400, 160))),
    }
    rng = np.random.default_rng(1)
    bulk = 5.0 * rng.lognormal(0, 1.2, 3000)
    tail = 20.0 * rng.random(300) ** (-1 / 1.5)
    out["bound_bites"] = np.sort(np.concatenate([bulk, tail]))
    out["tiny"] = np.sort(np.concatenate([[4.8e-9, 1e-7], out["bound_bites"][::7]]))
    return out


SPECTRA = spectra()


@pytest.mark.parametrize("name", sorted(SPECTRA))
@pytest.mark.parametrize("rule", ["xmin_peak", "xmin_mid"])
def test_same_eigenvalues_same_fit_as_the_release(name, rule):
    e = SPECTRA[name]
    ref = release.analysis_esd(e, fix_fingers=rule)
    fit = fit_power_law(e, rule)
    assert fit.alpha == pytest.approx(ref.alpha, rel=1e-6)
    assert fit.D == pytest.approx(ref.D, rel=1e-6)
    assert fit.xmin == pytest.approx(ref.xmin, rel=1e-12)


def test_the_release_bound_changes_alpha_on_a_spectrum_where_it_bites():
    """Guards the previous test: without the bound (or without tiny eigenvalues) alpha differs."""
    e = SPECTRA["bound_bites"]
    with_bound = fit_power_law(e, "xmin_peak").alpha
    no_bound = release.analysis_esd(e, fix_fingers=None).alpha  # every candidate
    assert abs(with_bound - no_bound) > 1e-3
    t = SPECTRA["tiny"]
    assert fit_power_law(t, "xmin_peak").alpha != pytest.approx(fit_power_law(t[2:], "xmin_peak").alpha, rel=1e-3)


@pytest.mark.parametrize("name", sorted(SPECTRA))
def test_same_eigenvalues_same_ks_fit_as_weightwatcher(name):
    e = SPECTRA[name]
    ref = ww.fit(e)
    fit = fit_power_law(e, "ks")
    assert fit.alpha == pytest.approx(ref.alpha, rel=1e-6)
    assert fit.xmin == pytest.approx(ref.xmin, rel=1e-12)
    assert fit.D == pytest.approx(ref.D, rel=1e-6)


@pytest.mark.parametrize("n", [6, 9, 12, 16, 19, 20, 25])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_weightwatcher_small_sample_estimator_below_20_eigenvalues(n, seed):
    rng = np.random.default_rng(seed)
    e = np.sort(rng.pareto(1.5, n) + 0.01 * (1 + rng.random(n)))
    ref, fit = ww.fit(e), fit_power_law(e, "ks")
    assert ref.small_n == (n < 20)
    assert fit.alpha == pytest.approx(ref.alpha, rel=1e-6)
    assert fit.xmin == pytest.approx(ref.xmin, rel=1e-12)


def small_model():
    """A conv + depthwise + 1x1 conv + linear model, seeded, heavy-ish tails."""
    torch.manual_seed(3)
    m = torch.nn.Sequential(
        torch.nn.Conv2d(3, 24, 3), torch.nn.Conv2d(24, 24, 3, groups=24), torch.nn.Conv2d(24, 96, 1),
        torch.nn.Conv2d(96, 40, 3), torch.nn.Flatten(), torch.nn.Linear(640, 160), torch.nn.Linear(160, 160))
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.distributions.StudentT(3.0).sample(p.shape) * 0.1)
    return m


@pytest.mark.parametrize("rule", ["xmin_peak", "xmin_mid"])
def test_whole_layers_equal_the_release_procedure(rule):
    m = small_model()
    weights = {n[: -len(".weight")]: p.detach().double().numpy() for n, p in m.named_parameters()
               if n.endswith(".weight")}
    settings = dict(fix_fingers=rule, num_row_samples=64, Q_ratio=1.0, sampling_ops_per_dim=4)
    raw = release.net_esd_estimator(weights, False, **settings)
    farms = release.net_esd_estimator(weights, True, **settings)
    t = analyze(m, fit=rule, window=64, q=1.0, ops=4, conv_rule="release", cache=False).table.set_index("layer")
    assert set(t.index) == set(weights)
    for name in weights:
        assert t.loc[name, "alpha_raw"] == pytest.approx(raw[name].alpha, rel=1e-5), name
        assert t.loc[name, "alpha_farms"] == pytest.approx(farms[name].alpha, rel=1e-5), name
        assert t.loc[name, "alpha_hat_farms"] == pytest.approx(farms[name].alpha_hat, rel=1e-5), name
    assert t.loc["1", "n_windows"] == 9 * 24  # depthwise: a 1 x 1 block per channel and kernel position


def test_ks_equals_weightwatcher_on_linear_conv_and_depthwise_layers():
    m = small_model()
    weights = {n[: -len(".weight")]: p.detach().numpy() for n, p in m.named_parameters() if n.endswith(".weight")}
    ref = ww.analyze(weights)
    t = analyze(m, fit="ks", window=64, ops=4, cache=False).table.set_index("layer")
    assert len(ref) >= 5  # WW skips only layers with fewer than 8 eigenvalues
    for name, f in ref.items():
        assert t.loc[name, "alpha_raw"] == pytest.approx(f.alpha, rel=1e-5), name


def test_conv_grid_rule_is_kept_as_a_named_option():
    m = small_model()
    rel = analyze(m, fit="xmin_mid", window=16, ops=3, cache=False).table.set_index("layer")
    grid = analyze(m, fit="xmin_mid", window=16, ops=3, conv_rule="grid", cache=False).table.set_index("layer")
    assert rel.loc["6", "alpha_farms"] == grid.loc["6", "alpha_farms"]  # linear layers: one rule
    assert rel.loc["3", "alpha_farms"] != pytest.approx(grid.loc["3", "alpha_farms"], rel=1e-3)
    # 40 x 96 slices: 96 // 40 = 2 blocks per kernel position, against a 3 x 3 window grid on each
    assert rel.loc["3", "n_windows"] == 2 * 9 and grid.loc["3", "n_windows"] == 3 * 3 * 9
    assert math.isfinite(grid.loc["3", "alpha_farms"])


def test_dead_depthwise_channels_are_left_out_of_the_block_mean():
    """A channel whose kernel is all zero has no spectrum to fit: the release would average a number
    fitted to nothing; here the layer's alpha is the mean over the live channels, and says so."""
    torch.manual_seed(4)
    w = torch.distributions.StudentT(3.0).sample((16, 1, 3, 3))
    dead = w.clone()
    dead[[2, 7]] = 0.0
    t = analyze({"dw.weight": dead}, fit="xmin_mid", cache=False)
    fit = t.spectra["dw"].fit_farms
    assert t.table.loc[0, "status"] == "ok" and (fit.n_blocks, fit.n_blocks_failed) == (14, 2)
    live = [release.analysis_esd(b, fix_fingers="xmin_mid").alpha
            for i, b in enumerate(release.conv2d_farms_blocks(w.double().numpy())) if i not in (2, 7)]
    assert t.table.loc[0, "alpha_farms"] == pytest.approx(np.mean(live), rel=1e-6)


@pytest.mark.parametrize("rule", ["xmin_peak", "xmin_mid"])
def test_square_conv_is_one_block_equal_to_the_release(rule):
    """A 32 -> 32 conv: one block covers each slice, so FARMS = raw (taken from the raw ESD, not solved twice)."""
    torch.manual_seed(7)
    w = torch.distributions.StudentT(3.0).sample((32, 32, 3, 3))
    t = analyze({"c.weight": w}, fit=rule, cache=False).table.iloc[0]
    farms = release.layer_estimate(w.double().numpy(), True, fix_fingers=rule, Q_ratio=1.0)
    raw = release.layer_estimate(w.double().numpy(), False, fix_fingers=rule)
    assert t["n_windows"] == 9
    assert t["alpha_farms"] == pytest.approx(farms.alpha, rel=1e-5) and t["alpha_raw"] == pytest.approx(raw.alpha, rel=1e-5)
    assert t["alpha_farms"] == t["alpha_raw"]
