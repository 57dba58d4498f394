"""A weight tensor to the 2-D matrices FARMS analyses (one job: layer geometry).

Rules (kept in this one place):
- ``linear``: the weight as stored, (out_features, in_features).
- ``conv1d_hf``: Hugging Face ``Conv1D`` (GPT-2) stores (in, out); transposed to (out, in).
- ``conv2d`` (out, in, kh, kw) and ``conv1d`` (out, in, k): kh*kw (or k) kernel-position
  slices of out x in, each scaled by sqrt(conv_norm); their eigenvalues are pooled (the
  FARMS release and WeightWatcher). How FARMS windows them is ``Settings.conv_rule``.
- ``conv2d_depthwise`` (out, 1, kh, kw): the same kh*kw slices, each out x 1, whose one
  eigenvalue is a squared column norm, as in the FARMS release and WeightWatcher.
- ``embedding``: the (num_embeddings, dim) table, analysed only when asked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from farms_viz.errors import FarmsError

KINDS = ("linear", "conv1d_hf", "conv1d", "conv2d", "conv2d_depthwise", "embedding")


@dataclass
class LayerMatrices:
    """The matrices of one layer: ``slices`` is (k, rows, cols) float32."""

    kind: str
    slices: torch.Tensor

    @property
    def rows(self) -> int:
        return int(self.slices.shape[1])

    @property
    def cols(self) -> int:
        return int(self.slices.shape[2])

    @property
    def n_slices(self) -> int:
        return int(self.slices.shape[0])


def infer_kind(name: str, shape: tuple[int, ...]) -> str | None:
    """Guess a layer kind from a tensor's name and shape (None: not a matrix layer)."""
    low = name.lower()
    if len(shape) == 2:
        if any(t in low for t in ("embed", "wte", "wpe", "lm_head_embed")):
            return "embedding"
        return "linear"
    if len(shape) == 3:
        return "conv1d"
    if len(shape) == 4:
        if shape[1] == 1 and shape[2] * shape[3] > 1:
            return "conv2d_depthwise"
        return "conv2d"
    return None


def to_matrices(weight: torch.Tensor, kind: str, conv_norm: float = 0.5) -> LayerMatrices:
    """Cut a weight tensor into the layer's (k, rows, cols) float32 matrices."""
    w = weight.detach()
    if w.is_floating_point():
        w = w.to(torch.float32)
    else:
        raise FarmsError(f"a {str(w.dtype).replace('torch.', '')} tensor is not a float weight matrix")
    s = math.sqrt(conv_norm)
    if kind in ("linear", "embedding"):
        _expect(w, 2, kind)
        return LayerMatrices(kind, w.unsqueeze(0))
    if kind == "conv1d_hf":
        _expect(w, 2, kind)
        return LayerMatrices(kind, w.t().unsqueeze(0))
    if kind == "conv1d":
        _expect(w, 3, kind)
        return LayerMatrices(kind, w.permute(2, 0, 1).contiguous() * s)
    if kind in ("conv2d", "conv2d_depthwise"):
        _expect(w, 4, kind)
        out, inp, kh, kw = w.shape
        return LayerMatrices(kind, w.permute(2, 3, 0, 1).reshape(kh * kw, out, inp) * s)
    raise FarmsError(f"unknown layer kind {kind!r}")


def _expect(w: torch.Tensor, ndim: int, kind: str) -> None:
    if w.ndim != ndim:
        raise FarmsError(f"a {kind} weight must have {ndim} dimensions, this one has shape {tuple(w.shape)}")
