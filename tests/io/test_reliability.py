"""Reliability: the disk cache (atomic, corruption-proof), hostile and oversized uploads in the app."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
import torch

from farms_viz import analyze
from farms_viz.io.cache import LayerCache, tensor_key
from farms_viz.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("FARMS_VIZ_CACHE", str(d))
    return d


def _tensors():
    g = torch.Generator().manual_seed(1)
    return {"a.weight": torch.randn(200, 50, generator=g), "b.weight": torch.randn(40, 40, generator=g),
            "c.weight": torch.randn(8, 4, 3, 3, generator=g)}


def _entries(d: Path):
    return sorted(p for p in d.rglob("*") if p.is_file())


def test_cached_reopen_equals_a_fresh_analysis(cache_dir):
    first = analyze(_tensors(), window=32, ops=3)
    files = _entries(cache_dir)
    assert len(files) == 3 and all(p.suffix == ".npz" for p in files)  # no temporary files left
    again = analyze(_tensors(), window=32, ops=3)
    fresh = analyze(_tensors(), window=32, ops=3, cache=False)
    cols = [c for c in first.table.columns if c != "seconds"]
    pd.testing.assert_frame_equal(again.table[cols], fresh.table[cols])
    for name, spec in fresh.spectra.items():
        hit = again.spectra[name]
        assert (hit.esd_farms == spec.esd_farms).all() and hit.fit_farms == spec.fit_farms
        assert hit.grid == spec.grid and hit.mp_raw == spec.mp_raw


def test_cache_key_depends_on_content_settings_and_kind():
    w = torch.randn(30, 20)
    s = Settings()
    k = tensor_key(w, "linear", s)
    assert k == tensor_key(w.clone(), "linear", s)
    w2 = w.clone()
    w2[0, 0] += 1e-3
    assert tensor_key(w2, "linear", s) != k
    assert tensor_key(w, "linear", s.replace(ops=3)) != k
    assert tensor_key(w, "embedding", s) != k
    assert tensor_key(w.half(), "linear", s) != k


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "foreign"])
def test_corrupt_cache_entry_is_detected_and_recomputed(cache_dir, damage):
    ref = analyze(_tensors(), window=32, ops=3, cache=False).table
    analyze(_tensors(), window=32, ops=3)
    victim = _entries(cache_dir)[0]
    data = victim.read_bytes()
    if damage == "truncate":
        victim.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        victim.write_bytes(os.urandom(len(data)))
    elif damage == "empty":
        victim.write_bytes(b"")
    else:  # a valid entry of another key under this name
        victim.write_bytes(_entries(cache_dir)[1].read_bytes())
    out = analyze(_tensors(), window=32, ops=3).table
    cols = [c for c in ref.columns if c != "seconds"]
    pd.testing.assert_frame_equal(out[cols], ref[cols])
    assert len(_entries(cache_dir)) == 3  # the bad entry was rewritten


def test_unwritable_cache_does_not_break_analysis(tmp_path, monkeypatch):
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("x")
    monkeypatch.setenv("FARMS_VIZ_CACHE", str(blocker))
    t = analyze(_tensors(), window=32, ops=3).table
    assert (t.status == "ok").all()


def test_layer_cache_get_of_missing_key_is_none(tmp_path):
    assert LayerCache(tmp_path).get("ab" * 20) is None


# ---------------------------------------------------------------- uploads in the app

class Hostile:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _app():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.session_state["s_ops"] = 3
    return at


def test_hostile_pickle_upload_shows_an_error_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    payload = tmp_path / "evil.pt"
    torch.save({"fc.weight": torch.randn(8, 8), "x": Hostile(marker)}, payload)
    at = _app().run()
    assert not at.exception
    layers_before = at.metric[0].value
    at.radio(key="w_pick_kind").set_value("upload").run()
    at.get("file_uploader")[0].upload("evil.pt", payload.read_bytes())
    at.run()
    assert not at.exception
    assert len(at.error) == 1 and "evil.pt" in at.error[0].value and "executed" in at.error[0].value
    assert not marker.exists()
    assert at.metric[0].value == layers_before  # the previous model (minilm) is still shown


def test_oversized_upload_is_refused_with_a_sentence(monkeypatch, tmp_path):
    import io

    import streamlit as st

    from farms_viz.app import server as appserver
    from farms_viz.app import state as appstate
    from farms_viz.app.uploads import UploadFolder
    from farms_viz.errors import FarmsError

    real = st.get_option
    monkeypatch.setattr(appserver.st, "get_option",
                        lambda k: 1 if k == "server.maxUploadSize" else real(k))
    folder = UploadFolder(tmp_path)
    monkeypatch.setattr(appserver, "upload_folder", lambda: folder)
    big = io.BytesIO(b"\0" * (2 * 2**20))
    big.name, big.size, big.file_id = "big.safetensors", 2 * 2**20, "id"
    with pytest.raises(FarmsError, match="over the upload limit of 1 MB"):
        appstate.save_upload("home", big)
    assert folder.files() == []
