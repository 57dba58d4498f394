"""The layer-matching rules on bare names (analyses/matching.py); the tables they make are in test_compare.py."""

from __future__ import annotations

import pytest

from farms_viz.analyses.matching import affixes, match_layers, match_names, strip
from farms_viz.errors import FarmsError


def test_a_deep_common_prefix_is_found_by_the_longest_common_prefix():
    a = ["model.decoder.layers.0.q", "model.decoder.layers.0.k", "model.decoder.layers.1.q"]
    b = ["0.q", "0.k", "1.q"]
    m = match_names(a, b)
    assert m.pairs == tuple(zip(a, b)) and m.strip_a == ("model.decoder.layers.", "")
    assert "model.decoder.layers." in affixes(a)[0]


def test_of_two_strips_that_pair_as_many_the_shorter_wins():
    # stripping 'enc.' from A alone, or 'enc.blk.' from A and 'blk.' from B, pair the same three
    a, b = ["enc.blk.0", "enc.blk.1", "enc.blk.2"], ["blk.0", "blk.1", "blk.2"]
    m = match_names(a, b)
    assert (m.strip_a, m.strip_b) == (("enc.", ""), ("", ""))
    assert m.describe() == "3 of 3 layers matched after stripping the prefix 'enc.' from A"


def test_strip_keeps_names_without_the_affix_and_never_empties_one():
    assert strip("model.fc", "model.", "") == "fc" and strip("lm_head", "model.", "") == "lm_head"
    assert strip(".w", "", ".w") == ".w"
    assert strip("model.fc.w", "model.", ".w") == "fc"


def test_two_names_that_strip_alike_pair_once_first_wins():
    m = match_names(["x.fc", "y.fc", "x.out"], ["fc", "out"])
    assert m.pairs == (("x.fc", "fc"), ("x.out", "out"))


def test_order_ignores_a_layer_of_unknown_shape():
    m = match_layers(["a", "b"], ["c", "d"], {"a": None, "b": (8, 8)}, {"c": (8, 8), "d": None}, "order")
    assert m.pairs == (("b", "c"),)


def test_name_mode_never_strips():
    with pytest.raises(FarmsError, match="^A and B have no layer name in common: nothing to compare by exact name"):
        match_layers(["model.fc"], ["fc"], {}, {}, "name")
