"""The compare page through streamlit.testing.v1.AppTest: pairs from the zoo and from paths, and the series."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from appkit import ROOT, charts, linked_app, metrics, ok, small_app, warnings

PAGE = str(ROOT / "pages" / "4_Compare.py")


def _frame(at, *columns):
    """The first dataframe on the page holding all of ``columns``."""
    for d in at.dataframe:
        if set(columns) <= set(d.value.columns):
            return d.value
    raise AssertionError(f"no dataframe with columns {columns}")


def test_default_compares_minilm_init_with_minilm():
    at = ok(small_app(PAGE).run())
    assert not at.error
    m = metrics(at)
    assert m["Layers matched"] == "37 of 37"
    # training makes the spectra heavy-tailed: alpha falls in both raw and FARMS
    assert float(m["Mean Δα raw (B − A)"]) < -1 and float(m["Mean Δα FARMS (B − A)"]) < -1
    assert charts(at) == 3  # delta bars, scatter, 2 x 2 ESD overlay
    assert any("All 37 layers match" in s.value for s in at.success)
    qp = dict(at.query_params)
    assert "minilm-init" in str(qp["a"]) and str(qp["b"]).strip("[]'") == "minilm"
    assert at.get("download_button")


def test_digits_mlp_1_vs_30_and_layer_choice():
    at = ok(small_app(PAGE, cmp_a_zoo="digits-mlp@1", cmp_b_zoo="digits-mlp@30").run())
    m = metrics(at)
    assert m["Layers matched"] == "3 of 3"
    assert float(m["Mean Δα FARMS (B − A)"]) < 0
    box = at.selectbox(key="w_cmp_layer")
    assert box.options == ["fc1", "fc2", "fc3"]
    box.set_value("fc3").run()
    ok(at)
    assert any("**fc3**" in c.value for c in at.caption)
    assert charts(at) == 3


def test_changing_settings_recomputes_both_sides():
    at = ok(small_app(PAGE, cmp_a_zoo="digits-cnn@1", cmp_b_zoo="digits-cnn@30").run())
    before = metrics(at)["Mean Δα FARMS (B − A)"]
    at.sidebar.number_input(key="w_s_ops").set_value(2).run()
    ok(at)
    assert any("2 × 2 per matrix" in c.value for c in at.caption)
    assert metrics(at)["Mean Δα FARMS (B − A)"] != before


def _save(path: Path, tensors: dict) -> Path:
    from safetensors.torch import save_file

    save_file(tensors, str(path))
    return path


def test_paths_with_renamed_and_reshaped_layers_list_unmatched(tmp_path):
    g = torch.Generator().manual_seed(1)
    a = _save(tmp_path / "a.safetensors", {"fc1.weight": torch.randn(64, 32, generator=g),
                                             "fc2.weight": torch.randn(32, 32, generator=g),
                                             "old.weight": torch.randn(24, 16, generator=g)})
    b = _save(tmp_path / "b.safetensors", {"fc1.weight": torch.randn(64, 32, generator=g),
                                             "fc2.weight": torch.randn(32, 48, generator=g),
                                             "new.weight": torch.randn(24, 16, generator=g)})
    at = ok(small_app(PAGE, cmp_a_kind="path", cmp_a_path=str(a), cmp_b_kind="path", cmp_b_path=str(b)).run())
    assert metrics(at)["Layers matched"] == "2 of 4"
    assert at.warning and "1 layer(s) only in A, 1 only in B, 1 with a different shape" in at.warning[0].value
    um = _frame(at, "status", "shape_a").set_index("layer")["status"].to_dict()
    assert um == {"fc2": "shape differs", "old": "only in A", "new": "only in B"}
    at.text_input(key="w_cmp_b_path").input(str(tmp_path / "missing.safetensors")).run()
    ok(at)
    assert at.error and "does not exist" in at.error[0].value and "Checkpoint B" in at.error[0].value


def test_series_digits_mlp_then_cnn():
    at = ok(small_app(PAGE, cmp_view="series").run())
    assert any("digits-mlp: 5 checkpoints, 3 layers" in h.value for h in at.subheader)
    assert charts(at) == 3  # mean, lines per layer, heatmap
    mean = _frame(at, "mean_raw", "n_layers")
    assert mean["step"].tolist() == ["epoch 0", "epoch 1", "epoch 3", "epoch 10", "epoch 30"]
    assert mean["n_layers"].tolist() == [3] * 5
    # trained for 30 epochs, the mean FARMS alpha is below its value at initialisation
    assert mean["mean_farms"].iloc[-1] < mean["mean_farms"].iloc[0]
    at.selectbox(key="w_cmp_series_arch").set_value("cnn").run()
    ok(at)
    assert any("digits-cnn: 5 checkpoints, 4 layers" in h.value for h in at.subheader)


def test_series_from_a_folder_sorted_by_step(tmp_path):
    g = torch.Generator().manual_seed(2)
    for step in (10, 2, 1):
        _save(tmp_path / f"step_{step}.safetensors", {"fc.weight": torch.randn(48, 24, generator=g) * step})
    at = ok(small_app(PAGE, cmp_view="series", cmp_series_kind="folder", cmp_series_folder=str(tmp_path)).run())
    mean = _frame(at, "mean_raw", "n_layers")
    assert mean["step"].tolist() == ["step 1", "step 2", "step 10"]
    assert charts(at) == 3
    at.text_input(key="w_cmp_series_folder").input(str(tmp_path / "nope")).run()
    ok(at)
    assert at.error and "not a folder" in at.error[0].value


def _wrapped_copy(tmp_path: Path) -> tuple[Path, Path]:
    """A small checkpoint and the same weights with every key prefixed ``model.`` (a wrapped model)."""
    g = torch.Generator().manual_seed(4)
    w = {"fc1.weight": torch.randn(64, 32, generator=g), "fc2.weight": torch.randn(32, 32, generator=g),
         "head.weight": torch.randn(10, 32, generator=g)}
    return (_save(tmp_path / "plain.safetensors", w),
            _save(tmp_path / "wrapped.safetensors", {"model." + k: v for k, v in w.items()}))


def test_a_file_and_its_prefixed_copy_match_every_layer(tmp_path):
    a, b = _wrapped_copy(tmp_path)
    at = ok(small_app(PAGE, cmp_a_kind="path", cmp_a_path=str(a), cmp_b_kind="path", cmp_b_path=str(b)).run())
    m = metrics(at)
    assert m["Layers matched"] == "3 of 3"
    assert float(m["Mean Δα FARMS (B − A)"]) == 0  # the same weights
    assert any(c.value == "3 of 3 layers matched after stripping the prefix 'model.' from B." for c in at.caption)
    assert any("All 3 layers match" in s.value for s in at.success)
    assert charts(at) == 3
    # the overlay finds B's spectra under B's own name
    at.selectbox(key="w_cmp_layer").set_value("fc2").run()
    ok(at)
    assert any("**fc2** (in B: model.fc2)" in c.value for c in at.caption)
    overlay = json.loads(at.get("plotly_chart")[2].proto.spec)
    ccdf = sorted(t["name"].split()[1] for t in overlay["data"] if t.get("name", "").startswith("CCDF "))
    assert ccdf == ["A", "A", "B", "B"]  # raw and FARMS of each side
    # exact names only: nothing in common, said in a sentence, no charts, and the choice is in the URL
    at.radio(key="w_cmp_match").set_value("name").run()
    ok(at)
    assert charts(at) == 0 and not at.metric
    assert at.info and "no layer name in common" in at.info[0].value and "match 'auto'" in at.info[0].value
    assert dict(at.query_params)["match"] in ("name", ["name"])


def test_link_minilm_vs_mobilenet_says_nothing_in_common():
    at = ok(linked_app(PAGE, s_ops=3, a="minilm", b="mobilenet-v2").run())
    assert not at.error and not at.exception
    assert [i.value for i in at.info] == ["minilm and mobilenet-v2 have no layer in common (names and shapes differ): "
                                          "nothing to compare."]
    assert charts(at) == 0 and not at.metric


def test_link_match_is_checked_and_kept():
    at = ok(linked_app(PAGE, s_ops=3, a="digits-mlp@1", b="digits-cnn@1", match="order").run())
    assert at.radio(key="w_cmp_match").value == "order"
    # no shape of the MLP's is in the CNN; their fc1 and fc2 share names (with other shapes)
    assert at.info and at.info[0].value == ("digits-mlp@1 and digits-cnn@1 have no layer of the same shape: nothing "
                                            "to compare by shape and order; 2 layers match by name (match 'auto').")
    assert charts(at) == 0
    at.radio(key="w_cmp_match").set_value("auto").run()
    ok(at)
    assert metrics(at)["Layers matched"] == "2 of 5" and "match" not in dict(at.query_params)
    assert any(c.value == "2 of A's 3 layers (B has 4) matched by name." for c in at.caption)
    bad = ok(linked_app(PAGE, s_ops=3, a="digits-mlp@1", b="digits-mlp@30", match="nearest").run())
    assert any("match=nearest is not one of auto, name, order, so auto is used" in w for w in warnings(bad))
    assert bad.radio(key="w_cmp_match").value == "auto" and metrics(bad)["Layers matched"] == "3 of 3"
