"""Comparing checkpoints: matching rules, diagnosis changes, series tables, step sorting, the CLI, the figures."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from farms_viz import analyze
from farms_viz.analyses.compare import (
    CORE_COLUMNS,
    checkpoint_files,
    compare_summary,
    compare_tables,
    diagnosis_changes,
    series_long,
    series_mean,
    series_wide,
    step_number,
    unmatched,
    zoo_series,
)
from farms_viz.cli import main
from farms_viz.errors import FarmsError
from farms_viz.figures import compare as fc


def _t(rows) -> pd.DataFrame:
    """A report-shaped table from (layer, rows, cols, alpha_raw, alpha_farms[, status])."""
    out = []
    for r in rows:
        layer, nr, nc, ar, af, *st = r
        out.append(dict(layer=layer, kind="linear", rows=nr, cols=nc, alpha_raw=ar, alpha_farms=af,
                        status=st[0] if st else "ok"))
    return pd.DataFrame(out)


A = _t([("fc1", 64, 32, 3.0, 2.5), ("fc2", 32, 32, 4.0, 4.0), ("old_name", 16, 32, 2.5, 2.2), ("gone", 8, 8, 3.0, 3.0),
        ("head", 10, 32, 5.0, 4.0)])
B = _t([("fc1", 64, 32, 1.5, 2.0), ("fc2", 32, 48, 4.5, 3.5), ("new_name", 16, 32, 2.4, 2.1),
        ("head", 10, 32, math.nan, 3.0, "too few nonzero eigenvalues"), ("extra", 4, 4, 2.0, 2.0)])


@pytest.fixture(scope="module")
def cmp() -> pd.DataFrame:
    return compare_tables(A, B)


def test_columns_start_with_the_promised_ones(cmp):
    assert list(cmp.columns[:len(CORE_COLUMNS)]) == CORE_COLUMNS


def test_rows_in_a_order_then_b_only_in_b_order(cmp):
    assert cmp["layer"].tolist() == ["fc1", "fc2", "old_name", "gone", "head", "new_name", "extra"]


def test_matched_layer_delta_is_b_minus_a(cmp):
    r = cmp.set_index("layer").loc["fc1"]
    assert r["status"] == "ok"
    assert r["delta_raw"] == pytest.approx(1.5 - 3.0) and r["delta_farms"] == pytest.approx(2.0 - 2.5)


def test_renamed_layer_is_only_in_a_and_only_in_b_without_delta(cmp):
    s = cmp.set_index("layer")
    assert s.loc["old_name", "status"] == "only in A" and s.loc["new_name", "status"] == "only in B"
    assert np.isnan(s.loc["old_name", "delta_raw"]) and np.isnan(s.loc["new_name", "delta_farms"])
    assert s.loc["old_name", "alpha_raw_a"] == 2.5 and np.isnan(s.loc["old_name", "alpha_raw_b"])
    assert s.loc["new_name", "alpha_farms_b"] == 2.1 and np.isnan(s.loc["new_name", "alpha_farms_a"])


def test_missing_layer_is_listed_not_dropped(cmp):
    s = cmp.set_index("layer")
    assert s.loc["gone", "status"] == "only in A" and s.loc["extra", "status"] == "only in B"
    assert set(unmatched(cmp)["layer"]) == {"fc2", "old_name", "gone", "head", "new_name", "extra"}


def test_reshaped_layer_is_flagged_with_both_shapes_and_deltas(cmp):
    r = cmp.set_index("layer").loc["fc2"]
    assert r["status"] == "shape differs"
    assert (r["shape_a"], r["shape_b"]) == ("32 × 32", "32 × 48")
    assert r["delta_farms"] == pytest.approx(-0.5)


def test_a_layer_status_from_either_side_is_prefixed(cmp):
    r = cmp.set_index("layer").loc["head"]
    assert r["status"] == "B: too few nonzero eigenvalues"
    assert np.isnan(r["delta_raw"]) and r["delta_farms"] == pytest.approx(-1.0)
    swapped = compare_tables(B, A).set_index("layer").loc["head"]
    assert swapped["status"] == "A: too few nonzero eigenvalues"


def test_diagnosis_change_flags(cmp):
    s = cmp.set_index("layer")
    # fc1 raw 3.0 -> 1.5 crosses alpha = 2 (well- to over-trained); FARMS 2.5 -> 2.0 stays well-trained
    assert bool(s.loc["fc1", "changed_raw"]) and not bool(s.loc["fc1", "changed_farms"])
    assert (s.loc["fc1", "label_raw_a"], s.loc["fc1", "label_raw_b"]) == ("well-trained", "over-trained")
    assert not bool(s.loc["head", "changed_raw"])  # NaN on one side is "no fit", not a change
    assert not s.loc[["old_name", "new_name"], "changed_farms"].any()
    assert diagnosis_changes(cmp)["layer"].tolist() == ["fc1"]
    summ = compare_summary(cmp)
    assert (summ["matched"], summ["only_a"], summ["only_b"], summ["shape_differs"]) == (3, 2, 2, 1)
    assert (summ["changed_raw"], summ["changed_farms"]) == (1, 0)


def test_identical_reports_compare_all_ok_with_zero_delta():
    c = compare_tables(A, A)
    assert (c["status"] == "ok").all()
    assert np.allclose(c["delta_raw"], 0) and np.allclose(c["delta_farms"], 0)


# ------------------------------------------------------------------ matching layers that were renamed

def _renamed(t: pd.DataFrame, rename) -> pd.DataFrame:
    return t.assign(layer=[rename(n) for n in t["layer"]])


def test_a_table_and_its_prefixed_copy_match_every_layer():
    c = compare_tables(A, _renamed(A, lambda n: "model." + n))
    assert c["layer"].tolist() == A["layer"].tolist() and (c["status"] == "ok").all()
    assert c["layer_b"].tolist() == ["model." + n for n in A["layer"]]
    assert set(c["matched_by"]) == {"stripped name"}
    assert np.allclose(c["delta_farms"], 0)
    s = compare_summary(c)
    assert (s["matched"], s["only_a"], s["only_b"]) == (5, 0, 0)
    assert s["matching"] == "5 of 5 layers matched after stripping the prefix 'model.' from B"
    # the other way round, the prefix is A's
    assert compare_tables(_renamed(A, lambda n: "model." + n), A).attrs["matching"].endswith("'model.' from A")
    with pytest.raises(FarmsError, match="no layer name in common.*5 layers match once a common prefix"):
        compare_tables(A, _renamed(A, lambda n: "model." + n), match="name")


def test_a_head_model_prefix_matches_though_its_head_has_none():
    # BertForSequenceClassification vs BertModel: 'bert.' before the shared layers, a head without it
    b = pd.concat([_renamed(A, lambda n: "bert." + n), _t([("classifier", 2, 32, 3.0, 3.0)])], ignore_index=True)
    c = compare_tables(A, b).set_index("layer")
    assert (c.loc[A["layer"], "status"] == "ok").all() and c.loc["classifier", "status"] == "only in B"
    assert c.loc["fc1", "layer_b"] == "bert.fc1" and c.loc["classifier", "layer_b"] == ""
    assert compare_summary(c)["matching"] == "5 of A's 5 layers (B has 6) matched after stripping the prefix 'bert.' from B"


def test_a_suffix_on_one_side_is_stripped():
    c = compare_tables(_renamed(A, lambda n: n + ".weight_orig"), A)  # torch pruning's name for the kept weight
    assert (c["status"] == "ok").all() and c["layer_b"].tolist() == A["layer"].tolist()
    assert c.attrs["matching"] == "5 of 5 layers matched after stripping the suffix '.weight_orig' from A"


def test_names_that_already_match_are_not_stripped():
    b = _renamed(A, lambda n: "x." + n).iloc[:2]  # every layer of A pairs by name: nothing is stripped
    ab = pd.concat([A, b], ignore_index=True)
    c = compare_tables(A, ab)
    assert c.attrs["matching"] == "5 of A's 5 layers (B has 7) matched by name"
    assert set(c.loc[c["status"] == "only in B", "layer"]) == {"x.fc1", "x.fc2"}


def test_order_mode_pairs_the_ith_layer_of_each_shape():
    b = _t([("blk0.big", 64, 32, 1.0, 1.0), ("blk0.sq", 32, 32, 2.0, 2.0), ("blk1.sq", 32, 32, 3.0, 3.0),
            ("blk2.odd", 7, 7, 2.0, 2.0)])
    a = _t([("l0", 32, 32, 4.0, 4.0), ("l1", 64, 32, 5.0, 5.0), ("l2", 32, 32, 6.0, 6.0), ("l3", 32, 32, 6.0, 6.0)])
    c = compare_tables(a, b, match="order").set_index("layer")
    assert c.loc[["l0", "l1", "l2"], "layer_b"].tolist() == ["blk0.sq", "blk0.big", "blk1.sq"]
    assert c.loc["l0", "delta_raw"] == pytest.approx(2.0 - 4.0) and c.loc["l2", "delta_raw"] == pytest.approx(-3.0)
    assert c.loc["l3", "status"] == "only in A" and c.loc["blk2.odd", "status"] == "only in B"
    assert set(c.loc[["l0", "l1", "l2"], "matched_by"]) == {"shape and order"}
    assert c.attrs["matching"].startswith("3 of 4 layers matched by shape and order")
    # auto finds no name in common and says that order would pair three
    with pytest.raises(FarmsError, match="no layer name in common.*3 layers pair up by shape and order .match 'order'"):
        compare_tables(a, b)


def test_order_mode_keeps_row_names_unique():
    a = _t([("x", 8, 8, 3.0, 3.0), ("y", 4, 4, 3.0, 3.0)])
    b = _t([("y", 8, 8, 2.0, 2.0), ("x", 2, 2, 2.0, 2.0)])
    c = compare_tables(a, b, match="order")
    assert c["layer"].tolist() == ["x", "y", "x (B)"] and c["layer_b"].tolist() == ["y", "", "x"]
    assert c["status"].tolist() == ["ok", "only in A", "only in B"]


def test_nothing_in_common_is_one_sentence_not_nan():
    cnn = _t([("features.0.0", 32, 3, 3.0, 3.0), ("classifier.1", 1000, 1280, 4.0, 4.0)])
    msg = "minilm and mobilenet-v2 have no layer in common (names and shapes differ): nothing to compare."
    for match in ("auto", "name", "order"):
        with pytest.raises(FarmsError) as e:
            compare_tables(A, cnn, match=match, names=("minilm", "mobilenet-v2"))
        assert str(e.value) == msg
    with pytest.raises(FarmsError, match="^A and B have no layer in common"):  # plain tables: A and B
        compare_tables(A, cnn)
    with pytest.raises(FarmsError, match="match 'nearest' is not one of auto, name, order"):
        compare_tables(A, A, match="nearest")


def _save(path, tensors):
    from safetensors.torch import save_file
    save_file(tensors, str(path))
    return path


@pytest.fixture(scope="module")
def two_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("ckpts")
    g = torch.Generator().manual_seed(0)
    a = {"fc1.weight": torch.randn(96, 32, generator=g), "fc2.weight": torch.randn(32, 32, generator=g),
         "conv.weight": torch.randn(16, 8, 3, 3, generator=g), "old.weight": torch.randn(40, 20, generator=g)}
    b = {"fc1.weight": torch.randn(96, 32, generator=g) ** 3, "fc2.weight": torch.randn(32, 48, generator=g),
         "conv.weight": torch.randn(16, 8, 3, 3, generator=g), "new.weight": torch.randn(40, 20, generator=g)}
    return _save(d / "a.safetensors", a), _save(d / "b.safetensors", b)


def test_real_reports_match_by_name_and_shape(two_files):
    ra, rb = (analyze(str(p), ops=3) for p in two_files)
    c = compare_tables(ra, rb).set_index("layer")
    assert c.loc["fc1", "status"] == "ok" and c.loc["conv", "status"] == "ok"
    assert c.loc["fc2", "status"] == "shape differs"
    assert c.loc["old", "status"] == "only in A" and c.loc["new", "status"] == "only in B"
    ta = ra.table.set_index("layer")
    assert c.loc["fc1", "alpha_farms_a"] == ta.loc["fc1", "alpha_farms"]
    # a heavier-tailed B (cubed Gaussian entries) has a smaller alpha
    assert c.loc["fc1", "delta_raw"] < 0


@pytest.mark.parametrize("args", [["--ops", "3"], ["--preset", "cnn", "--window", "16", "--fit", "ks"]])
def test_cli_compare_equals_two_separate_analyses_exactly(two_files, tmp_path, capsys, args):
    out = tmp_path / "cmp.csv"
    assert main(["compare", str(two_files[0]), str(two_files[1]), "--out", str(out), "--quiet", *args]) == 0
    got = pd.read_csv(out)
    assert list(got.columns[:8]) == CORE_COLUMNS
    opts = dict(zip([a.lstrip("-").replace("-", "_") for a in args[::2]], args[1::2]))
    opts = {k: (int(v) if k in ("ops", "window") else v) for k, v in opts.items()}
    ta, tb = (analyze(str(p), **opts).table.set_index("layer") for p in two_files)
    g = got.set_index("layer")
    for side, t in (("a", ta), ("b", tb)):
        for which in ("raw", "farms"):
            for layer in t.index:
                assert g.loc[layer, f"alpha_{which}_{side}"] == t.loc[layer, f"alpha_{which}"], (layer, which, side)
    assert g.loc["fc1", "delta_raw"] == tb.loc["fc1", "alpha_raw"] - ta.loc["fc1", "alpha_raw"]
    assert g.loc["old", "status"] == "only in A" and g.loc["fc2", "status"] == "shape differs"
    assert "1 only in A, 1 only in B, 1 with a different shape" in capsys.readouterr().out


def test_cli_compare_zoo_digits_and_json(tmp_path):
    out = tmp_path / "cmp.json"
    assert main(["compare", "digits-mlp@1", "digits-mlp@30", "--out", str(out), "--quiet", "--preset", "cnn"]) == 0
    got = pd.read_json(out).set_index("layer")
    ref = analyze("digits-mlp@30", preset="cnn").table.set_index("layer")
    assert list(got.index) == ["fc1", "fc2", "fc3"] and (got["status"] == "ok").all()
    assert np.allclose(got["alpha_farms_b"], ref.loc[got.index, "alpha_farms"], rtol=0, atol=1e-12)


def test_cli_compare_bad_out_and_missing_source_exit_nonzero(tmp_path, capsys):
    assert main(["compare", "digits-mlp@1", "digits-mlp@30", "--out", str(tmp_path / "x.txt")]) == 2
    assert main(["compare", "digits-mlp@1", str(tmp_path / "nope.safetensors"), "--out",
                 str(tmp_path / "x.csv"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "--out must end in .csv or .json" in err and "nope.safetensors" in err


def test_cli_compare_a_file_and_its_prefixed_copy(tmp_path, capsys):
    g = torch.Generator().manual_seed(3)
    w = {"fc1.weight": torch.randn(48, 24, generator=g), "fc2.weight": torch.randn(24, 24, generator=g),
         "conv.weight": torch.randn(8, 4, 3, 3, generator=g)}
    a = _save(tmp_path / "state_dict.safetensors", w)
    b = _save(tmp_path / "wrapped.safetensors", {"model." + k: v for k, v in w.items()})
    out = tmp_path / "cmp.csv"
    assert main(["compare", str(a), str(b), "--out", str(out), "--quiet", "--ops", "3"]) == 0
    got = pd.read_csv(out, keep_default_na=False)
    assert sorted(got["layer"]) == ["conv", "fc1", "fc2"] and (got["status"] == "ok").all()
    assert sorted(got["layer_b"]) == ["model.conv", "model.fc1", "model.fc2"]
    assert np.allclose(got["delta_raw"].astype(float), 0) and np.allclose(got["delta_farms"].astype(float), 0)
    stdout = capsys.readouterr().out
    assert "3 of 3 layers matched after stripping the prefix 'model.' from B" in stdout
    assert main(["compare", str(a), str(b), "--out", str(out), "--quiet", "--ops", "3", "--match", "order"]) == 0
    assert "3 of 3 layers matched by shape and order" in capsys.readouterr().out
    assert main(["compare", str(a), str(b), "--out", str(tmp_path / "n.csv"), "--quiet", "--ops", "3",
                 "--match", "name"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("farms-viz: ") and "no layer name in common" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "n.csv").exists()


# ------------------------------------------------------------------ series

def test_series_tables_long_wide_mean():
    s0 = _t([("fc1", 8, 8, 4.0, 3.0), ("fc2", 8, 8, 6.0, 5.0)])
    s1 = _t([("fc1", 8, 8, 2.0, 1.0), ("fc2", 8, 8, math.nan, 3.0), ("fc3", 8, 8, 3.0, 2.0)])
    long = series_long([("step 0", s0), ("step 10", s1)])
    assert len(long) == 5 and long["layer"].drop_duplicates().tolist() == ["fc1", "fc2", "fc3"]
    wide = series_wide(long, "alpha_raw")
    assert wide.index.tolist() == ["fc1", "fc2", "fc3"] and wide.columns.tolist() == ["step 0", "step 10"]
    assert wide.loc["fc1", "step 10"] == 2.0 and np.isnan(wide.loc["fc3", "step 0"])
    m = series_mean(long).set_index("step")
    assert m.loc["step 0", "mean_raw"] == pytest.approx(5.0) and m.loc["step 0", "std_raw"] == pytest.approx(1.0)
    assert m.loc["step 10", "mean_raw"] == pytest.approx(2.5)  # the NaN is left out
    assert m.loc["step 10", "mean_farms"] == pytest.approx(2.0) and m.loc["step 10", "n_layers"] == 3


@pytest.mark.parametrize("name,step", [
    ("checkpoint-1000", 1000), ("model-epoch=3-step=1200.ckpt", 1200), ("digits-mlp-epoch03.safetensors", 3),
    ("run7_500.pt", 500), ("global_step20.bin", 20), ("final.pt", None), ("iter_0042.pth", 42),
])
def test_step_number_from_the_name(name, step):
    assert step_number(name) == step


def test_checkpoint_folder_sorted_by_step_not_by_text(tmp_path):
    for n in ("step_10.safetensors", "step_2.safetensors", "step_1.pt", "final.safetensors", "notes.txt"):
        (tmp_path / n).write_bytes(b"x")
    (tmp_path / "checkpoint-5").mkdir()
    got = checkpoint_files(tmp_path)
    assert [p.name for _, p in got] == ["step_1.pt", "step_2.safetensors", "checkpoint-5", "step_10.safetensors",
                                        "final.safetensors"]
    assert [label for label, _ in got][:4] == ["step 1", "step 2", "step 5", "step 10"]
    with pytest.raises(FarmsError, match="no checkpoints"):
        checkpoint_files(tmp_path / "checkpoint-5")
    with pytest.raises(FarmsError, match="not a folder"):
        checkpoint_files(tmp_path / "step_1.pt")


def test_digits_checkpoints_sort_into_epoch_order(tmp_path):
    import shutil

    from farms_viz.zoo import digits

    for e in reversed(digits.EPOCHS):
        shutil.copy(digits.checkpoint("mlp", e), tmp_path)
    got = checkpoint_files(tmp_path)
    assert [label for label, _ in got] == ["epoch 0", "epoch 1", "epoch 3", "epoch 10", "epoch 30"]
    assert got[-1][1].name == "digits-mlp-epoch30.safetensors"
    assert zoo_series("cnn")[-1] == ("epoch 30", "digits-cnn@30")
    with pytest.raises(FarmsError):
        zoo_series("rnn")


# ------------------------------------------------------------------ figures

def test_delta_bars_highlight_changed_layers_and_skip_one_sided(cmp):
    fig = fc.delta_bars(cmp)
    assert all(list(t.y) == ["fc1", "fc2", "head"] for t in fig.data if t.name.startswith("Δα"))  # matched, model order
    assert "<b>fc1 ◆</b>" in fig.layout.yaxis.ticktext and "fc2" in fig.layout.yaxis.ticktext
    rects = [s for s in fig.layout.shapes if s.type == "rect"]
    assert len(rects) == 1 and rects[0].y0 == -0.5  # the fc1 row
    assert fig.layout.xaxis.range[0] == -fig.layout.xaxis.range[1]  # zero in the middle


def test_alpha_scatter_has_the_diagonal_and_both_kinds(cmp):
    fig = fc.alpha_scatter(cmp)
    names = [t.name for t in fig.data]
    assert names[:2] == ["α raw", "α FARMS"] and "no change" in names[2]
    diag = next(t for t in fig.data if "no change" in (t.name or ""))
    assert list(diag.x) == list(diag.y)
    assert list(fig.layout.xaxis.range) == list(fig.layout.yaxis.range)


def test_esd_overlay_draws_both_sides_in_four_panels(two_files):
    ra, rb = (analyze(str(p), ops=3) for p in two_files)
    fig = fc.esd_overlay(ra.spectra["fc1"], rb.spectra["fc1"], "a", "b")
    axes = {(t.xaxis, t.yaxis) for t in fig.data if t.x is not None and len([v for v in t.x if v is not None])}
    assert len(axes) == 4
    titles = [a.text for a in fig.layout.annotations]
    fit_a = ra.spectra["fc1"].fit_farms.alpha
    assert any(f"A {fit_a:.2f}" in t and "FARMS" in t for t in titles)
    one_sided = fc.esd_overlay(ra.spectra["old"], None, "a", "b")
    assert not any("B = b" == t.name for t in one_sided.data)
    # both checkpoints' CCDF points are visible: an open symbol is drawn in marker.color
    ccdf = {t.name: t.marker for t in fig.data if t.name and t.name.startswith("CCDF ")}
    assert len(ccdf) == 4
    for name, m in ccdf.items():
        assert m.color in (fc.COLORS["raw"], fc.COLORS["farms"]), (name, m.color)
        assert m.symbol == ("circle-open" if name.startswith("CCDF A") else "circle")
    # the tail panels' log axes label 1, 2, 5 per decade, not every digit
    assert fig.layout.yaxis3.type == fig.layout.yaxis4.type == "log"
    assert fig.layout.yaxis3.dtick == fig.layout.yaxis4.dtick == "D2"


def test_series_figures():
    s0 = _t([("fc1", 8, 8, 4.0, 3.0), ("fc2", 8, 8, 6.0, 5.0)])
    s1 = _t([("fc1", 8, 8, 2.0, 1.0), ("fc2", 8, 8, 2.5, 3.0)])
    long = series_long([("epoch 0", s0), ("epoch 1", s1)])
    lines = fc.series_lines(long)
    raw = [t for t in lines.data if t.name == "α raw"]
    farms = [t for t in lines.data if t.name == "α FARMS"]
    assert len(raw) == len(farms) == 2  # one of each per layer panel
    assert all(t.line.dash == "dash" for t in raw) and all(t.line.dash is None for t in farms)
    assert list(lines.layout.xaxis.ticktext) == ["0", "1"] and lines.layout.xaxis.title.text == "epoch"
    mean = fc.series_mean_figure(series_mean(long))
    assert [t.y[0] for t in mean.data if t.name == "mean α raw"] == [5.0]
    heat = fc.series_heatmap(long)
    assert [t.z.tolist() for t in heat.data] == [[[4.0, 2.0], [6.0, 2.5]], [[3.0, 1.0], [5.0, 3.0]]]
