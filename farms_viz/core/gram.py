"""Gram matrices W^T W of weight stacks: in a wider dtype without a wider copy of the weights, through
numpy's BLAS on CPU (see NUMPY_GRAM), and the largest |entry| without an |W| copy."""

from __future__ import annotations

import numpy as np
import torch

#: A Gram matrix formed in a wider dtype than its matrix is summed over row chunks of about this
#: many bytes in the wider dtype, so no whole-matrix float64 copy exists (an 8192 x 8192 float32
#: layer's float64 twin is 512 MiB).
GRAM_CHUNK_BYTES = 32 * 2**20


#: On CPU, Gram products go through numpy's BLAS (OpenBLAS) rather than torch's (MKL). Measured on
#: the 2-core AMD EPYC these machines have, 2048 x 2048 W^T W on one thread: numpy 0.19 s, torch
#: 0.36-0.39 s in float64, 0.10 vs 0.19 s in float32; two concurrent products (the layer pool):
#: 0.23 s for both vs 0.36 s. numpy releases the GIL in BLAS calls, as torch does.
NUMPY_GRAM = True


def gram_of(y: torch.Tensor) -> torch.Tensor:
    """y^T y of a matrix or a stack (..., long, short), in y's dtype and on y's device (see NUMPY_GRAM)."""
    if NUMPY_GRAM and y.device.type == "cpu":
        a = y.detach().numpy()
        return torch.from_numpy(np.matmul(a.swapaxes(-1, -2), a))
    return y.mT @ y


def gram(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The smaller Gram matrix of each matrix of a stack (k, m, n), in ``dtype``.

    When ``dtype`` is wider than ``x``'s and the wider copy would pass GRAM_CHUNK_BYTES, the product
    is accumulated over chunks of the long side, each chunk converted on its own: the peak is the
    Gram matrices plus one chunk (and, on CPU, one scratch block of the same size), not a copy of ``x``.
    """
    tall = x.shape[-2] >= x.shape[-1]
    y = x if tall else x.mT  # (k, long, short): G = y^T y
    wide_bytes = y.numel() * torch.finfo(dtype).bits // 8
    if x.dtype == dtype or wide_bytes <= GRAM_CHUNK_BYTES:
        return gram_of(y.to(dtype))
    k, long_, short = y.shape
    if NUMPY_GRAM and y.device.type == "cpu":
        return torch.from_numpy(_chunked_gram(y.detach().numpy(), torch.empty((), dtype=dtype).numpy().dtype))
    step = max(1, int(GRAM_CHUNK_BYTES // max(1, k * short * torch.finfo(dtype).bits // 8)))
    g = torch.zeros((k, short, short), dtype=dtype, device=x.device)
    for s in range(0, long_, step):
        c = y[:, s : s + step].to(dtype)
        g.baddbmm_(c.mT, c)
    return g


def _chunked_gram(y: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """y^T y of each matrix of a stack (k, long, short) in the wider ``dtype``, from row chunks of
    about GRAM_CHUNK_BYTES converted one at a time; numpy's matmul cannot add into its output, so
    each chunk's product goes through a scratch block of G's columns of the same size."""
    k, long_, short = y.shape
    rows = max(1, GRAM_CHUNK_BYTES // (short * dtype.itemsize))
    cols = max(1, min(short, GRAM_CHUNK_BYTES // (short * dtype.itemsize)))
    g = np.zeros((k, short, short), dtype=dtype)
    scratch = np.empty((short, cols), dtype=dtype)
    for i in range(k):
        for s in range(0, long_, rows):
            c = y[i, s : s + rows].astype(dtype)
            for b in range(0, short, cols):
                part = scratch[:, : min(cols, short - b)]
                np.matmul(c.T, c[:, b : b + cols], out=part)
                g[i, :, b : b + cols] += part
    return g


def abs_max(x: torch.Tensor) -> torch.Tensor:
    """The largest |entry| of each matrix of a stack (k, m, n), float64, without an |x| copy."""
    flat = x.detach().reshape(x.shape[0], -1)
    lo, hi = torch.aminmax(flat, dim=1)
    return torch.maximum(hi, -lo).to(torch.float64)
