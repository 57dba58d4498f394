"""Served mode (FARMS_VIZ_SERVED=1) in the app: zoo models and uploads only, server paths never touched.

The browser test (test_browser_served.py) shows the same refusal on a real server.
"""

from __future__ import annotations

import os

import pytest
import torch
from appkit import APP, ROOT, linked_app, ok, warnings
from safetensors.torch import save_file
from streamlit.testing.v1 import AppTest

from farms_viz.app import state as appstate

COMPARE = str(ROOT / "pages" / "4_Compare.py")
SERVED_SENTENCE = "This server is shared (served mode)"


@pytest.fixture
def served(monkeypatch):
    monkeypatch.setenv("FARMS_VIZ_SERVED", "1")


@pytest.fixture
def touched(monkeypatch):
    """The source values that appstate looked at on disk (stat, open) during the test."""
    seen = []
    real_content_id, real_target = appstate.content_id, appstate.target
    monkeypatch.setattr(appstate, "content_id", lambda spec: seen.append(spec.value) or real_content_id(spec))
    monkeypatch.setattr(appstate, "target", lambda spec: seen.append(spec.value) or real_target(spec))
    return seen


def _page(script: str = APP, **query) -> AppTest:
    return linked_app(script, s_ops=3, **query)


@pytest.mark.parametrize("model", ["/etc/passwd", "/etc/shadow", "/nonexistent/x.pt", "relative.safetensors",
                                   "../../etc/hosts", "~/.ssh/id_rsa"])
def test_a_server_path_in_the_link_is_refused_without_touching_it(served, touched, model):
    at = ok(_page(model=model).run())
    (w,) = warnings(at)
    assert w.startswith(SERVED_SENTENCE) and "not paths on the server" in w and "Showing minilm instead" in w
    assert model not in touched and not any(v for v in touched if v != "minilm")
    assert not at.error
    assert at.metric[0].value  # the default model is shown instead


def test_existing_and_missing_paths_get_the_same_answer(served, tmp_path):
    """No existence oracle: the page is word for word the same for a file that exists, one that
    does not, and a FIFO (which would hang anything that opened it)."""
    real = tmp_path / "w.safetensors"
    save_file({"a.weight": torch.randn(8, 8)}, str(real))
    fifo = tmp_path / "fifo.pt"
    os.mkfifo(fifo)
    texts = []
    for path in (real, tmp_path / "missing.safetensors", fifo):
        at = ok(_page(model=str(path)).run())
        texts.append([w.value.replace(str(path), "PATH") for w in at.warning])
    assert texts[0] == texts[1] == texts[2]


def test_hub_ids_are_refused_in_served_mode(served, touched):
    at = ok(_page(model="hub:org/some-model").run())
    (w,) = warnings(at)
    assert "does not download models from the Hugging Face hub" in w
    assert "org/some-model" not in touched


def test_the_picker_offers_zoo_and_upload_and_no_ray_address(served):
    at = ok(_page().run())
    assert at.radio(key="w_pick_kind").options == ["Model zoo", "Upload"]
    assert not [t for t in at.text_input if t.label == "Ray address"]


def test_local_mode_keeps_paths_hub_and_ray(monkeypatch):
    monkeypatch.delenv("FARMS_VIZ_SERVED", raising=False)
    at = ok(_page().run())
    assert at.radio(key="w_pick_kind").options == ["Model zoo", "Local path", "Upload", "Hugging Face hub"]
    assert [t for t in at.text_input if t.label == "Ray address"]


def test_a_ray_address_left_in_the_session_is_not_used_in_served_mode(served, monkeypatch):
    calls = []
    real = appstate.analyze
    monkeypatch.setattr(appstate, "analyze", lambda *a, **k: calls.append(k) or real(*a, **k))
    at = _page(model="digits-mlp@30")
    at.session_state["s_ray_address"] = "203.0.113.5:6379"
    at.session_state["s_window"] = 77  # settings no other test uses: not in the report store
    ok(at.run())
    assert calls and all("address" not in k for k in calls)


def test_compare_links_and_series_folders_are_refused(served, touched):
    at = ok(_page(COMPARE, a="/etc/passwd", b="digits-mlp@30").run())
    ws = [w for w in warnings(at) if w.startswith("Checkpoint")]  # not the page's unmatched-layers note
    assert len(ws) == 1 and ws[0].startswith("Checkpoint A: " + SERVED_SENTENCE)
    assert at.radio(key="w_cmp_a_kind").options == ["Model zoo", "Upload"]
    assert "/etc/passwd" not in touched
    at.radio(key="w_cmp_view").set_value("series").run()
    ok(at)
    assert at.radio(key="w_cmp_series_kind").options == ["Zoo: digits training run"]


def test_uploads_still_work_in_served_mode_and_live_in_the_session_folder(served, tmp_path):
    w = tmp_path / "mine.safetensors"
    save_file({"fc.weight": torch.randn(64, 32)}, str(w))
    at = ok(_page().run())
    at.radio(key="w_pick_kind").set_value("upload").run()
    at.get("file_uploader")[0].upload("mine.safetensors", w.read_bytes())
    ok(at.run())
    assert not at.error
    assert "mine.safetensors" in at.subheader[0].value
    spec = at.session_state["source"]
    saved = spec.value
    assert spec.kind == "upload" and os.path.basename(saved) == "home-mine.safetensors"
    folder = os.path.dirname(saved)
    assert oct(os.stat(folder).st_mode & 0o777) == "0o700"
    # a second upload replaces the first: its file is gone
    w2 = tmp_path / "other.safetensors"
    save_file({"fc.weight": torch.randn(32, 16)}, str(w2))
    at.get("file_uploader")[0].upload("other.safetensors", w2.read_bytes())
    ok(at.run())
    assert not os.path.exists(saved)
    assert os.listdir(folder) == ["home-other.safetensors"]
