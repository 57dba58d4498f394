"""The Streamlit app through streamlit.testing.v1.AppTest: every page renders, widgets drive the view."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from appkit import charts, metrics, ok, small_app

OVERVIEW = "pages/1_Model_overview.py"
BROWSER = "pages/2_Layer_browser.py"


@pytest.fixture
def tiny_safetensors(tmp_path) -> Path:
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(0)
    p = tmp_path / "tiny.safetensors"
    save_file({"fc1.weight": torch.randn(96, 32, generator=g), "fc2.weight": torch.randn(32, 32, generator=g),
               "conv.weight": torch.randn(16, 8, 3, 3, generator=g), "fc1.bias": torch.zeros(96)}, str(p))
    return p


def test_home_analyses_default_model_without_a_click():
    at = ok(small_app().run())
    m = metrics(at)
    assert m["Layers FARMS can change"] == "12 of 37"  # 25 square layers within one 2000-row window
    assert "of 37" in m["Diagnosis flips"]
    assert m["α per 10× aspect ratio, raw"].startswith(("+", "-")) and m["α per 10× aspect ratio, FARMS"][0] in "+-"
    assert at.query_params["model"] == ["minilm"] or at.query_params["model"] == "minilm"
    assert not at.error


def test_overview_and_browser_render_and_next_switches_layer():
    at = ok(small_app().run())
    at.switch_page(OVERVIEW)
    ok(at.run())
    assert charts(at) == 3  # alpha per layer, alpha vs aspect ratio, the trend under each fit rule
    assert len(at.dataframe) == 2 and at.get("download_button")  # the rule trends, the diagnosis
    at.switch_page(BROWSER)
    ok(at.run())
    assert charts(at) == 5
    box = at.selectbox(key="w_layer")
    first = box.value
    at.button(key="next").click()
    ok(at.run())
    second = at.selectbox(key="w_layer").value
    assert second != first and second == box.options[(box.options.index(first) + 1) % len(box.options)]
    qp = dict(at.query_params)
    assert second in str(qp["layer"])
    at.button(key="prev").click()
    ok(at.run())
    assert at.selectbox(key="w_layer").value == first
    at.toggle(key="w_br_logx").set_value(False)
    ok(at.run())
    assert charts(at) == 5


def test_overview_filters_drive_the_view():
    at = small_app()
    at.switch_page(OVERVIEW)
    ok(at.run())
    at.text_input(key="w_ov_pattern").input(r"layer\.0\.").run()
    ok(at)
    assert any("6 of 37 layers" in c.value for c in at.caption)
    at.text_input(key="w_ov_pattern").input("layer[").run()
    ok(at)
    assert at.error and "not a valid regular expression" in at.error[0].value


def test_changing_a_setting_recomputes():
    at = ok(small_app().run())
    before = [c.value for c in at.caption if "Settings:" in c.value][0]
    at.sidebar.number_input(key="w_s_ops").set_value(2)
    ok(at.run())
    after = [c.value for c in at.caption if "Settings:" in c.value][0]
    assert "3 × 3 per matrix" in before and "2 × 2 per matrix" in after
    assert at.session_state["s_ops"] == 2


def test_local_safetensors_path_then_bad_path_keeps_previous(tiny_safetensors):
    at = ok(small_app().run())
    at.radio(key="w_pick_kind").set_value("path").run()
    at.text_input(key="w_pick_path").input(str(tiny_safetensors)).run()
    ok(at)
    assert metrics(at)["Layers FARMS can change"].endswith(" of 3")
    assert at.query_params["model"] in (str(tiny_safetensors), [str(tiny_safetensors)])
    at.text_input(key="w_pick_path").input(str(tiny_safetensors.parent / "missing.safetensors")).run()
    ok(at)
    assert len(at.error) == 1 and "does not exist" in at.error[0].value
    assert metrics(at)["Layers FARMS can change"].endswith(" of 3")  # the previous model stays
    at.switch_page(BROWSER)
    ok(at.run())
    assert set(at.selectbox(key="w_layer").options) == {"fc1", "fc2", "conv"}


def test_upload_is_analysed(tiny_safetensors):
    at = ok(small_app().run())
    at.radio(key="w_pick_kind").set_value("upload").run()
    at.get("file_uploader")[0].upload("tiny.safetensors", tiny_safetensors.read_bytes())
    ok(at.run())
    assert metrics(at)["Layers FARMS can change"].endswith(" of 3")
    assert not at.error


def test_digits_checkpoint_from_zoo():
    at = ok(small_app(s_preset="cnn", s_window=100, s_q=1.0, s_fit="xmin_mid").run())
    at.selectbox(key="w_pick_zoo").set_value("digits-cnn@3").run()
    ok(at)
    assert metrics(at)["Layers FARMS can change"].endswith(" of 4")
    at.switch_page(BROWSER)
    ok(at.run())
    assert charts(at) == 5


def test_published_metrics_only_overview_and_no_spectra_in_browser():
    at = ok(small_app().run())
    at.selectbox(key="w_pick_zoo").set_value("llama-7b-published").run()
    ok(at)
    assert metrics(at)["Layers FARMS can change"].endswith(" of 224")
    at.switch_page(OVERVIEW)
    ok(at.run())
    assert charts(at) == 2
    at.switch_page(BROWSER)
    ok(at.run())
    assert any("No spectra for this source" in i.value for i in at.info)


def test_hub_id_error_is_one_sentence():
    at = ok(small_app().run())
    at.radio(key="w_pick_kind").set_value("hub").run()
    at.text_input(key="w_pick_hub").input("no-such-org/no-such-model-xyz").run()
    ok(at)
    assert at.error and at.error[0].value.strip()
    assert metrics(at)["Layers FARMS can change"].endswith(" of 37")
