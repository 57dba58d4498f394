"""The Allocations page's "Apply and measure" through AppTest: a digits run shows the outcome chart and
the summary of outcome.measure; the example asks for the tiny LM; served mode bounds levels and seeds."""

from __future__ import annotations

import base64
import json

import numpy as np
import pandas as pd
import pytest
import torch
from appkit import charts, ok, small_app
from streamlit.testing.v1 import AppTest

from farms_viz.analyses import outcome
from farms_viz.app import outcome as app_outcome
from farms_viz.app.state import SourceSpec

PAGE = "pages/3_Allocations.py"


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _digits_page() -> AppTest:
    at = small_app(source=SourceSpec("zoo", "digits-cnn@30"))
    at.switch_page(PAGE)
    return ok(at.run())


def _figure(at) -> dict:
    return json.loads(at.get("plotly_chart")[-1].proto.spec)


def _array(v) -> list:
    """A trace's x or y as a list (plotly writes numpy arrays as base64 with their dtype)."""
    if isinstance(v, dict) and "bdata" in v:
        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=v["dtype"]).tolist()
    return list(v)


def test_digits_run_shows_the_outcome_chart_and_the_measured_summary():
    at = _digits_page()
    assert "digits-cnn@30" in at.title[0].value
    assert at.session_state["am_model"] == "digits-cnn"  # follows the page's model
    before = charts(at)
    at.multiselect(key="w_am_levels").set_value([0.5, 0.7])
    at.number_input(key="w_am_seeds").set_value(2)
    at.radio(key="w_am_method").set_value("magnitude")
    ok(at.run())
    at.button(key="am_run").click()
    ok(at.run())
    assert charts(at) == before + 1
    fig = _figure(at)
    lines = {t.get("meta"): t for t in fig["data"]}
    assert {"uniform", "raw", "farms", "uniform band", "raw band", "farms band", "dense"} <= set(lines)
    want = outcome.summarize(outcome.measure("digits-cnn", "magnitude", [0.5, 0.7], seeds=(0, 1)))
    for key in outcome.ALLOCATIONS:
        w = want[want["allocation"] == key]
        assert _array(lines[key]["x"]) == list(w["sparsity"])
        assert _array(lines[key]["y"]) == pytest.approx(list(w["mean"]))
    table = at.dataframe[-1].value
    assert len(table) == 6 and list(table["mean"]) == pytest.approx(list(want["mean"]))
    assert any("farms-viz measure digits-cnn --method magnitude --sparsities 0.5,0.7 --seeds 0,1" in c.value
               for c in at.caption)
    assert not at.error


def test_example_asks_for_the_tiny_lm_with_wanda_at_four_levels(monkeypatch):
    calls = []

    def fake(model, method, levels, seeds=None, epsilon=0.3, progress=None, **kw):
        calls.append((model, method, tuple(levels), tuple(seeds), epsilon))
        rows = [{"model": model, "seed": s, "method": method, "allocation": a, "sparsity": x, "achieved": x,
                 "capped": 0, "metric": "held-out perplexity", "value": 5.0 + x + s, "dense": 4.4, "seconds": 1.0}
                for s in seeds for x in levels for a in outcome.ALLOCATIONS]
        return pd.DataFrame(rows, columns=list(outcome.COLUMNS))

    monkeypatch.setattr(outcome, "measure", fake)
    monkeypatch.setattr(app_outcome, "max_seeds", lambda model: 3)
    at = _digits_page()
    at.button(key="am_example").click()
    ok(at.run())
    assert calls == [("tinylm", "wanda", (0.5, 0.6, 0.7, 0.8), (0, 1, 2), "search")]  # the releases' protocol
    assert at.session_state["am_model"] == "tinylm"
    assert _figure(at)["layout"]["yaxis"]["type"] == "log"  # perplexity on a log scale


def test_served_mode_bounds_levels_and_offers_only_trained_seeds(monkeypatch):
    monkeypatch.setenv("FARMS_VIZ_SERVED", "1")
    monkeypatch.setattr(outcome.Family, "built", lambda self, seed: seed == 0)
    assert app_outcome.max_seeds("tinylm") == 1 and app_outcome.max_seeds("minilm") == 1
    monkeypatch.delenv("FARMS_VIZ_SERVED")
    assert app_outcome.max_seeds("tinylm") == 3
    monkeypatch.setenv("FARMS_VIZ_SERVED", "1")
    at = _digits_page()
    ms = at.multiselect(key="w_am_levels")
    assert ms.proto.max_selections == app_outcome.SERVED_LEVELS
    assert "at most 4 levels" in ms.help


def test_served_mode_offers_smollm2_from_the_cache_only(monkeypatch, tmp_path):
    """SmolLM2 takes a minute or more a row on 2 cores: a shared server shows only what was measured
    there before, and says so in one sentence instead of starting the work."""
    monkeypatch.setenv("FARMS_VIZ_CACHE", str(tmp_path))  # nothing measured yet
    monkeypatch.setenv("FARMS_VIZ_SERVED", "1")
    seen = {}
    real = outcome.measure

    def spy(*a, **k):
        seen.update(k)
        return real(*a, **k)

    monkeypatch.setattr(outcome, "measure", spy)
    at = _digits_page()
    at.selectbox(key="w_am_model").set_value("smollm2-135m")
    at.radio(key="w_am_method").set_value("sparsegpt")
    ok(at.run())
    at.button(key="am_run").click()
    ok(at.run())
    assert seen.get("cache_only") is True and seen.get("epsilon") == "search"
    assert at.error and "not been measured on this server" in at.error[0].value
