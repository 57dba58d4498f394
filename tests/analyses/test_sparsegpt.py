"""SparseGPT: the exact per-layer count, lower reconstruction error than magnitude and Wanda, the
closed forms it must reduce to (identity Hessian, one OBS step), the Hessian's running mean, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from farms_viz.analyses.masks import pruned_count, row_mask, smallest_mask
from farms_viz.analyses.sparsegpt import HessianAccumulator, sparsegpt_prune
from farms_viz.errors import FarmsError


def _inputs(tokens: int, features: int, seed: int) -> torch.Tensor:
    """Correlated float64 inputs ``Z A`` with a few features 30x larger (as LLM outlier features);
    the same ``A`` and outliers for every seed, so two seeds are two draws of one distribution."""
    mix = torch.Generator().manual_seed(1234)
    a = torch.eye(features, dtype=torch.float64) + torch.randn(features, features, generator=mix,
                                                               dtype=torch.float64) / features ** 0.5
    scale = torch.ones(features, dtype=torch.float64)
    scale[torch.randperm(features, generator=mix)[:4]] = 30.0
    z = torch.randn(tokens, features, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return (z @ a) * scale


def _hessian(x: torch.Tensor) -> torch.Tensor:
    acc = HessianAccumulator()
    acc.add(x)
    return acc.hessian


def _weight(rows: int, cols: int, seed: int, dtype=torch.float32) -> torch.Tensor:
    w = torch.randn(rows, cols, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    assert (w != 0).all()
    return w


@pytest.mark.parametrize("rows, cols, blocksize, dtype", [(64, 200, 128, torch.float32), (33, 129, 128, torch.float32),
                                                          (33, 129, 32, torch.float64), (1, 5, 128, torch.float32),
                                                          (1, 5, 2, torch.float32)])
@pytest.mark.parametrize("ratio", [0.0, 0.5, 0.7, 1.0])
def test_exact_count_of_zeros_and_input_unchanged(rows, cols, blocksize, dtype, ratio):
    w = _weight(rows, cols, seed=rows + cols, dtype=dtype)
    h = _hessian(_inputs(2 * cols, cols, seed=1))
    w0, h0 = w.clone(), h.clone()
    k = pruned_count(ratio, w.numel())
    out = sparsegpt_prune(w, h, k, blocksize=blocksize)
    assert out.shape == w.shape and out.dtype == w.dtype
    assert int((out == 0).sum()) == k
    assert torch.equal(w, w0) and torch.equal(h, h0)
    if k == 0:  # no pruned weight, no error to spread: nothing moves
        assert torch.equal(out, w)


def _error(w: torch.Tensor, w_pruned: torch.Tensor, x: torch.Tensor) -> float:
    return float(torch.linalg.norm((w.double() - w_pruned.double()) @ x.T))


@pytest.mark.parametrize("ratio", [0.5, 0.7])
def test_reconstruction_error_below_magnitude_and_wanda_on_calibration_and_held_out(ratio):
    rows, cols = 64, 256
    w = _weight(rows, cols, seed=7)
    calib, held_out = _inputs(1024, cols, seed=2), _inputs(1024, cols, seed=3)
    k = pruned_count(ratio, w.numel())
    sparse = sparsegpt_prune(w, _hessian(calib), k)
    magnitude = w.masked_fill(smallest_mask(w.abs(), k), 0)
    wanda = w.masked_fill(row_mask(w.double().abs() * torch.linalg.norm(calib, dim=0)[None, :], k), 0)
    for x in (calib, held_out):
        e_sparse, e_mag, e_wanda = (_error(w, p, x) for p in (sparse, magnitude, wanda))
        # measured over weight seeds 7-9: SparseGPT / Wanda 0.83-0.92, SparseGPT / magnitude 0.22-0.26
        assert e_sparse < 0.95 * e_wanda and e_sparse < 0.4 * e_mag, (e_sparse, e_wanda, e_mag)


@pytest.mark.parametrize("k", [0, 1, 37, 320, 640])
def test_identity_hessian_one_block_equals_magnitude_pruning(k):
    """With ``H = c I`` the damped ``H^-1`` is diagonal, so its upper Cholesky factor ``U`` is
    diagonal too: every update ``err U[j, j+1:]`` is zero and only the pruned weights change (to 0).
    The saliency ``w^2 / U_jj^2`` has one ``U_jj`` for all weights, so it orders them as ``|w|``
    does, and one block holds the whole layer's ``k``: the result is magnitude pruning, values and
    mask alike."""
    rows, cols = 16, 40
    w = _weight(rows, cols, seed=11)
    h = _hessian(3.0 * torch.eye(cols, dtype=torch.float64))  # X^T X = 9 I exactly
    assert torch.equal(h, torch.diag(torch.diagonal(h)))
    out = sparsegpt_prune(w, h, k, blocksize=cols)
    assert torch.equal(out, w.masked_fill(smallest_mask(w.abs(), k), 0))


def test_one_pruned_weight_equals_brute_force_optimal_brain_surgeon():
    """One row, ``k = 1``, no damping. For each index ``q`` the brute force solves
    ``min (w' - w)^T H (w' - w)`` with ``w'_q = 0`` directly (the free weights' normal equations)
    and keeps the best ``q``; that is the OBS step ``delta = -w_q / [H^-1]_qq H^-1[:, q]``.
    SparseGPT's sequential form agrees when the pruned weight is the first column: ``U_00^2 =
    [H^-1]_00`` and ``U[0, :] U_00 = H^-1[0, :]`` (``H^-1 = U^T U``), so its first column step is
    exactly that OBS update, and no later column has an error to spread. For a later column ``U_jj``
    belongs to the Hessian of the columns ``j..`` only (earlier columns fixed), not to full OBS, so
    the data makes ``w_0`` the smallest saliency under both."""
    a = np.array([[2.0, 0.3, -0.5, 0.1], [0.4, 1.5, 0.2, -0.3], [-0.2, 0.6, 1.8, 0.5], [0.3, -0.1, 0.4, 1.2]])
    h = a @ a.T + 0.5 * np.eye(4)
    w = np.array([0.05, 1.0, -0.8, 0.6])
    best = None
    for q in range(4):
        free = [i for i in range(4) if i != q]
        d = np.zeros(4)
        d[q] = -w[q]
        d[free] = -np.linalg.solve(h[np.ix_(free, free)], h[free, q] * d[q])
        loss = d @ h @ d
        if best is None or loss < best[0]:
            best = (loss, q, w + d)
    _, q, expected = best
    assert q == 0
    hinv = np.linalg.inv(h)
    np.testing.assert_allclose(expected, w - w[0] / hinv[0, 0] * hinv[:, 0], rtol=0, atol=1e-12)
    out = sparsegpt_prune(torch.tensor(w)[None, :], torch.tensor(h), 1, percdamp=0.0)
    np.testing.assert_allclose(out[0].numpy(), expected, rtol=0, atol=1e-12)
    assert out[0, 0] == 0


def test_hessian_running_mean_over_batches_of_different_sizes():
    x = torch.randn(1 + 7 * 3 + 2 * 5 * 30, 12, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    acc = HessianAccumulator(12)
    acc.add(x[:1])
    acc.add(x[1:22].reshape(7, 3, 12))
    acc.add(x[22:22].reshape(0, 12))  # no tokens: no change
    acc.add(x[22:].reshape(2, 5, 30, 12))
    assert acc.n == x.shape[0]
    np.testing.assert_allclose(acc.hessian.numpy(), (2 / x.shape[0] * x.T @ x).numpy(), rtol=0, atol=1e-12)
    assert acc.hessian.dtype == torch.float64


def test_dead_input_column_is_zero_and_counted_in_the_mask():
    """A dead input's weights are 0 before pruning, so their saliency 0 puts them first in the mask
    (one block here, ``k`` above the row count): the zeros are still exactly ``k``."""
    rows, cols, k = 8, 20, 10
    x = _inputs(200, cols, seed=5)
    x[:, 5] = 0
    out = sparsegpt_prune(_weight(rows, cols, seed=6), _hessian(x), k)
    assert torch.equal(out[:, 5], torch.zeros(rows))
    assert int((out == 0).sum()) == k


def test_hessian_accumulator_rejects_a_width_change_and_an_empty_hessian():
    acc = HessianAccumulator()
    with pytest.raises(FarmsError, match="no calibration tokens"):
        acc.hessian
    acc.add(torch.ones(3, 4))
    with pytest.raises(FarmsError, match="features"):
        acc.add(torch.ones(3, 5))
    with pytest.raises(FarmsError, match="NaN"):
        acc.add(torch.full((2, 4), float("nan")))


_W, _H = _weight(4, 6, seed=8), torch.eye(6, dtype=torch.float64)


@pytest.mark.parametrize("weight, hessian, k, match", [
    (_W.masked_fill(torch.eye(4, 6, dtype=torch.bool), float("nan")), _H, 3, "NaN"),
    (_W, _H.masked_fill(torch.eye(6, dtype=torch.bool), float("inf")), 3, "NaN"),
    (_W, torch.eye(4, dtype=torch.float64), 3, "6 x 6"),
    (_W, torch.ones(6, 6, 1), 3, "6 x 6"),
    (_W[0], _H, 1, "2-D"),
    (_W, _H, -1, "from 0 to 24"),
    (_W, _H, 25, "from 0 to 24"),
    (_W, _H, 2.0, "whole number"),
    (_W, -_H, 3, "raise percdamp or add calibration data"),
])
def test_bad_input_raises_farms_error(weight, hessian, k, match):
    with pytest.raises(FarmsError, match=match):
        sparsegpt_prune(weight, hessian, k)
