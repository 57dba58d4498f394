"""Which weights a layer loses: the exact count of a sparsity, and the masks of the smallest scores
(ties broken by position, so every result is deterministic)."""

from __future__ import annotations

import numpy as np
import torch


def pruned_count(ratio: float, numel: int) -> int:
    """``k = floor(ratio * numel + 1/2)``: the number of weights a layer loses."""
    return int(np.floor(float(ratio) * int(numel) + 0.5))


def smallest_mask(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean mask of the ``k`` smallest entries of ``scores`` (all of it one group; ties by position)."""
    flat = scores.reshape(-1)
    mask = torch.zeros(flat.numel(), dtype=torch.bool)
    if k > 0:
        order = torch.sort(flat, stable=True).indices
        mask[order[:k]] = True
    return mask.view(scores.shape)


def row_mask(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Mask of ``k`` entries of a (rows, cols) score matrix, the smallest of each row: ``k // rows``
    per row and one more in the first ``k % rows`` rows (ties by column)."""
    rows, cols = scores.shape
    per_row = torch.full((rows,), k // rows, dtype=torch.int64)
    per_row[: k % rows] += 1
    order = torch.sort(scores, dim=1, stable=True).indices
    take = torch.arange(cols)[None, :] < per_row[:, None]
    mask = torch.zeros(rows, cols, dtype=torch.bool)
    mask.scatter_(1, order, take)
    return mask
