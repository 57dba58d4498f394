"""The lab's numerics: matrix maker distributions against closed forms, the bias sweep, .npy loading."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch

from farms_viz.analyses import lab
from farms_viz.core.mp import mp_edges
from farms_viz.errors import FarmsError


def test_maker_shape_dtype_and_seed_reproducible():
    spec = lab.MatrixSpec(300, 120, "student_t", nu=3.0, seed=7)
    a, b = lab.make_matrix(spec), lab.make_matrix(spec)
    assert a.shape == (300, 120) and a.dtype == torch.float32
    assert torch.equal(a, b)
    assert not torch.equal(a, lab.make_matrix(spec.replace(seed=8)))


@pytest.mark.parametrize("dist,kw", [("gaussian", {}), ("student_t", {"nu": 5.0}), ("pareto", {"mu": 4.0})])
def test_entry_variance_matches_sample(dist, kw):
    spec = lab.MatrixSpec(1000, 800, dist, **kw)
    var = float(lab.make_matrix(spec).double().var())
    assert var == pytest.approx(spec.entry_variance(), rel=0.15)


def test_infinite_variance_has_no_mp_theory():
    spec = lab.MatrixSpec(400, 200, "pareto", mu=1.5)
    assert spec.entry_variance() == math.inf
    assert lab.theory_mp(spec.entry_variance(), 400, 200) is None
    assert spec.tail_alpha() == pytest.approx(1.75)


def test_gaussian_esd_edges_match_marchenko_pastur():
    spec = lab.MatrixSpec(2000, 500)  # Q = 4, scale N sigma^2 = 1: edges (1 -+ 1/2)^2
    res = lab.run_matrix(spec, lab.lab_settings(2000, 500))
    lo, hi = mp_edges(4.0, 1.0)
    assert (lo, hi) == pytest.approx((0.25, 2.25))
    e = res.spectra.esd_raw
    assert e[0] == pytest.approx(lo, abs=0.05) and e[-1] == pytest.approx(hi, abs=0.08)
    assert res.theory_raw.lambda_plus == pytest.approx(hi) and res.theory_raw.n_spikes == 0
    # the FARMS windows are square (Q = 1): edges 0 and 4 N_w sigma^2 = 4 * 256 / 2000
    g = res.spectra.grid
    assert g.h == g.w == lab.LAB_WINDOW == 256
    assert res.theory_farms.lambda_plus == pytest.approx(4 * 256 / 2000)
    assert res.spectra.esd_farms[-1] == pytest.approx(4 * 256 / 2000, rel=0.06)


@pytest.mark.parametrize("mu", [1.0, 1.5])
def test_pareto_alpha_near_one_plus_mu_over_two(mu):
    spec = lab.MatrixSpec(1000, 500, "pareto", mu=mu, seed=1)
    res = lab.run_matrix(spec, lab.lab_settings(1000, 500))
    assert res.alpha_raw == pytest.approx(1 + mu / 2, abs=0.15)
    assert res.alpha_farms == pytest.approx(1 + mu / 2, abs=0.2)


@pytest.mark.parametrize("rank", [1, 3])
def test_planted_signal_gives_rank_spikes_at_the_bbp_location(rank):
    spec = lab.MatrixSpec(1000, 500, "planted", strength=2.0, rank=rank, seed=2)
    res = lab.run_matrix(spec, lab.lab_settings(1000, 500))
    assert res.theory_raw.n_spikes == rank
    assert res.spectra.mp_raw.n_spikes == rank  # the fitted MP agrees
    c, th = 0.5, 2.0
    expected = (1 + th**2) * (c + th**2) / th**2  # outlier of a rank-one perturbation (BBP)
    assert res.spectra.esd_raw[-rank:] == pytest.approx(np.full(rank, expected), rel=0.06)
    weak = lab.run_matrix(spec.replace(strength=0.5), lab.lab_settings(1000, 500))  # below (1/Q)^(1/4)
    assert weak.theory_raw.n_spikes == 0


def test_sweep_raw_alpha_climbs_farms_stays_flat_on_noise():
    calls = []
    res = lab.sweep(lab.MatrixSpec(), mode="short", size=128, ratios=(1, 2, 4, 8, 16), n_seeds=2,
                    progress=lambda d, t, w: calls.append((d, t)))
    assert calls[0] == (0, 10) and calls[-1] == (10, 10)
    assert res.shapes == [(128, 128), (256, 128), (512, 128), (1024, 128), (2048, 128)]
    raw, farms = res.mean("raw"), res.mean("farms")
    assert np.all(np.diff(raw) > 0.2)  # monotone climb
    assert raw[-1] - raw[0] > 3.0
    assert np.ptp(farms) < 0.1 and res.slope("farms") == pytest.approx(0, abs=0.03)
    assert res.slope("raw") > 0.7
    lo, hi = res.band("raw")
    assert np.all(lo <= raw) and np.all(raw <= hi)


def test_sweep_fixed_entries_and_heavy_tails_stay_separated():
    res = lab.sweep(lab.MatrixSpec(dist="pareto", mu=1.0), mode="entries", size=256, ratios=(1, 4, 16), n_seeds=1)
    assert [r * c for r, c in res.shapes] == [65536, 65536, 65536]
    assert res.window == 64
    assert np.all(np.abs(res.mean("farms") - 1.5) < 0.2) and np.all(np.abs(res.mean("raw") - 1.5) < 0.2)


def test_sweep_rejects_sides_over_the_limit():
    with pytest.raises(FarmsError, match="over the lab's 4096"):
        lab.sweep(lab.MatrixSpec(), mode="short", size=512, ratios=(16,))


@pytest.mark.parametrize("kw,msg", [(dict(rows=5000), "rows"), (dict(dist="cauchy"), "Unknown distribution"),
                                    (dict(mu=0.1, dist="pareto"), "tail index"), (dict(rank=0), "rank"),
                                    (dict(rows="abc"), "rows must be a whole number"),
                                    (dict(cols=float("nan")), "cols must be"), (dict(nu="x"), "degrees of freedom"),
                                    (dict(strength=float("inf")), "signal strength"), (dict(rows=3.5), "whole")])
def test_bad_spec_is_a_farms_error(kw, msg):
    with pytest.raises(FarmsError, match=msg):
        lab.MatrixSpec(**kw)


def _npy(a, **kw) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, **kw)
    return buf.getvalue()


def test_load_npy_roundtrip_and_analysis():
    a = np.random.default_rng(0).standard_normal((120, 40))
    w = lab.load_npy(_npy(a))
    assert w.dtype == torch.float32 and w.shape == (120, 40)
    res = lab.run_matrix(None, lab.lab_settings(120, 40), w=w, name="m.npy")
    assert res.theory_raw is None and np.isfinite(res.alpha_raw)


@pytest.mark.parametrize("data,msg", [
    (_npy(np.array([{"a": 1}], dtype=object), allow_pickle=True), "pickle"),
    (b"not a numpy file", "not a readable .npy"),
    (_npy(np.zeros(5)), "2-D"),
    (_npy(np.array([[1.0, np.nan], [0.0, 1.0]])), "NaN"),
    (_npy(np.array([["a", "b"], ["c", "d"]])), "real numbers"),
])
def test_bad_npy_is_a_farms_error(data, msg):
    with pytest.raises(FarmsError, match=msg):
        lab.load_npy(data, "x.npy")


def test_q4_1_spec_is_the_round_trip_of_the_plain_matrix():
    """MatrixSpec(q4_1=True) is GGML's Q4_1 round trip of the same matrix, and its relative error on a
    Gaussian matrix is that of 16 uniform levels per block of 32 (about 0.078, measured in zoo/ggml)."""
    from farms_viz.analyses.lab import MatrixSpec, make_matrix, quantization_error
    from farms_viz.zoo.ggml import q4_1_round_trip

    spec = MatrixSpec(rows=300, cols=128, seed=4)
    w, q = make_matrix(spec), make_matrix(spec.replace(q4_1=True))
    assert torch.equal(q, q4_1_round_trip(w)) and not torch.equal(q, w)
    assert 0.07 < quantization_error(spec) < 0.09
