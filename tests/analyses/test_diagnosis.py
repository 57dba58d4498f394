"""Diagnosis: bands and labels, the numbers card, and the words that say what FARMS measured."""

import math

import torch

from farms_viz import analyze
from farms_viz.analyses import diagnosis


def test_labels_follow_the_bands():
    assert [diagnosis.label(a) for a in (1.5, 2.0, 6.0, 6.1, math.nan)] == \
        ["over-trained", "well-trained", "well-trained", "under-trained", diagnosis.NO_FIT]
    assert diagnosis.BAND_EDGES == (2.0, 6.0)


def _conv_and_linear():
    torch.manual_seed(0)
    return {"conv.weight": torch.randn(96, 16, 3, 3), "fc.weight": torch.randn(300, 100)}


def test_conv_layers_under_the_release_rule_are_described_as_blocks():
    r = analyze(_conv_and_linear(), fit="xmin_mid", window=50, ops=3, cache=False)
    conv, fc = r.spectra["conv"], r.spectra["fc"]
    assert conv.blocks and not fc.blocks
    assert diagnosis.farms_what(conv, 9) == "6 blocks of 16 × 16 in each of 9 kernel positions: one fit per block, α averaged"
    assert diagnosis.farms_what(fc) == "9 windows of 50 × 50, pooled"
    assert "mean of the block fits" in diagnosis.grid_caption(conv.grid, 9, conv.blocks)
    card = diagnosis.layer_numbers(conv, r.table.set_index("layer").loc["conv"], "farms")
    assert card["alpha"].endswith("(mean of 6 block fits)")
    assert "spikes above λ+ per window" in card


def test_the_grid_rule_pools_conv_windows():
    r = analyze(_conv_and_linear(), fit="xmin_mid", window=16, ops=3, conv_rule="grid", cache=False)
    conv = r.spectra["conv"]
    assert not conv.blocks and diagnosis.farms_what(conv, 9).endswith(", pooled")


def test_a_single_window_is_named_as_the_whole_matrix():
    r = analyze({"sq.weight": torch.randn(64, 64)}, window=2000, ops=15, cache=False)
    spec = r.spectra["sq"]
    assert diagnosis.farms_what(spec) == "one window of 64 × 64: the whole matrix, so FARMS = raw"
    assert "1 × 1 = 1 window over" in diagnosis.grid_caption(spec.grid)
