"""GGML's Q4_1 block quantization reproduced in torch, to see how much of a spectrum is rounding.

Q4_1 (llama.cpp's ``quantize_row_q4_1_ref``; gguf-py's ``gguf.quants.Q4_1``) cuts each row into
blocks of :data:`QK4_1` = 32 weights. A block keeps its minimum ``m`` and step ``d = (max - m) / 15``,
both stored as float16, and one 4-bit code per weight, ``q = trunc((x - m) * (1 / d) + 0.5)``
clipped to 0..15 (computed in float32 from the unrounded ``d`` and ``m``). Dequantized, the weight
is ``q * fp16(d) + fp16(m)``. Because ``d`` and ``m`` are rounded after ``q`` is chosen, the error
per weight is at most ``d / 2`` plus that rounding: ``15 |d - fp16(d)| + |m - fp16(m)|``.
"""

from __future__ import annotations

import torch

from farms_viz.errors import FarmsError

#: weights per Q4_1 block (ggml's QK4_1)
QK4_1 = 32
#: the largest 4-bit code: a block spans 15 steps
Q4_LEVELS = 15


def q4_1_blocks(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(q, d, m)`` of ``w``'s Q4_1 blocks: codes (blocks, 32) as float32, and the float32 step and
    minimum (blocks, 1) before their float16 rounding. Rows are cut into blocks of 32."""
    if not isinstance(w, torch.Tensor) or w.ndim < 1 or not w.is_floating_point():
        raise FarmsError("Q4_1 quantizes a floating-point tensor of at least one dimension.")
    if w.shape[-1] % QK4_1:
        raise FarmsError(f"Q4_1 quantizes rows in blocks of {QK4_1}, and these rows hold {w.shape[-1]} values.")
    x = w.detach().to(torch.float32).reshape(-1, QK4_1)
    if not bool(torch.isfinite(x).all()):
        raise FarmsError("Q4_1 cannot quantize a tensor holding NaN or infinite values.")
    m = x.amin(dim=1, keepdim=True)
    d = (x.amax(dim=1, keepdim=True) - m) / Q4_LEVELS
    inv = torch.where(d == 0, torch.zeros_like(d), 1.0 / d)  # ggml: id = d ? 1.0f/d : 0.0f
    q = ((x - m) * inv + 0.5).trunc().clamp(0, Q4_LEVELS)
    return q, d, m


def q4_1_round_trip(w: torch.Tensor) -> torch.Tensor:
    """``w`` quantized to GGML's Q4_1 and dequantized again (float32, ``w``'s shape).

    Equal bit for bit to ``gguf.quants.dequantize(gguf.quants.quantize(w, Q4_1), Q4_1)``;
    a round trip of a round trip changes nothing."""
    q, d, m = q4_1_blocks(w)
    d16 = d.to(torch.float16).to(torch.float32)
    m16 = m.to(torch.float16).to(torch.float32)
    return (d16 * q + m16).reshape(w.shape)


def q4_1_round_trip_any_width(w: torch.Tensor) -> torch.Tensor:
    """:func:`q4_1_round_trip` of a matrix of any width: a row's last, shorter block is padded with
    copies of its own first value (which leaves its min and max, hence its levels, unchanged) and
    the padding is cut off after. For rows of a multiple of 32 values it is the round trip itself."""
    cols = w.shape[-1]
    extra = -cols % QK4_1
    if extra == 0:
        return q4_1_round_trip(w)
    start = cols - cols % QK4_1
    pad = w[..., start:start + 1].expand(*w.shape[:-1], extra)
    return q4_1_round_trip(torch.cat([w, pad], dim=-1))[..., :cols]
