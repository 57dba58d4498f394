"""GGML's Q4_1 round trip: bit for bit gguf-py's reference, idempotent, within its error bound."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gguf import GGMLQuantizationType
from gguf.quants import dequantize, quantize

from farms_viz import FarmsError
from farms_viz.zoo.ggml import QK4_1, q4_1_blocks, q4_1_round_trip


def _reference(w: torch.Tensor) -> torch.Tensor:
    """gguf-py's transcription of ggml's quantize_row_q4_1_ref and dequantize_row_q4_1."""
    q = quantize(w.numpy().astype(np.float32), GGMLQuantizationType.Q4_1)
    return torch.from_numpy(dequantize(q, GGMLQuantizationType.Q4_1).copy()).reshape(w.shape)


def _matrices():
    g = torch.Generator().manual_seed(0)
    yield "gaussian", torch.randn(96, 576, generator=g)
    yield "small-scale", torch.randn(64, 192, generator=g) * 0.02
    yield "fp16-subnormal-steps", torch.randn(16, 128, generator=g) * 1e-4
    yield "large-scale", torch.randn(16, 128, generator=g) * 300.0
    yield "heavy-tailed", torch.randn(64, 256, generator=g) ** 3
    yield "shifted", torch.rand(32, 64, generator=g) + 5.0
    c = torch.zeros(4, 64)
    c[1] = 3.3  # constant blocks: d = 0, every code 0
    c[2, :32] = -1.0
    yield "constant-blocks", c


MATRICES = dict(_matrices())


@pytest.mark.parametrize("name", MATRICES)
def test_round_trip_equals_gguf_reference_bit_for_bit(name):
    w = MATRICES[name]
    got = q4_1_round_trip(w)
    assert got.dtype == torch.float32 and got.shape == w.shape
    assert torch.equal(got, _reference(w))


@pytest.mark.parametrize("name", MATRICES)
def test_round_trip_of_a_round_trip_is_identical(name):
    once = q4_1_round_trip(MATRICES[name])
    assert torch.equal(q4_1_round_trip(once), once)


@pytest.mark.parametrize("name", MATRICES)
def test_error_is_half_a_step_plus_the_fp16_rounding_of_step_and_minimum(name):
    """|x - x'| <= d/2 + 15 |d - fp16(d)| + |m - fp16(m)| per block (codes are chosen before d and m
    are rounded to float16, so d/2 alone is exceeded by up to that rounding: 0.507 d on a Gaussian)."""
    w = MATRICES[name]
    _, d, m = q4_1_blocks(w)
    d16, m16 = d.half().float(), m.half().float()
    err = (w - q4_1_round_trip(w)).reshape(-1, QK4_1).abs()
    bound = d / 2 + 15 * (d - d16).abs() + (m - m16).abs()
    slack = 4 * torch.finfo(torch.float32).eps * (w.reshape(-1, QK4_1).abs().amax(1, keepdim=True) + d)
    assert (err <= bound + slack).all()


def test_error_is_at_most_half_a_step_when_step_and_minimum_are_exact_in_fp16():
    g = torch.Generator().manual_seed(4)
    d, m = 2.0 ** -6, -0.125  # both exact in float16, and max - min = 15 d exactly in float32
    w = m + 15 * d * torch.rand(8, 64, generator=g)
    blocks = w.reshape(-1, QK4_1)
    blocks[:, 0], blocks[:, 1] = m, m + 15 * d
    err = (w - q4_1_round_trip(w)).abs()
    assert float(err.max()) <= d / 2 * (1 + 4 * torch.finfo(torch.float32).eps)
    assert float(err.max()) > 0.45 * d  # and the bound is reached, nearly: 512 uniform draws


def test_gaussian_error_matches_uniform_rounding():
    """Uniform rounding in steps d leaves d^2/12 per weight; a block's min and max (2 of 32) are
    exact up to the fp16 rounding, so ||W - rt(W)||^2 ~ sum over blocks of 30 d^2 / 12."""
    w = torch.randn(1536, 576, generator=torch.Generator().manual_seed(1))
    _, d, _ = q4_1_blocks(w)
    err2 = float(((w - q4_1_round_trip(w)) ** 2).sum())
    assert err2 / float((30 * d ** 2 / 12).sum()) == pytest.approx(1.0, abs=0.02)
    rel = float(torch.linalg.norm(w - q4_1_round_trip(w)) / torch.linalg.norm(w))
    assert rel == pytest.approx(0.078, abs=0.002)  # 4 bits on a Gaussian: 7.8% of the Frobenius norm


def test_values_on_a_q4_1_grid_come_back_unchanged():
    g = torch.Generator().manual_seed(2)
    d, m = torch.tensor(0.015625), torch.tensor(-0.125)  # both exact in float16
    codes = torch.randint(0, 16, (8, 64), generator=g).float()
    codes.reshape(-1, QK4_1)[:, 0], codes.reshape(-1, QK4_1)[:, 1] = 0.0, 15.0  # each block spans the grid
    w = codes * d + m
    assert torch.equal(q4_1_round_trip(w), w)


def test_round_trip_keeps_shape_and_reads_other_float_dtypes():
    w = torch.randn(2, 3, 64, generator=torch.Generator().manual_seed(3))
    assert torch.equal(q4_1_round_trip(w.double()), q4_1_round_trip(w))
    assert q4_1_round_trip(w).shape == (2, 3, 64)


@pytest.mark.parametrize("bad, words", [
    (torch.zeros(4, 48), "blocks of 32"),
    (torch.tensor([[float("nan")] * 32]), "NaN"),
    (torch.zeros(4, 32, dtype=torch.int64), "floating-point"),
])
def test_unquantizable_input_is_one_sentence(bad, words):
    with pytest.raises(FarmsError, match=words):
        q4_1_round_trip(bad)


def test_any_width_round_trip_quantizes_the_short_last_block_by_its_own_range():
    from farms_viz.zoo.ggml import q4_1_round_trip_any_width

    w = torch.randn(5, 70, generator=torch.Generator().manual_seed(3))
    got = q4_1_round_trip_any_width(w)
    assert got.shape == w.shape
    assert torch.equal(got[:, :64], q4_1_round_trip(w[:, :64]))  # whole blocks: the round trip itself
    tail = w[:, 64:]
    padded = torch.cat([tail, tail[:, :1].expand(5, 26)], dim=1)  # 6 values + 26 copies of the first
    assert torch.equal(got[:, 64:], q4_1_round_trip(padded)[:, :6])
    assert torch.equal(q4_1_round_trip_any_width(w[:, :64]), q4_1_round_trip(w[:, :64]))
