"""Allocations: TempBalance lr maps and AlphaPruning sparsities against hand-computed cases, the CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from farms_viz.analyses import allocate as al
from farms_viz.analyses import blocks
from farms_viz.cli import main
from farms_viz.errors import FarmsError
from farms_viz.zoo import registry as zoo

ROOT = Path(__file__).resolve().parents[2]


def _table(alphas_raw, alphas_farms=None, rows=None, cols=None, names=None) -> pd.DataFrame:
    n = len(alphas_raw)
    return pd.DataFrame({"layer": names or [f"l{i}" for i in range(n)], "rows": rows or [10] * n,
                         "cols": cols or [10] * n, "alpha_raw": alphas_raw,
                         "alpha_farms": alphas_farms if alphas_farms is not None else alphas_raw})


# ------------------------------------------------------------------ AlphaPruning

def test_alphapruning_matches_hand_computed_case():
    # r = [0.5, 1.0, 1.5]; scale = S sum(p) / sum(p r) = 0.5 * 4 / 4.5
    ratios, capped = al.alphapruning_ratios([2.0, 3.0, 4.0], [1, 1, 2], sparsity=0.5, epsilon=0.5)
    np.testing.assert_allclose(ratios, np.array([0.5, 1.0, 1.5]) * 2 / 4.5, rtol=1e-12)
    assert not capped.any()


def test_alphapruning_weighted_mean_is_the_target():
    t = zoo.published_table()
    p = al.param_counts(t)
    for s, eps, bw in ((0.5, 0.1, False), (0.7, 0.3, False), (0.8, 0.2, True), (0.8, 0.3, False)):
        a = al.alphapruning(t, s, eps, block_wise=bw)
        for col in ("ratio_raw", "ratio_farms"):
            assert al.weighted_mean(a.table[col], p) == pytest.approx(s, abs=1e-12)
            assert a.table[col].max() <= 1.0


def test_alphapruning_caps_at_one_and_keeps_the_mean():
    # r = [0.5, 1.5] * 0.9 -> [0.45, 1.35]: the second is capped at 1 and the first takes the excess (0.8)
    ratios, capped = al.alphapruning_ratios([1.0, 2.0], [1, 1], sparsity=0.9, epsilon=0.5)
    np.testing.assert_allclose(ratios, [0.8, 1.0], rtol=1e-12)
    assert capped.tolist() == [False, True]
    t = zoo.published_table()
    a = al.alphapruning(t, 0.8, 0.3)
    assert a.capped["raw"] and a.capped["farms"]
    assert (a.table.set_index("layer").loc[a.capped["raw"], "ratio_raw"] == 1.0).all()


def test_alphapruning_equal_alphas_give_uniform_sparsity():
    ratios, capped = al.alphapruning_ratios([3.0, 3.0, 3.0], [1, 5, 9], sparsity=0.6, epsilon=0.3)
    np.testing.assert_allclose(ratios, 0.6)
    assert not capped.any()


def test_alphapruning_missing_alpha_gets_target_and_mean_stays_exact():
    t = _table([2.0, np.nan, 4.0, 3.0], rows=[10, 20, 30, 10])
    a = al.alphapruning(t, 0.5, 0.2)
    assert a.table["ratio_raw"][1] == 0.5 and a.missing["raw"] == ["l1"]
    assert al.weighted_mean(a.table["ratio_raw"], al.param_counts(t)) == pytest.approx(0.5, abs=1e-12)
    assert np.isfinite(a.table["ratio_raw"]).all()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(1.5, 8.0), min_size=2, max_size=30), st.floats(0.05, 0.95), st.floats(0.0, 0.9))
def test_alphapruning_is_monotonic_in_alpha(alphas, s, eps):
    p = np.arange(1, len(alphas) + 1, dtype=float) ** 1.5
    ratios, _ = al.alphapruning_ratios(alphas, p, s, eps)
    order = np.argsort(alphas, kind="stable")
    assert (np.diff(ratios[order]) >= -1e-12).all()
    assert (ratios <= 1.0).all() and (ratios >= 0).all()
    assert al.weighted_mean(ratios, p) == pytest.approx(s, abs=1e-9)


def test_block_ids_from_names_and_size():
    names = ["embeddings.word", "encoder.layer.3.output.dense", "h.11.attn.c_attn", "blocks.2.fc1",
             "model.layers.10.mlp.up_proj", "pooler.dense", "transformer.layers.5"]
    assert blocks.block_ids(names) == [None, "3", "11", "2", "10", None, "5"]
    assert blocks.block_ids(list("abcde"), block_size=2) == ["0", "0", "1", "1", "2"]
    assert blocks.matrix_role("model.layers.10.mlp.up_proj") == "mlp.up_proj"
    assert blocks.matrix_group("model.layers.1.self_attn.o_proj") == "attention"
    assert blocks.matrix_group("encoder.layer.1.attention.output.dense") == "attention"
    assert blocks.matrix_group("encoder.layer.1.output.dense") == "mlp"
    with pytest.raises(FarmsError):
        blocks.block_ids(["a"], block_size=0)


def _alphapruning_release(alphas, params, sparsity, epsilon, layers_per_block):
    """The AlphaPruning release's ``ww_sparsity`` (block_wise mapping), written the way it is there."""
    metrics = [float(np.mean(alphas[i:i + layers_per_block])) for i in range(0, len(alphas), layers_per_block)]
    scores = torch.tensor([m for m in metrics for _ in range(layers_per_block)], dtype=torch.float64)
    prunables = torch.tensor(params, dtype=torch.float64)
    s1, s2 = 1 - epsilon, 1 + epsilon
    ratios = (scores - scores.min()) / (scores.max() - scores.min()) * (s2 - s1) + s1
    return (ratios * torch.sum(prunables) * sparsity / torch.sum(prunables * ratios)).numpy()


def test_block_wise_matches_the_release_and_names_equal_block_size():
    t = zoo.published_table()
    by_names = al.alphapruning(t, 0.7, 0.3, block_wise=True)
    by_size = al.alphapruning(t, 0.7, 0.3, block_size=7)
    pd.testing.assert_frame_equal(by_names.table, by_size.table)
    for w in ("raw", "farms"):
        ref = _alphapruning_release(t[f"alpha_{w}"].to_numpy(), al.param_counts(t), 0.7, 0.3, 7)
        np.testing.assert_allclose(by_names.table[f"ratio_{w}"], ref, rtol=1e-12)
    assert by_names.table.groupby(t["block"])["ratio_farms"].nunique().eq(1).all()


def test_llama_blocks_that_move_most_at_07_03():
    t = zoo.published_table()
    a = al.alphapruning(t, 0.7, 0.3, block_wise=True)
    s = al.block_summary(a, t)
    top = s.reindex(s["delta"].abs().sort_values(ascending=False).index).head(5)
    assert top["block"].tolist() == ["30", "18", "29", "21", "4"]
    assert top["delta"].iloc[0] == pytest.approx(-0.0899, abs=1e-4)


# ------------------------------------------------------------------ TempBalance

def test_tempbalance_maps_match_hand_computed_cases():
    np.testing.assert_allclose(al.tempbalance_lrs([2, 4, 3], 1.0, "linear"), [0.5, 1.5, 1.0])
    np.testing.assert_allclose(al.tempbalance_lrs([1, 4], 0.1, "sqrt"), [2 * 0.1 * 1 / 3, 2 * 0.1 * 2 / 3])
    np.testing.assert_allclose(al.tempbalance_lrs([2, 8], 1.0, "log2"), [0.5, 1.5])
    np.testing.assert_allclose(al.tempbalance_lrs([3, 1, 2], 1.0, "step"), [0.5 + 2 / 3, 0.5, 0.5 + 1 / 3])
    np.testing.assert_allclose(al.tempbalance_lrs([2, 4, 3], 2.0, "linear", 0.2, 1.0), [0.4, 2.0, 1.2])


def test_tempbalance_keeps_first_and_last_at_base_lr():
    lrs = al.tempbalance_lrs([5, 1, 2, 3, 9], 1.0, "linear", keep_first=True, keep_last=True)
    np.testing.assert_allclose(lrs, [1.0, 0.5, 1.0, 1.5, 1.0])


def test_tempbalance_equal_and_missing_alphas():
    for m in al.MAPS:
        lrs = al.tempbalance_lrs([3.0] * 4, 1e-3, m)
        assert np.ptp(lrs) == 0 and np.isfinite(lrs).all()
    np.testing.assert_allclose(al.tempbalance_lrs([3.0] * 4, 1.0, "linear"), 1.0)
    lrs = al.tempbalance_lrs([2.0, np.nan, 4.0], 1.0, "linear")
    np.testing.assert_allclose(lrs, [0.5, 1.0, 1.5])
    with pytest.raises(FarmsError, match="log2"):
        al.tempbalance_lrs([0.9, 3.0], 1.0, "log2")


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(1.1, 8.0), min_size=2, max_size=30), st.sampled_from(al.MAPS))
def test_tempbalance_is_monotonic_in_alpha(alphas, m):
    lrs = al.tempbalance_lrs(alphas, 1e-3, m)
    order = np.argsort(alphas, kind="stable")
    assert (np.diff(lrs[order]) >= -1e-15).all()


def test_tables_are_side_by_side_in_input_order():
    t = _table([3.0, 2.0, 4.0], [2.5, 2.6, 2.7], names=["z", "a", "m"])
    a = al.tempbalance(t, 1.0)
    assert list(a.table.columns) == ["layer", "lr_raw", "lr_farms"] and a.table["layer"].tolist() == ["z", "a", "m"]
    np.testing.assert_allclose(a.table["lr_raw"], [1.0, 0.5, 1.5])
    np.testing.assert_allclose(a.table["lr_farms"], [0.5, 1.0, 1.5])
    b = al.alphapruning(t, 0.5, 0.2)
    assert list(b.table.columns) == ["layer", "ratio_raw", "ratio_farms"]
    with pytest.raises(FarmsError, match="alpha_farms"):
        al.alphapruning(t.drop(columns="alpha_farms"), 0.5, 0.2)


# ------------------------------------------------------------------ torch param groups

def test_param_groups_give_listed_modules_their_lr():
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2), torch.nn.LayerNorm(2))
    groups = al.param_groups(model, {"0": 0.2, "2.weight": 0.05}, base_lr=0.1)
    assert [g["lr"] for g in groups] == [0.2, 0.05, 0.1]
    assert groups[0]["params"] == [model[0].weight, model[0].bias]
    assert groups[2]["params"] == [model[3].weight, model[3].bias]
    opt = torch.optim.SGD(groups, lr=0.1)
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))
    with pytest.raises(FarmsError, match="not a module"):
        al.param_groups(model, {"missing": 1.0}, base_lr=0.1)
    assert len(al.param_groups(model, {"missing": 1.0}, base_lr=0.1, strict=False)) == 1


def test_readme_allocation_example_runs():
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Allocations"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    scope: dict = {}
    exec(compile(code, "README-allocations", "exec"), scope)  # noqa: S102
    assert isinstance(scope["opt"], torch.optim.Optimizer)


# ------------------------------------------------------------------ CLI

def test_cli_alphapruning_llama_csv_end_to_end(tmp_path, capsys):
    out = tmp_path / "ap.csv"
    rc = main(["allocate", str(zoo.LLAMA_CSV), "--scheme", "alphapruning", "--sparsity", "0.7", "--epsilon", "0.3",
               "--block-size", "7", "--out", str(out)])
    assert rc == 0
    got = pd.read_csv(out)
    t = zoo.published_table()
    ref = al.alphapruning(t, 0.7, 0.3, block_size=7).table
    assert list(got.columns) == ["layer", "ratio_raw", "ratio_farms"]
    assert got["layer"].tolist() == t["layer"].tolist()
    np.testing.assert_allclose(got[["ratio_raw", "ratio_farms"]], ref[["ratio_raw", "ratio_farms"]], rtol=1e-12)
    assert "weighted mean sparsity: raw 0.7000  FARMS 0.7000" in capsys.readouterr().out


def test_cli_tempbalance_json_from_zoo_name(tmp_path):
    out = tmp_path / "tb.json"
    assert main(["allocate", "llama-7b-published", "--scheme", "tempbalance", "--lr", "0.001", "--map", "sqrt",
                 "--out", str(out)]) == 0
    d = json.loads(out.read_text())
    assert set(d["raw"]) == set(d["farms"]) and len(d["farms"]) == 224
    t = zoo.published_table()
    np.testing.assert_allclose(list(d["farms"].values()), al.tempbalance_lrs(t["alpha_farms"], 0.001, "sqrt"))


def test_cli_on_an_analyze_table(tmp_path):
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(0)
    weights = tmp_path / "tiny.safetensors"
    save_file({"layers.0.fc1.weight": torch.randn(96, 32, generator=g),
               "layers.0.fc2.weight": torch.randn(32, 96, generator=g),
               "layers.1.fc1.weight": torch.randn(64, 32, generator=g)}, str(weights))
    report = tmp_path / "t.csv"
    assert main(["analyze", str(weights), "--out", str(report), "--quiet", "--no-cache", "--window", "16",
                 "--ops", "3"]) == 0
    out = tmp_path / "lr.csv"
    assert main(["allocate", str(report), "--scheme", "tempbalance", "--lr", "0.01", "--map", "step",
                 "--lr-min-ratio", "0.2", "--lr-max-ratio", "1.8", "--out", str(out)]) == 0
    got = pd.read_csv(out)
    t = pd.read_csv(report)
    assert got["layer"].tolist() == t["layer"].tolist()
    np.testing.assert_allclose(got["lr_raw"], al.tempbalance_lrs(t["alpha_raw"], 0.01, "step", 0.2, 1.8))


def test_cli_errors_are_one_sentence(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("layer,rows,cols,alpha_raw\nx,1,1,2\n")
    assert main(["allocate", str(bad), "--scheme", "alphapruning", "--sparsity", "0.5", "--out",
                 str(tmp_path / "o.csv")]) == 2
    assert "lacks the column alpha_farms" in capsys.readouterr().err
    assert main(["allocate", str(zoo.LLAMA_CSV), "--scheme", "tempbalance", "--out", str(tmp_path / "o.csv")]) == 2
    assert "needs --lr" in capsys.readouterr().err


# ------------------------------------------------------------------ figures

def test_allocation_figures_carry_the_numbers():
    from farms_viz.figures import allocate as fa

    t = zoo.published_table()
    a = al.alphapruning(t, 0.7, 0.3)
    fig = fa.allocation_chart(a, t)
    names = [tr.name for tr in fig.data]
    assert names[:3] == ["from α raw", "from α FARMS", "target S = 0.7"]
    by_name = {tr.name: tr for tr in fig.data}
    np.testing.assert_allclose(by_name["from α FARMS"].y, a.table["ratio_farms"])
    assert by_name["from α raw"].customdata[5][0] == t["layer"][5]
    heat = next(tr for tr in fa.delta_heatmap(a, t).data if tr.type == "heatmap")
    assert np.asarray(heat.z).shape == (7, 32)
    assert list(heat.y)[:2] == ["self_attn.q_proj", "self_attn.k_proj"]
    g = fa.group_chart(a, t)
    assert len(g.data) == 5  # attention/MLP x raw/FARMS + the target line
