"""Transformer blocks in layer names: which block a layer is in, its role there, block means.

Names like ``model.layers.3.mlp.up_proj``, ``encoder.layer.3.output.dense``, ``h.3.attn.c_attn``
or ``blocks.3.fc1`` are in block ``"3"`` (AlphaPruning allocates per block).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from farms_viz.errors import FarmsError

#: ``<prefix>.layers.12.<rest>`` and friends: the transformer block number of a layer name
BLOCK_RE = re.compile(r"(?:^|\.)(?:layers|layer|h|blocks|block)\.(\d+)(?=\.|$)")


def block_ids(layers, block_size: int | None = None) -> list[str | None]:
    """The block of each layer: consecutive groups of ``block_size``, else the number in its name.

    Names like ``model.layers.3.mlp.up_proj``, ``encoder.layer.3.output.dense``, ``h.3.attn.c_attn``
    or ``blocks.3.fc1`` are in block ``"3"``; a layer without one (embeddings, pooler, head) is None.
    """
    layers = [str(x) for x in layers]
    if block_size is not None:
        if int(block_size) < 1:
            raise FarmsError(f"the block size must be a positive number of layers (got {block_size}).")
        return [str(i // int(block_size)) for i in range(len(layers))]
    out = []
    for name in layers:
        m = BLOCK_RE.search(name)
        out.append(m.group(1) if m else None)
    return out


def has_blocks(layers) -> bool:
    """True when at least two layers share a block number in their names (a transformer)."""
    ids = [b for b in block_ids(layers) if b is not None]
    return len(ids) > len(set(ids)) and len(set(ids)) >= 2


def in_blocks(layers) -> np.ndarray:
    """Mask of the layers inside a numbered transformer block (AlphaPruning prunes only those)."""
    return np.array([b is not None for b in block_ids(layers)], dtype=bool)


def matrix_role(name: str) -> str:
    """A layer's place inside its block: the name after ``layers.N.`` (``self_attn.q_proj``), else the name."""
    m = BLOCK_RE.search(str(name))
    return str(name)[m.end() + 1:] if m and m.end() < len(str(name)) else str(name)


_ATTN = re.compile(r"attn|attention|(^|\.)(q|k|v|o|qkv)_?proj|query|key|value|c_attn", re.I)


def matrix_group(name: str) -> str:
    """``attention`` or ``mlp`` for a layer inside a transformer block (attention words win)."""
    return "attention" if _ATTN.search(matrix_role(name)) else "mlp"


def block_mean_alphas(alphas, blocks: list[str | None]) -> np.ndarray:
    """Each layer's alpha replaced by the mean (over finite alphas) of its block; no block: unchanged."""
    a = np.asarray(alphas, dtype=np.float64).copy()
    keys = pd.Series(blocks, dtype=object)
    for b in keys.dropna().unique():
        idx = np.flatnonzero((keys == b).to_numpy())
        vals = a[idx]
        fin = vals[np.isfinite(vals)]
        a[idx] = fin.mean() if fin.size else np.nan
    return a
