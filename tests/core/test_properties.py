"""Property tests (hypothesis) for the numerics: invariances and robustness on any finite matrix."""

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from farms_viz import analyze
from farms_viz.core.fits import fit_power_law
from farms_viz.core.spectra import esd, farms_esd

FITS = ["xmin_peak", "xmin_mid", "ks"]
fast = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def random_matrices(draw):
    """Random weight-like matrices: Gaussian or Student-t entries of any shape, seed and tail."""
    rows = draw(st.integers(8, 120))
    cols = draw(st.integers(8, 120))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    if draw(st.booleans()):
        w = rng.standard_normal((rows, cols))
    else:
        w = rng.standard_t(draw(st.floats(1.5, 6.0)), size=(rows, cols))
    return torch.tensor(w, dtype=torch.float32)


@fast
@given(random_matrices(), st.integers(-6, 6), st.sampled_from(FITS))
def test_alpha_is_invariant_to_scale(W, k, fit):
    c = 2.0 ** k  # exact in floating point
    if fit == "ks" and float(esd(W[None])[0]) * min(1.0, c * c) <= 1e-3:
        return  # ks drops eigenvalues <= 1e-5 (an absolute floor, as in WeightWatcher)
    a = fit_power_law(esd(W[None]), fit, dim=max(W.shape))
    b = fit_power_law(esd((c * W)[None]), fit, dim=max(W.shape))
    assert (math.isnan(a.alpha) and math.isnan(b.alpha)) or b.alpha == pytest.approx(a.alpha, rel=1e-6)


@fast
@given(random_matrices(), st.sampled_from(FITS))
def test_alpha_is_invariant_to_transpose(W, fit):
    a = fit_power_law(esd(W[None]), fit, dim=max(W.shape))
    b = fit_power_law(esd(W.T.contiguous()[None]), fit, dim=max(W.shape))
    assert (math.isnan(a.alpha) and math.isnan(b.alpha)) or b.alpha == pytest.approx(a.alpha, rel=1e-5)


@fast
@given(st.integers(2, 150), st.integers(0, 10**6), st.integers(1, 20))
def test_farms_equals_raw_when_the_window_covers_a_square_matrix(n, seed, ops):
    W = torch.randn(n, n, generator=torch.Generator().manual_seed(seed))
    pooled, grid = farms_esd(W[None], window=n + seed % 50, q=1.0, ops=ops)
    assert grid.n_windows == 1
    np.testing.assert_array_equal(pooled, esd(W[None]))


finite32 = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False, width=32)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arrays(np.float32, st.tuples(st.integers(2, 30), st.integers(2, 30)), elements=finite32),
       st.sampled_from(FITS), st.integers(1, 40), st.integers(1, 6))
def test_no_exception_on_any_finite_matrix(a, fit, window, ops):
    t = analyze({"w.weight": torch.from_numpy(a)}, fit=fit, window=window, ops=ops).table
    assert len(t) == 1
    row = t.iloc[0]
    if row.status == "ok":
        assert row.alpha_raw > 1 and row.alpha_farms > 1
        assert np.isfinite([row.D_raw, row.D_farms, row.xmin_raw]).all()
    else:
        assert isinstance(row.status, str) and row.status
