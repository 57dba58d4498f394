"""Window geometry and ESDs against closed forms and the release's procedure."""

import numpy as np
import pytest
import torch

from farms_viz.core.matrices import infer_kind, to_matrices
from farms_viz.core.spectra import conv_block_esds, conv_blocks, esd, farms_esd, window_grid


def release_grid(rows, cols, num_row_samples, q, ops):
    """The FARMS release's fixed_sampling window starts, transcribed from its stated rule."""
    h = min(num_row_samples, min(rows, cols))
    w = int(h * q)
    rs = max(1, (rows - h) // (ops - 1))
    cs = max(1, (cols - w) // (ops - 1))
    nr = min(ops, max(1, (rows - h) // rs + 1))
    nc = min(ops, max(1, (cols - w) // cs + 1))
    return h, w, [(min(i * rs, rows - h), min(j * cs, cols - w)) for i in range(nr) for j in range(nc)]


@pytest.mark.parametrize("rows,cols,window,q,ops", [
    (4096, 4096, 2000, 1.0, 15),    # LLaMA attention: 225 windows
    (11008, 4096, 2000, 1.0, 15),   # LLaMA MLP, tall
    (4096, 11008, 2000, 1.0, 15),   # wide
    (1536, 384, 2000, 1.0, 15),     # window larger than the short side
    (384, 384, 2000, 1.0, 15),      # square, window covers it: one window
    (300, 1000, 100, 0.5, 9),       # q != 1
    (1000, 300, 100, 1.0, 1 + 1),   # two windows per dim
    (57, 23, 100, 1.0, 15),         # odd shapes, steps of 1
])
def test_window_grid_matches_release(rows, cols, window, q, ops):
    g = window_grid(rows, cols, window, q, ops)
    h, w, starts = release_grid(rows, cols, window, q, ops)
    assert (g.h, g.w) == (h, w)
    assert [(r, c) for r in g.row_starts for c in g.col_starts] == starts
    assert g.n_windows == len(starts)
    assert all(r + g.h <= rows and c + g.w <= cols for r, c in starts)


def test_llama_square_grid_is_15_by_15():
    g = window_grid(4096, 4096, 2000, 1.0, 15)
    assert g.n_windows == 225 and g.row_step == 149 and g.row_starts[-1] == 2086


def test_ops_one_gives_single_window():
    g = window_grid(1000, 300, 100, 1.0, 1)
    assert g.n_windows == 1 and g.row_starts == (0,) and g.col_starts == (0,)


def test_q_above_one_caps_window_at_cols():
    g = window_grid(384, 384, 2000, 2.0, 15)
    assert (g.h, g.w) == (384, 384)


def test_esd_is_ascending_squared_singular_values():
    rng = np.random.default_rng(0)
    W = rng.standard_normal((70, 30))
    e = esd(torch.tensor(W, dtype=torch.float32)[None])
    ref = np.sort(np.linalg.svd(W, compute_uv=False) ** 2)
    assert e.shape == (30,)
    assert np.all(np.diff(e) >= 0)
    np.testing.assert_allclose(e, ref, rtol=1e-4)
    np.testing.assert_allclose(e, np.sort(np.linalg.eigvalsh(W.T @ W)), rtol=1e-4)


def test_gaussian_esd_edges_match_marchenko_pastur():
    # W is N x M with unit-variance entries: eigenvalues of W^T W fill [(sqrt N - sqrt M)^2, (sqrt N + sqrt M)^2]
    N, M = 2000, 500
    W = torch.randn(N, M, generator=torch.Generator().manual_seed(1))
    e = esd(W[None])
    lo, hi = (np.sqrt(N) - np.sqrt(M)) ** 2, (np.sqrt(N) + np.sqrt(M)) ** 2
    assert e[0] == pytest.approx(lo, rel=0.03)
    assert e[-1] == pytest.approx(hi, rel=0.03)
    assert e.mean() == pytest.approx(N, rel=0.01)  # trace(W^T W) / M = N * sigma^2


def test_square_matrix_farms_equals_raw():
    W = torch.randn(256, 256, generator=torch.Generator().manual_seed(2))
    raw = esd(W[None])
    pooled, grid = farms_esd(W[None], window=2000, q=1.0, ops=15)
    assert grid.n_windows == 1
    np.testing.assert_array_equal(raw, pooled)


def test_farms_pools_every_window_of_the_release_grid():
    rng = np.random.default_rng(3)
    W = rng.standard_normal((300, 120)).astype(np.float32)
    pooled, grid = farms_esd(torch.tensor(W)[None], window=50, q=1.0, ops=4)
    _, _, starts = release_grid(300, 120, 50, 1.0, 4)
    ref = np.sort(np.concatenate([np.linalg.svd(W[r:r + 50, c:c + 50].astype(np.float64), compute_uv=False) ** 2
                                  for r, c in starts]))
    assert pooled.size == 50 * len(starts) == 50 * 16
    np.testing.assert_allclose(pooled, ref, rtol=1e-4, atol=1e-6 * ref.max())


def test_farms_chunking_does_not_change_the_result():
    W = torch.randn(500, 200, generator=torch.Generator().manual_seed(4))
    a, _ = farms_esd(W[None], 64, 1.0, 6)
    b, _ = farms_esd(W[None], 64, 1.0, 6, chunk_bytes=1)  # one grid row per chunk
    np.testing.assert_array_equal(a, b)


def test_conv2d_slices_are_kernel_positions_scaled_by_sqrt_conv_norm():
    w = torch.randn(8, 4, 3, 3)
    m = to_matrices(w, "conv2d", conv_norm=0.5)
    assert m.slices.shape == (9, 8, 4)
    torch.testing.assert_close(m.slices[4], w[:, :, 1, 1] * 0.5 ** 0.5)
    e = esd(m.slices)
    ref = np.sort(np.concatenate([np.linalg.svd(w[:, :, i, j].double().numpy(), compute_uv=False) ** 2 * 0.5
                                  for i in range(3) for j in range(3)]))
    np.testing.assert_allclose(e, ref, rtol=1e-4)


def test_conv_farms_applies_grid_to_every_slice():
    w = torch.randn(40, 10, 3, 3)
    m = to_matrices(w, "conv2d")
    pooled, grid = farms_esd(m.slices, window=10, q=1.0, ops=4)
    assert grid.n_windows == 4 and pooled.size == 9 * 4 * 10


def test_hf_conv1d_is_transposed_to_out_by_in():
    w = torch.randn(384, 1152)  # GPT-2 c_attn stores (in, out)
    m = to_matrices(w, "conv1d_hf")
    assert (m.rows, m.cols) == (1152, 384)


def test_depthwise_conv_is_kernel_slices_of_one_column_each():
    w = torch.randn(32, 1, 3, 3)
    m = to_matrices(w, "conv2d_depthwise", conv_norm=0.5)
    assert m.slices.shape == (9, 32, 1)
    # each slice's one eigenvalue is its squared column norm (the release and WeightWatcher)
    ref = np.sort((w.double() ** 2).sum(dim=(0, 1)).reshape(-1).numpy() * 0.5)
    np.testing.assert_allclose(esd(m.slices), ref, rtol=1e-6)


@pytest.mark.parametrize("shape,q,starts,hw", [
    ((96, 16), 1.0, [0, 16, 32, 48, 64, 80], (16, 16)),  # tall: 6 row blocks of 16 x 16
    ((16, 96), 1.0, [0, 16, 32, 48, 64, 80], (16, 16)),  # wide: slice transposed, column blocks
    ((50, 20), 2.0, [0, 10], (10, 20)),     # q > 1: r = C // q = 10 rows, still R // C = 2 blocks
    ((50, 20), 0.5, [0, 20], (20, 10)),     # q < 1: c = C // (1 / q) = 10 columns
    ((32, 1), 1.0, list(range(32)), (1, 1)),  # depthwise: one 1 x 1 block per channel
    ((45, 20), 1.0, [0, 20], (20, 20)),     # leftover rows (40..44) are dropped
])
def test_conv_blocks_follow_the_release(shape, q, starts, hw):
    g = conv_blocks(*shape, q)
    assert (g.h, g.w) == hw
    assert list(g.row_starts if shape[0] >= shape[1] else g.col_starts) == starts
    assert list(g.col_starts if shape[0] >= shape[1] else g.row_starts) == [0]


def test_conv_block_esds_pool_block_i_across_slices():
    w = torch.randn(9, 48, 16, generator=torch.Generator().manual_seed(2))
    blocks, grid = conv_block_esds(w, 1.0)
    assert len(blocks) == 3 == grid.n_windows
    for i, b in enumerate(blocks):
        ref = np.sort(np.concatenate([np.linalg.svd(w[k, 16 * i: 16 * (i + 1)].double().numpy(),
                                                    compute_uv=False) ** 2 for k in range(9)]))
        np.testing.assert_allclose(b, ref, rtol=1e-6, atol=1e-9)


def test_kind_inference_from_names_and_shapes():
    assert infer_kind("encoder.layer.0.attention.self.query.weight", (384, 384)) == "linear"
    assert infer_kind("embeddings.word_embeddings.weight", (30522, 384)) == "embedding"
    assert infer_kind("features.0.0.weight", (32, 3, 3, 3)) == "conv2d"
    assert infer_kind("features.1.conv.0.0.weight", (32, 1, 3, 3)) == "conv2d_depthwise"
    assert infer_kind("x.bias", (384,)) is None


def test_band_gram_route_equals_per_window_route():
    from farms_viz.core.spectra import _band_gram_esd, batched_esd, farms_windows

    W = torch.randn(1, 300, 230, generator=torch.Generator().manual_seed(8))
    grid = window_grid(300, 230, 100, 1.0, 6)
    assert grid.cols ** 2 < len(grid.col_starts) * grid.w ** 2  # the band route is the one farms_esd takes
    band = _band_gram_esd(W, grid)
    per_window = batched_esd(farms_windows(W, grid))
    np.testing.assert_allclose(band, per_window, rtol=1e-9, atol=1e-12 * band.max())
    np.testing.assert_array_equal(farms_esd(W, 100, 1.0, 6)[0], band)
    assert farms_esd(W, 100, 1.0, 6)[0].size == 100 * grid.n_windows


@pytest.mark.parametrize("shape,window,ops", [((1536, 384), 2000, 15), ((384, 1536), 2000, 15), ((500, 90), 2000, 4),
                                              ((90, 1000), 2000, 15), ((900, 100), 100, 3)])
def test_block_gram_route_equals_per_window_route(shape, window, ops):
    """Windows sliding along one side: Gram matrices summed from row blocks, same eigenvalues."""
    from farms_viz.core.spectra import _block_gram_esd, batched_esd, farms_windows

    W = torch.randn(2, *shape, generator=torch.Generator().manual_seed(9)) / shape[1] ** 0.5
    grid = window_grid(*shape, window, 1.0, ops)
    assert grid.h == grid.w and min(len(grid.row_starts), len(grid.col_starts)) == 1
    blocks = _block_gram_esd(W, grid)
    per_window = batched_esd(farms_windows(W, grid))
    assert blocks.size == per_window.size == 2 * grid.n_windows * grid.w
    np.testing.assert_allclose(blocks, per_window, rtol=1e-9, atol=1e-12 * per_window.max())
    np.testing.assert_array_equal(farms_esd(W, window, 1.0, ops)[0], blocks)


def test_torch_threads_restores_the_count_even_on_error():
    from farms_viz.core.threads import torch_threads

    before = torch.get_num_threads()
    with pytest.raises(RuntimeError, match="inside"):
        with torch_threads(1):
            assert torch.get_num_threads() == 1
            raise RuntimeError("inside")
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("shape", [(1, 3000, 2500), (3, 700, 900), (2, 50, 4000)])
def test_float64_gram_from_chunks_equals_the_whole_product(monkeypatch, shape):
    """The wider Gram is summed over converted row chunks and, on CPU, column blocks of a scratch
    buffer: every chunk and block boundary must be covered exactly once, in both numpy and torch."""
    from farms_viz.core import gram

    monkeypatch.setattr(gram, "GRAM_CHUNK_BYTES", 2**20)  # many chunks and blocks
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
    y = x.double() if shape[1] >= shape[2] else x.double().mT
    want = y.mT @ y
    for use_numpy in (True, False):
        monkeypatch.setattr(gram, "NUMPY_GRAM", use_numpy)
        got = gram.gram(x, torch.float64)
        assert got.dtype == torch.float64 and got.shape == want.shape
        assert float((got - want).abs().max() / want.abs().max()) < 1e-13


def test_bulk_only_keeps_the_top_and_bulk_of_square_spectra():
    """bulk_only (one float32 Gram solve, for the shuffled matrices) agrees with the float64 route
    on what the randomized columns read: the largest eigenvalues, WW's MP fit of the bulk."""
    from farms_viz.core.mp import fit_mp_kde
    from farms_viz.core.spectra import matrix_eigs

    w = torch.randn(3, 256, 256, generator=torch.Generator().manual_seed(2)) * 0.05
    exact, bulk = matrix_eigs(w), matrix_eigs(w, bulk_only=True)
    top = slice(128, None)  # the upper half of each spectrum
    np.testing.assert_allclose(bulk[:, top], exact[:, top], rtol=1e-5)
    assert np.abs(bulk - exact).max() < 1e-5 * exact.max()  # the smallest ones only to round-off
    a, b = fit_mp_kde(exact.ravel(), 256, 256), fit_mp_kde(bulk.ravel(), 256, 256)
    assert abs(a.sigma - b.sigma) < 1e-5 * a.sigma and a.num_spikes == b.num_spikes
