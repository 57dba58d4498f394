"""The Streamlit app through streamlit.testing.v1.AppTest: every page renders, widgets drive the view."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
OVERVIEW = "pages/1_Model_overview.py"
BROWSER = "pages/2_Layer_browser.py"
TIMEOUT = 120


def _app(**settings) -> AppTest:
    """The app with small FARMS settings (3 x 3 windows) so each analysis takes seconds."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.session_state["s_ops"] = settings.pop("ops", 3)
    for k, v in settings.items():
        at.session_state["s_" + k] = v
    return at


def _ok(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    return at


def _metrics(at) -> dict:
    return {m.label: m.value for m in at.metric}


@pytest.fixture
def tiny_safetensors(tmp_path) -> Path:
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(0)
    p = tmp_path / "tiny.safetensors"
    save_file({"fc1.weight": torch.randn(96, 32, generator=g), "fc2.weight": torch.randn(32, 32, generator=g),
               "conv.weight": torch.randn(16, 8, 3, 3, generator=g), "fc1.bias": torch.zeros(96)}, str(p))
    return p


def test_home_analyses_default_model_without_a_click():
    at = _ok(_app().run())
    m = _metrics(at)
    assert m["Layers analysed"] == "37"
    assert "of 37" in m["Diagnosis flips"]
    assert "±" in m["α raw: mean ± spread"] and "±" in m["α FARMS: mean ± spread"]
    assert at.query_params["model"] == ["minilm"] or at.query_params["model"] == "minilm"
    assert not at.error


def test_overview_and_browser_render_and_next_switches_layer():
    at = _ok(_app().run())
    at.switch_page(OVERVIEW)
    _ok(at.run())
    assert len(at.get("plotly_chart")) == 2
    assert len(at.dataframe) == 1 and at.get("download_button")
    at.switch_page(BROWSER)
    _ok(at.run())
    assert len(at.get("plotly_chart")) == 5
    box = at.selectbox(key="w_layer")
    first = box.value
    at.button(key="next").click()
    _ok(at.run())
    second = at.selectbox(key="w_layer").value
    assert second != first and second == box.options[1]
    qp = dict(at.query_params)
    assert second in str(qp["layer"])
    at.button(key="prev").click()
    _ok(at.run())
    assert at.selectbox(key="w_layer").value == first
    at.toggle(key="log_x").set_value(False)
    _ok(at.run())
    assert len(at.get("plotly_chart")) == 5


def test_overview_filters_drive_the_view():
    at = _app()
    at.switch_page(OVERVIEW)
    _ok(at.run())
    at.text_input(key="ov_pattern").input(r"layer\.0\.").run()
    _ok(at)
    assert any("6 of 37 layers" in c.value for c in at.caption)
    at.text_input(key="ov_pattern").input("layer[").run()
    _ok(at)
    assert at.error and "not a valid regular expression" in at.error[0].value


def test_changing_a_setting_recomputes():
    at = _ok(_app().run())
    before = [c.value for c in at.caption if "Settings:" in c.value][0]
    at.sidebar.number_input(key="w_s_ops").set_value(2)
    _ok(at.run())
    after = [c.value for c in at.caption if "Settings:" in c.value][0]
    assert "ops=3" in before and "ops=2" in after
    assert at.session_state["s_ops"] == 2


def test_local_safetensors_path_then_bad_path_keeps_previous(tiny_safetensors):
    at = _ok(_app().run())
    at.radio(key="w_pick_kind").set_value("path").run()
    at.text_input(key="w_pick_path").input(str(tiny_safetensors)).run()
    _ok(at)
    assert _metrics(at)["Layers analysed"] == "3"
    assert at.query_params["model"] in (str(tiny_safetensors), [str(tiny_safetensors)])
    at.text_input(key="w_pick_path").input(str(tiny_safetensors.parent / "missing.safetensors")).run()
    _ok(at)
    assert len(at.error) == 1 and "does not exist" in at.error[0].value
    assert _metrics(at)["Layers analysed"] == "3"  # the previous model stays
    at.switch_page(BROWSER)
    _ok(at.run())
    assert set(at.selectbox(key="w_layer").options) == {"fc1", "fc2", "conv"}


def test_upload_is_analysed(tiny_safetensors):
    at = _ok(_app().run())
    at.radio(key="w_pick_kind").set_value("upload").run()
    at.get("file_uploader")[0].upload("tiny.safetensors", tiny_safetensors.read_bytes())
    _ok(at.run())
    assert _metrics(at)["Layers analysed"] == "3"
    assert not at.error


def test_digits_checkpoint_from_zoo():
    pytest.importorskip("farms_viz.zoo")
    at = _ok(_app(preset="cnn", window=100, q=1.0, fit="xmin_mid").run())
    at.selectbox(key="w_pick_zoo").set_value("digits-cnn@3").run()
    _ok(at)
    assert _metrics(at)["Layers analysed"] == "4"
    at.switch_page(BROWSER)
    _ok(at.run())
    assert len(at.get("plotly_chart")) == 5


def test_published_metrics_only_overview_and_no_spectra_in_browser():
    pytest.importorskip("farms_viz.zoo")
    at = _ok(_app().run())
    at.selectbox(key="w_pick_zoo").set_value("llama-7b-published").run()
    _ok(at)
    assert _metrics(at)["Layers analysed"] == "224"
    at.switch_page(OVERVIEW)
    _ok(at.run())
    assert len(at.get("plotly_chart")) == 2
    at.switch_page(BROWSER)
    _ok(at.run())
    assert any("No spectra for this source" in i.value for i in at.info)


def test_hub_id_error_is_one_sentence():
    at = _ok(_app().run())
    at.radio(key="w_pick_kind").set_value("hub").run()
    at.text_input(key="w_pick_hub").input("no-such-org/no-such-model-xyz").run()
    _ok(at)
    assert at.error and at.error[0].value.strip()
    assert _metrics(at)["Layers analysed"] == "37"
