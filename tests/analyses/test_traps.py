"""analyses.traps (the layer browser's trap entries, from the file again), summary lines and the
CLI's --seed / --randomize."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import save_file

from farms_viz import cli
from farms_viz.analyses.summary import summary_lines
from farms_viz.analyses.traps import MAX_TRAP_ENTRIES, layer_trap_entries, searchable, trap_sentence
from farms_viz.settings import Settings


@pytest.fixture
def trap_file(tmp_path):
    g = torch.Generator().manual_seed(0)
    w = torch.randn(128, 256, generator=g) / 16
    w[10, 20] = 30.0
    plain = torch.randn(128, 256, generator=g) / 16
    p = tmp_path / "trap.safetensors"
    save_file({"trap.weight": w.contiguous(), "plain.weight": plain.contiguous()}, str(p))
    return p


def test_the_planted_entry_is_found_from_the_file(trap_file):
    found = layer_trap_entries(str(trap_file), "trap", Settings(ops=3))
    e = found.entries
    assert e.cleared and e.num_traps_before == 1 and e.positions.tolist() == [[0, 10, 20]]
    assert e.values.tolist() == [30.0]
    words = trap_sentence(1, found)
    assert words.startswith("The 1 entry ringed on |W| causes the raw randomized ESD's 1 correlation trap")


def test_big_layers_are_not_searched_and_the_sentence_says_why():
    assert searchable(512, 2048) is None
    why = searchable(1024, 2048)
    assert why and f"{MAX_TRAP_ENTRIES:,}" in why
    assert "off" in trap_sentence(None)
    assert "no correlation traps" in trap_sentence(0)


def test_summary_lines_give_every_metric_raw_and_farms():
    s = pd.DataFrame({"metric": ["alpha", "log_norm"], "raw": [3.0, 1.5], "farms": [2.5, 1.25],
                      "raw_changeable": [3.5, 1.5], "farms_changeable": [2.0, 1.0], "n_layers": 4, "n_changeable": 2})
    lines = summary_lines(s)
    assert lines[0] == "  means over 4 layers (raw / FARMS) | over the 2 FARMS can change"
    assert lines[2].split() == ["log_norm", "1.5", "/", "1.25", "|", "1.5", "/", "1"]


def test_cli_seed_and_no_randomize(trap_file, tmp_path, capsys):
    out = tmp_path / "t.csv"
    assert cli.main(["analyze", str(trap_file), "--out", str(out), "--ops", "3", "--quiet", "--no-cache",
                     "--seed", "7"]) == 0
    t = pd.read_csv(out).set_index("layer")
    assert t.at["trap", "num_traps_raw"] == 1 and t.at["plain", "num_traps_raw"] == 0
    printed = capsys.readouterr().out
    assert "num_traps" in printed and "means over 2 layers" in printed
    assert cli.main(["analyze", str(trap_file), "--out", str(out), "--ops", "3", "--quiet", "--no-cache",
                     "--no-randomize"]) == 0
    assert np.isnan(pd.read_csv(out)["num_traps_raw"]).all()
    args = cli.build_parser().parse_args(["analyze", "x", "--out", "y.csv"])
    assert args.randomize is None and args.seed is None  # the preset's defaults then apply
