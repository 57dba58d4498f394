"""WeightWatcher's metrics beyond alpha (core.metrics, core.randomize) against closed forms, known
answers and an independent transcription of WeightWatcher 0.7.7 (tests/reference/ww_metrics.py)."""

import math
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import optimize
from sklearn.neighbors import KernelDensity

from farms_viz.core import metrics as M
from farms_viz.core import mp as MP
from farms_viz.core import randomize as RZ

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from reference import ww  # noqa: E402
from reference import ww_metrics as R  # noqa: E402


def noise(rows, cols, seed=0, df=None):
    rng = np.random.default_rng(seed)
    x = rng.standard_t(df, (rows, cols)) if df else rng.standard_normal((rows, cols))
    return x / np.sqrt(max(rows, cols))


def esd_of(w):
    return np.sort(np.linalg.svd(w, compute_uv=False) ** 2)


# ---------------------------------------------------------------- norms, entropy, ranks, detX

def test_norm_metrics_of_a_known_matrix():
    w = np.zeros((5, 3))
    w[0, 0], w[1, 1], w[2, 2] = 1.0, 2.0, 3.0  # eigenvalues 1, 4, 9
    e = esd_of(w)
    assert M.log_norm(e) == pytest.approx(math.log10(14), rel=1e-12)
    assert M.log_spectral_norm(e) == pytest.approx(math.log10(9), rel=1e-12)
    assert M.alpha_weighted(2.0, e) == pytest.approx(2 * math.log10(9), rel=1e-12)
    assert M.log_alpha_norm(2.0, e) == pytest.approx(math.log10(1 + 16 + 81), rel=1e-12)


def test_identity_entropy_is_one():
    for n in (10, 384):
        sv = M.sv_metrics(M.slice_singular_values(np.eye(n)), n)
        h = M.matrix_entropy(np.ones(n), sv.matrix_rank)
        p = 1 / n + M.EPSILON
        assert sv.matrix_rank == n
        assert h == pytest.approx(-n * p * math.log(p) / math.log(n + M.EPSILON), rel=1e-12)
        assert abs(h - 1) < 1e-7


def test_flat_spectrum_of_rank_r_has_entropy_one_and_rank_one_has_wws_large_value():
    w = np.zeros((40, 30))
    w[np.arange(6), np.arange(6)] = 2.0
    sv = M.sv_metrics(M.slice_singular_values(w), 40)
    assert (sv.matrix_rank, sv.rank_loss) == (6, 24)
    assert abs(M.matrix_entropy(esd_of(w), sv.matrix_rank) - 1) < 1e-6
    # rank 1: ln(1 + EPSILON) ~ 1e-10 divides the EPSILON terms (WW's quirk): ~ 23 (n - 1)
    e = np.r_[np.zeros(29), 4.0]
    h = M.matrix_entropy(e, 1)
    p = e / 4 + M.EPSILON
    assert h == pytest.approx(-np.sum(p * np.log(p)) / math.log(1 + M.EPSILON), rel=1e-9)
    assert 600 < h < 700


def test_rank_k_matrix_rank_loss():
    rng = np.random.default_rng(3)
    for k in (1, 7, 40):
        w = rng.standard_normal((120, k)) @ rng.standard_normal((k, 80))
        sv = M.sv_metrics(M.slice_singular_values(w), 120)
        assert (sv.rank_loss, sv.matrix_rank) == (80 - k, k)
    # a stack: rank loss summed over the slices, each against its own largest singular value
    ranks = (2, 5, 80)
    stack = np.stack([rng.standard_normal((120, r)) @ rng.standard_normal((r, 80)) * 10.0 ** i
                      for i, r in enumerate(ranks)])
    assert M.sv_metrics(M.slice_singular_values(stack), 120).rank_loss == sum(80 - r for r in ranks)


def test_sv_min_is_the_largest_of_the_slices_smallest_as_in_ww():
    stack = np.stack([noise(60, 20, s) * (s + 1) for s in range(3)])
    sv = M.slice_singular_values(stack)  # well conditioned: from the Gram matrices
    ref = [np.linalg.svd(m, compute_uv=False) for m in stack]
    for a, b in zip(sv, ref):
        np.testing.assert_allclose(a, np.sort(b), rtol=1e-9)
    got = M.sv_metrics(sv, 60)
    assert got.sv_min == pytest.approx(max(b.min() for b in ref), rel=1e-9)
    assert got.sv_max == pytest.approx(max(b.max() for b in ref), rel=1e-12)
    e, smax, smin, rl = R.combined(list(stack), 60)
    assert (got.sv_max, got.sv_min, got.rank_loss) == (pytest.approx(smax), pytest.approx(smin), rl)


def test_weak_rank_loss_counts_eigenvalues_below_the_tolerance():
    assert M.weak_rank_loss([0.0, 5e-7, 1e-6, 2.0]) == 2
    assert M.weak_rank_loss([0.0, 5e-7, 1e-6, 2.0], tol=1e-5) == 3


def test_detX_on_constructed_spectra():
    # mean 1 already; tail products from the top: 2.5, 3.75, 2.625, 0.525 < 1 at idx 1
    e = np.array([0.1, 0.2, 0.7, 1.5, 2.5])
    assert M.detX(e) == (4, pytest.approx(0.2))
    assert M.detX(3 * e) == (4, pytest.approx(0.6))  # rescaled to mean 1 first; value unrescaled
    # products 2, 3, 2.25, 1.125 stay >= 1 down to idx 1 (idx 0 is never tried): n, l[1]
    assert M.detX(np.array([0.25, 0.5, 0.75, 1.5, 2.0])) == (5, pytest.approx(0.5))
    assert M.detX(np.ones(4)) == (0, 1.0)


def test_detX_equals_wws_product_loop():
    rng = np.random.default_rng(5)
    for k in range(30):
        w = noise(int(rng.integers(10, 300)), int(rng.integers(5, 120)), k, [None, 2.5, 4.0][k % 3])
        e = esd_of(w) * 10 ** rng.uniform(-3, 3)
        num, val = M.detX(e)
        rnum, rval = R.detX(e)
        assert num == rnum and val == pytest.approx(rval, rel=1e-12)


def test_esd_metrics_match_the_transcription():
    rng = np.random.default_rng(9)
    mats = [noise(200, 60 + 20 * k, k, 3.0) for k in range(5)]
    mats.append(rng.standard_normal((200, 12)) @ rng.standard_normal((12, 80)) * 1e-4)  # rank 12, tiny
    for w in mats:
        e, smax, smin, rank_loss = R.combined([w], 200)
        alpha = ww.fit(e).alpha
        gram = np.clip(np.linalg.eigvalsh(w.T @ w), 0, None)  # the ESD as a Gram matrix gives it
        got = M.esd_metrics(gram, alpha, 200, M.slice_singular_values(w))
        for name, value in R.norm_metrics(e, alpha, 200).items():
            assert got[name] == pytest.approx(value, rel=1e-9), name
        assert (got["rank_loss"], got["sv_max"]) == (rank_loss, pytest.approx(smax, rel=1e-12))
    assert (got["rank_loss"], got["weak_rank_loss"]) == (68, 68)  # the 68 zero singular values


def test_ww_dims_follow_wws_conv_swaps():
    for shape in ((48, 16, 3, 3), (16, 40, 3, 3), (16, 40, 2, 2), (96, 24, 1, 1), (20, 36, 2, 2),
                  (64, 1, 3, 3), (1, 1, 3, 3)):
        _, N, Mm, _ = ww.conv2d_wmats(np.zeros(shape, dtype=np.float32))
        assert M.ww_dims(*shape) == (N, Mm), shape


# ---------------------------------------------------------------- WW's MP fit

def test_linear_kde_equals_sklearn():
    rng = np.random.default_rng(2)
    d = rng.gamma(2.0, 0.5, 500)
    x = np.linspace(0, d.max() + 0.5, 1000)
    ref = np.exp(KernelDensity(kernel="linear", bandwidth=0.1).fit(d[:, None]).score_samples(x[:, None]))
    np.testing.assert_allclose(MP.linear_kde(d, x, 0.1), ref, rtol=1e-9, atol=1e-12)


def test_nelder_mead_equals_scipy_fmin():
    for f, x0 in ((lambda x: (x - 0.3) ** 2, 1.0), (lambda x: abs(x - 2.0) + 0.1 * x * x, 0.5),
                  (lambda x: math.cos(3 * x) + 0.01 * x, 0.0), (lambda x: 1e6 if x > 1 else (x - 2) ** 2, 0.9)):
        ref = optimize.fmin(lambda v: f(float(v[0])), x0, disp=False)[0]
        assert MP.nelder_mead_1d(f, x0) == ref


def test_mp_fit_equals_the_transcription():
    rng = np.random.default_rng(4)
    for rows, cols, df in ((240, 80, None), (120, 120, 3.0), (150, 90, 2.5), (60, 25, 4.0)):
        w = rng.standard_t(df, (rows, cols)) if df else rng.standard_normal((rows, cols))
        e = esd_of(w) * 10 ** rng.uniform(-2, 2)
        f = MP.fit_mp_kde(e, rows, cols)
        spikes, sigma, softrank, lo, hi = R.mp_fit(e, rows, cols)
        assert f.num_spikes == spikes
        assert (f.sigma, f.mp_softrank, f.bulk_min, f.bulk_max) == (
            pytest.approx(sigma, rel=1e-12), pytest.approx(softrank, rel=1e-12),
            pytest.approx(lo, rel=1e-12, abs=1e-300), pytest.approx(hi, rel=1e-12))


def test_mp_fit_takes_the_first_of_a_flat_density_maximum():
    assert MP.peak_index(np.array([1.0, 3.0, 3.0 + 1e-15, 3.0 - 1e-15, 2.0])) == 1
    # mobilenet-v2 features.11.conv.1.0 shuffled: 9 column norms, WW's 5 replicas, a density plateau
    e = np.repeat([0.12693023, 0.15746629, 0.18171335, 0.20369635, 0.60515153, 0.61886689, 0.70138787,
                   0.80502223, 5.59976526], 5)
    for scale in (1.0, 1.0 + 4e-16, 3.0):
        f = MP.fit_mp_kde(e * scale, 384, 1)
        spikes, sigma, *_ = R.mp_fit(e * scale, 384, 1)
        assert (f.num_spikes, f.sigma) == (spikes, pytest.approx(sigma, rel=1e-12))


def test_mp_fit_of_noise_finds_the_mp_edge_and_a_planted_spike():
    rows, cols = 1000, 250
    w = noise(rows, cols, 1)  # entry variance 1 / N: l+ = N sigma^2 (1 + 1/sqrt(Q))^2 = (1 + 1/2)^2
    e = esd_of(w)
    f = MP.fit_mp_kde(e, rows, cols)
    lam_plus = (1 + math.sqrt(cols / rows)) ** 2
    assert f.bulk_max == pytest.approx(lam_plus, rel=0.05)
    assert f.num_spikes == 0
    u, v = np.ones((rows, 1)) / math.sqrt(rows), np.ones((1, cols)) / math.sqrt(cols)
    f2 = MP.fit_mp_kde(esd_of(w + 5.0 * u @ v), rows, cols)
    assert f2.num_spikes == 1
    assert f2.mp_softrank == pytest.approx(f2.bulk_max / (esd_of(w + 5.0 * u @ v)[-1]), rel=1e-12)


# ---------------------------------------------------------------- randomization

def planted(rows, cols, at, value, seed=0):
    w = noise(rows, cols, seed)
    w[at] = value
    return w


def test_randomized_esd_is_seeded_and_keeps_the_entries():
    w = noise(80, 300, 2, 3.0)
    a, b = RZ.randomized_esd(w, 7), RZ.randomized_esd(w, 7)
    np.testing.assert_array_equal(a.esd, b.esd)
    assert not np.array_equal(a.esd, RZ.randomized_esd(w, 8).esd)
    p = RZ.permutations((1, 80, 300), 7, 1)
    np.testing.assert_array_equal(np.sort(RZ.shuffle(w, p[0]).ravel()), np.sort(w.ravel()))
    assert a.first.sum() == pytest.approx(esd_of(w).sum(), rel=1e-10)  # the Frobenius norm is kept
    assert a.replicas == 5 and a.esd.size == 5 * 80
    np.testing.assert_allclose(a.first, esd_of(RZ.shuffle(w, p[0])[0]), rtol=1e-8, atol=1e-12)


def test_ww_pools_five_replicas_below_100_eigenvalues():
    assert RZ.randomized_esd(noise(60, 30), 0).replicas == 5
    assert RZ.randomized_esd(noise(60, 30), 0).esd.size == 150
    assert RZ.randomized_esd(noise(300, 100), 0).replicas == 1


def test_planted_large_entry_gives_one_trap_at_its_position():
    for seed in range(3):
        w = planted(200, 400, (17, 123), 10.0, seed)
        e = esd_of(w)
        rm = RZ.randomized_metrics(w, e, 400, 200, seed)
        assert rm.columns()["num_traps"] == 1
        assert rm.traps.size == 1 and rm.traps[0] > rm.fit.spike_edge
        t = RZ.trap_entries(w, seed)
        assert t.cleared and (t.num_traps_before, t.num_traps_after) == (1, 0)
        assert t.positions.tolist() == [[17, 123]] and t.values.tolist() == [10.0]
        clean = RZ.randomized_metrics(noise(200, 400, seed), e, 400, 200, seed)
        assert clean.columns()["num_traps"] == 0


def test_planted_entry_in_a_small_matrix_is_a_trap_in_each_of_wws_five_replicas():
    w = planted(60, 30, (4, 9), -6.0)
    rm = RZ.randomized_metrics(w, esd_of(w), 60, 30, 1)
    assert rm.columns()["num_traps"] == 5
    t = RZ.trap_entries(w, 1)
    assert t.positions.tolist() == [[4, 9]] and t.cleared


def test_trap_entries_in_a_stack_of_slices_name_the_slice():
    stack = np.stack([noise(150, 120, s) for s in range(3)])
    stack[2, 33, 7] = 9.0
    t = RZ.trap_entries(stack, 0)
    assert t.positions.tolist() == [[2, 33, 7]] and t.cleared
    none = RZ.trap_entries(np.stack([noise(150, 120, s) for s in range(3)]), 0)
    assert none.positions.shape == (0, 3) and none.num_traps_before == 0


def test_rand_distance_closed_forms_and_transcription():
    assert RZ.rand_distance([1.0, 2.0, 3.0], [2.0, 4.0, 6.0]) == pytest.approx(0.0, abs=1e-12)
    assert RZ.rand_distance([1.0, 0.0], [0.0, 1.0]) == pytest.approx(math.sqrt(math.log(2)), rel=1e-12)
    rng = np.random.default_rng(0)
    for _ in range(5):
        a, b = np.sort(rng.gamma(1.0, 1.0, 50)), np.sort(rng.gamma(3.0, 1.0, 50))
        assert RZ.rand_distance(a, b) == pytest.approx(R.jensen_shannon_distance(a, b), rel=1e-12)
