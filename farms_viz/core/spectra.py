"""Raw ESD and FARMS pooled ESD of weight matrices.

The ESD of a matrix W (rows x cols) is the min(rows, cols) eigenvalues of W^T W,
i.e. the squared singular values, in ascending order.

FARMS (Hu et al., ICML 2025, Sec. 3) slides windows of one fixed aspect ratio over
W and pools the eigenvalues of all windows. The window grid below reproduces the
authors' release (``fixed_sampling`` in ``LLM_Pruning/lib/sampling.py``) exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from farms_viz.core.gram import abs_max, gram, gram_of
from farms_viz.core.threads import shared_pool, torch_threads
from farms_viz.errors import FarmsError


@dataclass(frozen=True)
class WindowGrid:
    """Where FARMS looks: windows of ``h`` x ``w`` starting at every (row_start, col_start)."""

    rows: int
    cols: int
    h: int
    w: int
    row_starts: tuple[int, ...]
    col_starts: tuple[int, ...]
    row_step: int
    col_step: int

    @property
    def n_windows(self) -> int:
        return len(self.row_starts) * len(self.col_starts)

    @property
    def aspect_ratio(self) -> float:
        return max(self.h, self.w) / min(self.h, self.w)


def window_grid(rows: int, cols: int, window: int, q: float, ops: int) -> WindowGrid:
    """The release's window grid.

    h = min(window, rows, cols); w = int(h * q), capped at cols;
    row_step = max(1, (rows - h) // (ops - 1)), likewise col_step with w;
    row windows = min(ops, max(1, (rows - h) // row_step + 1)), likewise columns;
    window (i, j) starts at (min(i * row_step, rows - h), min(j * col_step, cols - w)).

    With ops = 1 the release would divide by zero; one window per dimension is used.
    With q > 1, w can exceed cols in the release, where slicing silently truncates
    the window; here w is capped at cols, which is the same submatrix.
    """
    h = min(int(window), rows, cols)
    w = min(max(1, int(h * q)), cols)
    if ops > 1:
        row_step = max(1, (rows - h) // (ops - 1))
        col_step = max(1, (cols - w) // (ops - 1))
        n_r = min(ops, max(1, (rows - h) // row_step + 1))
        n_c = min(ops, max(1, (cols - w) // col_step + 1))
    else:
        row_step = col_step = 1
        n_r = n_c = 1
    row_starts = tuple(min(i * row_step, rows - h) for i in range(n_r))
    col_starts = tuple(min(j * col_step, cols - w) for j in range(n_c))
    return WindowGrid(rows, cols, h, w, row_starts, col_starts, row_step, col_step)


def torch_device(device: str) -> torch.device:
    """The torch device of a ``Settings.device`` name; FarmsError for a GPU that is not there."""
    if device == "cuda" and not torch.cuda.is_available():
        raise FarmsError("device 'cuda' was asked for but no CUDA GPU is available; use device 'cpu'.")
    return torch.device(device)


#: A float32 Gram spectrum is trusted when its smallest eigenvalue exceeds
#: GRAM_TRUST * sqrt(n) * eps(float32) * l_max, i.e. round-off moves it by under ~1%.
GRAM_TRUST = 100.0


#: On a GPU, stacks of matrices of HOST_EIGH_MIN_N < n <= HOST_EIGH_MAX_N are solved by the
#: host's CPU threads. Measured with benchmarks/bench_eigh.py (H200 + 16 Xeon cores, 225
#: matrices): cuSOLVER solves them one after another, 0.14 s for n = 100 in float64, the host
#: 0.013 s; the host is faster up to n = 512 (0.64 vs 0.96 s), the GPU from 768 on (0.17 vs
#: 0.23 s for 24) and for n <= 32, where cuSOLVER has a batched Jacobi solver (0.3 vs 2.2 ms).
HOST_EIGH_MIN_N = 32
HOST_EIGH_MAX_N = 512


#: A CPU stack is split over threads only when k n^3 reaches this: below it, handing parts to
#: threads costs more than it saves. Measured on 2 cores, split vs one call: 5 of 4 x 4 0.34 vs
#: 0.013 ms; 8 of 64 x 64 (k n^3 = 2.1e6) 0.98 vs 0.79 ms; 16 of 64 x 64 (4.2e6) 1.56 vs 1.77 ms.
SPLIT_MIN_WORK = 2**22


def eigvalsh_batched(g: torch.Tensor) -> torch.Tensor:
    """``torch.linalg.eigvalsh`` of a stack (k, n, n), the batch split over the CPU threads.

    On CPU, LAPACK's own threading on one symmetric eigenproblem scales poorly (measured on
    2 cores: 2-3.5x slower than one thread for n = 100..1024, worse under load). So the
    stack is split into one part per thread, each solved with one intra-op thread, in
    parallel (the call releases the GIL). A single matrix uses the default. On a GPU,
    mid-size matrices (see HOST_EIGH_MAX_N) go to the host this way; the result comes back
    on the stack's device.
    """
    if g.device.type != "cpu":
        if HOST_EIGH_MIN_N < g.shape[-1] <= HOST_EIGH_MAX_N and g.shape[0] > 1:
            return eigvalsh_batched(g.cpu()).to(g.device)
        return torch.linalg.eigvalsh(g)
    n_threads = torch.get_num_threads()
    if g.shape[0] < 2 or n_threads < 2 or g.shape[0] * g.shape[-1] ** 3 < SPLIT_MIN_WORK:
        return torch.linalg.eigvalsh(g)
    parts = torch.tensor_split(g, min(n_threads, g.shape[0]))
    with torch_threads(1):
        return torch.cat(list(shared_pool(len(parts)).map(torch.linalg.eigvalsh, parts)))


#: Matrices whose largest |entry| is within 2^+-SCALE_FREE_EXP of 1 go to the Gram product as they
#: are; others are first scaled by a power of two (see :func:`_gram_eigs`).
SCALE_FREE_EXP = 30


def _gram_eigs(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Eigenvalues of the smaller Gram matrix (formed in ``dtype``) of each matrix in a stack
    (k, m, n): float64, ascending.

    A float32 Gram matrix overflows once n * max|w|^2 passes 3.4e38 (float32 weights x 1e25
    gave LinAlgError and lost the run). So a matrix whose largest |entry| is far from 1 is first
    multiplied by 2^-e (e its binary exponent; exact, no rounding) and its eigenvalues by 4^e
    after, in float64. FarmsError where they exceed float64 (entries past ~1e154).
    """
    amax = abs_max(x)
    if not bool(torch.isfinite(amax).all()):
        raise FarmsError("the matrix has entries beyond the range of float32, in which spectra are computed; "
                         "alpha is scale-free: divide the weights by a power of two.")
    _, e = torch.frexp(amax)  # amax = f * 2^e, f in [0.5, 1); e = 0 for an all-zero matrix
    hi = int(np.log2(torch.finfo(x.dtype).max)) - 2  # 2^-e and 2^e stay normal numbers
    e = e.clamp(-hi, hi)
    scaled = bool((e.abs() > SCALE_FREE_EXP).any())
    if scaled:
        x = x * torch.ldexp(torch.ones((), dtype=x.dtype, device=x.device), -e.to(x.dtype))[:, None, None]
    ev = eigvalsh_batched(gram(x, dtype)).to(torch.float64)
    if not scaled:
        return ev
    back = torch.ldexp(torch.ones((), dtype=torch.float64, device=ev.device), 2 * e.to(torch.float64))
    if not bool(torch.isfinite(back).all()):
        raise FarmsError("the squared singular values of this matrix exceed float64's range (entries past ~1e154); "
                         "alpha is scale-free: divide the weights by a power of two.")
    return ev * back[:, None]


#: What ``bulk_only=True`` means, for the functions below that take it: the eigenvalues feed only
#: statistics of the bulk and the top of the spectrum (the randomized columns: WW's KDE MP fit, its
#: spikes, rand_distance), so one float32 Gram solve serves every matrix, square ones too; its
#: round-off, about eps * l_max * sqrt(n), moves only the smallest eigenvalues. Measured on shuffled
#: 2048 x 2048, 512 x 512, 384 x 384 and 1536 x 384 matrices against float64: rand_sigma_mp and
#: rand_bulk_max within 1e-6 relative, rand_distance within 3e-7, the same spike counts.
BULK_ONLY_DTYPE = torch.float32


def matrix_eigs(mats: torch.Tensor, chunk_bytes: int = 256 * 2**20, bulk_only: bool = False) -> np.ndarray:
    """Eigenvalues of W^T W for each matrix of a stack (k, m, n): float64 (k, min(m, n)), each row ascending.

    Fast exact route: one batched Gram + ``eigvalsh`` call per chunk in float32. Round-off
    in a float32 Gram matrix is about eps * l_max, so a matrix whose smallest eigenvalue
    is not well above that (square or ill-conditioned ones) is recomputed in float64,
    which resolves eigenvalues down to ~1e-13 l_max, more than float32 ``svdvals`` (the
    release's route) does. Square matrices go to float64 directly: their smallest
    eigenvalue (~l_max / 4n^2 for noise) is always below float32 Gram round-off.
    Round-off values <= 0 are clamped to 0 (numerically zero). ``bulk_only``: float32 for every
    matrix (see BULK_ONLY_DTYPE).
    """
    k, m, n = mats.shape
    side = min(m, n)
    per = max(1, int(chunk_bytes // max(1, (m * n + side * side) * 8)))
    out = []
    eps = float(torch.finfo(torch.float32).eps)
    for s in range(0, k, per):
        x = mats[s : s + per]
        if bulk_only:
            out.append(_gram_eigs(x, BULK_ONLY_DTYPE).clamp_min(0).cpu().numpy())
            continue
        if m == n:
            out.append(_gram_eigs(x, torch.float64).clamp_min(0).cpu().numpy())
            continue
        ev = _gram_eigs(x, torch.float32)
        lam_max = ev[:, -1:].clamp_min(0)
        bad = (ev[:, :1] <= GRAM_TRUST * side ** 0.5 * eps * lam_max).reshape(-1)
        ev = ev.to(torch.float64)
        if bool(bad.any()):
            ev[bad] = _gram_eigs(x[bad], torch.float64)
        out.append(ev.clamp_min(0).cpu().numpy())
    return np.concatenate(out).reshape(k, side)


def batched_esd(mats: torch.Tensor, chunk_bytes: int = 256 * 2**20, bulk_only: bool = False) -> np.ndarray:
    """Eigenvalues of W^T W for a stack of equal-shape matrices (k, m, n), pooled, ascending
    (see :func:`matrix_eigs`)."""
    return np.sort(matrix_eigs(mats, chunk_bytes, bulk_only).reshape(-1))


def slice_eigs(slices: torch.Tensor, device: str = "cpu", bulk_only: bool = False) -> np.ndarray:
    """Each slice's eigenvalues of W^T W, (k, min(rows, cols)) float64, rows ascending (see
    :func:`matrix_eigs`): the raw solve, from which the ESD and every metric are derived."""
    return matrix_eigs(slices.to(torch_device(device), dtype=torch.float32), bulk_only=bulk_only)


def esd(slices: torch.Tensor, device: str = "cpu") -> np.ndarray:
    """Raw ESD of a layer: pooled eigenvalues of W^T W for each slice (k, rows, cols)."""
    return np.sort(slice_eigs(slices, device).reshape(-1))


def farms_windows(slices: torch.Tensor, grid: WindowGrid, row_starts=None) -> torch.Tensor:
    """FARMS windows of all slices as one stacked tensor (k * n_r * n_c, h, w).

    ``row_starts`` restricts to some rows of the grid (for chunking); default all.
    """
    dev = slices.device
    rs = grid.row_starts if row_starts is None else row_starts
    idx_r = torch.tensor(rs, device=dev)[:, None] + torch.arange(grid.h, device=dev)
    idx_c = torch.tensor(grid.col_starts, device=dev)[:, None] + torch.arange(grid.w, device=dev)
    win = slices[:, idx_r, :][:, :, :, idx_c]  # (k, n_r, h, n_c, w)
    win = win.permute(0, 1, 3, 2, 4)  # (k, n_r, n_c, h, w)
    return win.reshape(-1, grid.h, grid.w)


def farms_esd(slices: torch.Tensor, window: int, q: float, ops: int, device: str = "cpu",
              chunk_bytes: int = 256 * 2**20, raw: np.ndarray | None = None, bulk_only: bool = False
              ) -> tuple[np.ndarray, WindowGrid]:
    """FARMS pooled ESD: the window grid applied to every slice, all windows' eigenvalues pooled.

    For conv layers (k > 1 kernel-position slices) every slice gets the same grid and
    all k * n_windows windows are pooled (farms-viz's rule; the release instead takes
    one window per slice, see README). Windows are stacked in chunks of whole grid
    rows so memory stays bounded (about ``chunk_bytes`` per chunk). When one window covers
    the whole matrix (square layers at the LLM window), the FARMS ESD is the raw ESD:
    pass it as ``raw`` and it is returned instead of being computed again. ``bulk_only``: see
    BULK_ONLY_DTYPE.
    """
    mats = slices.to(torch_device(device), dtype=torch.float32)
    grid = window_grid(mats.shape[1], mats.shape[2], window, q, ops)
    if grid.n_windows == 1 and grid.h == grid.rows and grid.w == grid.cols:
        return (raw if raw is not None else batched_esd(mats, bulk_only=bulk_only)), grid
    n_r, n_c = len(grid.row_starts), len(grid.col_starts)
    if grid.h == grid.w and n_c > 1 and grid.cols ** 2 < n_c * grid.w ** 2 and grid.cols ** 2 * 8 <= chunk_bytes:
        return _band_gram_esd(mats, grid, chunk_bytes, bulk_only), grid
    if grid.h == grid.w and min(n_r, n_c) == 1 and max(n_r, n_c) > 2 and 2 * max(n_r, n_c) * grid.w ** 2 * 8 <= chunk_bytes:
        return _block_gram_esd(mats, grid, bulk_only), grid
    per_row = mats.shape[0] * len(grid.col_starts) * grid.h * grid.w * 4
    rows_per_chunk = max(1, int(chunk_bytes // max(1, per_row)))
    parts = []
    for s in range(0, len(grid.row_starts), rows_per_chunk):
        rs = grid.row_starts[s : s + rows_per_chunk]
        parts.append(batched_esd(farms_windows(mats, grid, rs), bulk_only=bulk_only))
    return np.sort(np.concatenate(parts)), grid


def _band_gram_esd(mats: torch.Tensor, grid: WindowGrid, chunk_bytes: int = 256 * 2**20,
                   bulk_only: bool = False) -> np.ndarray:
    """FARMS ESD of square windows through one Gram matrix per row band.

    Windows that share rows r..r+h share the band B = W[r:r+h, :]; the Gram matrix of the
    window at column c is the principal submatrix G[c:c+w, c:c+w] of G = B^T B. One
    band Gram (h * cols^2 flops) replaces n_c window Grams (n_c * h * w^2 flops). The
    submatrices of as many bands as fit in ``chunk_bytes`` go through one batched
    ``eigvalsh``. Float64, as for every square matrix (see :func:`matrix_eigs`; float32 with
    ``bulk_only``).
    """
    dtype = BULK_ONLY_DTYPE if bulk_only else torch.float64
    idx = torch.tensor(grid.col_starts, device=mats.device)[:, None] + torch.arange(grid.w, device=mats.device)
    bands = [(k, r) for k in range(mats.shape[0]) for r in grid.row_starts]
    per = max(1, int(chunk_bytes // (len(grid.col_starts) * grid.w * grid.w * dtype.itemsize)))
    out = []
    for s in range(0, len(bands), per):
        subs = []
        for k, r in bands[s : s + per]:
            g = gram_of(mats[k, r : r + grid.h, :].to(dtype))
            subs.append(g[idx[:, :, None], idx[:, None, :]])  # (n_c, w, w)
        out.append(eigvalsh_batched(torch.cat(subs)).clamp_min(0).reshape(-1).cpu().numpy())
    return np.sort(np.concatenate(out))


def _block_gram_esd(mats: torch.Tensor, grid: WindowGrid, bulk_only: bool = False) -> np.ndarray:
    """FARMS ESD of square windows that slide along one side only (one row or column start).

    Tall layers (1536 x 384 at the LLM window: 15 windows of 384 x 384 stacked down the
    rows) and wide ones (transposed). Cut the rows at every window's start and end; the
    Gram matrix of a window is then the sum of the Gram matrices of the blocks it covers,
    each block's computed once: rows * w^2 flops instead of n_windows * h * w^2 (4x fewer
    for 1536 x 384). Float64, as for every square matrix (see :func:`matrix_eigs`; float32 with
    ``bulk_only``).
    """
    dtype = BULK_ONLY_DTYPE if bulk_only else torch.float64
    along_rows = len(grid.col_starts) == 1
    starts = grid.row_starts if along_rows else grid.col_starts
    size = grid.h
    cuts = sorted(set(starts) | {s + size for s in starts})
    spans = [(a, b) for a, b in zip(cuts[:-1], cuts[1:]) if any(s <= a and b <= s + size for s in starts)]
    out = []
    for k in range(mats.shape[0]):
        m = mats[k, :, grid.col_starts[0] : grid.col_starts[0] + grid.w] if along_rows \
            else mats[k, grid.row_starts[0] : grid.row_starts[0] + grid.h, :].mT
        blocks = {}
        for a, b in spans:  # each span converted on its own: no float64 copy of the whole band
            blocks[(a, b)] = gram_of(m[a:b].to(dtype))
        grams = torch.stack([sum(g for (a, b), g in blocks.items() if s <= a and b <= s + size) for s in starts])
        out.append(eigvalsh_batched(grams).clamp_min(0).reshape(-1).cpu().numpy())
    return np.sort(np.concatenate(out))


def conv_blocks(rows: int, cols: int, q: float) -> WindowGrid:
    """The FARMS release's blocks for a conv slice of ``rows`` x ``cols`` (out x in).

    ``net_esd_estimator_farms`` turns each kernel position into a slice transposed so that
    R >= C (R, C the long and short side), takes windows of r x c with r = C // q, c = C for
    q > 1 and r = C, c = C // (1 / q) otherwise (at least 1), and cuts block i as rows
    [i r, (i + 1) r), columns [0, c) for i < R // C (leftover rows dropped). The blocks are
    given here in the slice's own orientation (column blocks when out < in).
    """
    R, C = max(rows, cols), min(rows, cols)
    if q > 1:
        r, c = C // q, C
    else:
        r, c = C, C // (1 / q)
    r, c = max(1, int(r)), max(1, int(c))
    starts = tuple(i * r for i in range(R // C))
    if rows >= cols:
        return WindowGrid(rows, cols, r, c, starts, (0,), r, 0)
    return WindowGrid(rows, cols, c, r, (0,), starts, 0, r)


def conv_block_esds(slices: torch.Tensor, q: float, device: str = "cpu", raw: np.ndarray | None = None,
                    bulk_only: bool = False) -> tuple[list[np.ndarray], WindowGrid]:
    """The release's conv FARMS ESDs: for each block of :func:`conv_blocks`, the pooled,
    ascending eigenvalues of that block in every kernel-position slice (k, rows, cols).

    A square slice at q = 1 is one block covering it: its ESD is the raw ESD, returned as
    ``raw`` when given instead of being solved again (as in :func:`farms_esd`).
    """
    mats = slices.to(torch_device(device), dtype=torch.float32)
    k = mats.shape[0]
    grid = conv_blocks(mats.shape[1], mats.shape[2], q)
    if raw is not None and grid.n_windows == 1 and (grid.h, grid.w) == (grid.rows, grid.cols):
        return [raw], grid
    stack = farms_windows(mats, grid)  # (k * n_blocks, h, w), slice-major
    eigs = matrix_eigs(stack, bulk_only=bulk_only).reshape(k, grid.n_windows, -1)
    return [np.sort(eigs[:, b].reshape(-1)) for b in range(grid.n_windows)], grid
