"""The app's views of WeightWatcher's metrics: the overview's metric switch and its link value, the
layer browser's randomized ESD and trap entries, Home's summary."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from appkit import APP, ROOT, linked_app, ok
from safetensors.torch import save_file

from farms_viz import analyze

pytestmark = pytest.mark.app

OVERVIEW = str(ROOT / "pages/1_Model_overview.py")
BROWSER = str(ROOT / "pages/2_Layer_browser.py")


def _figures(at) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def _trace(fig: dict, meta) -> dict:
    hits = [d for d in fig["data"] if d.get("meta") == meta]
    assert hits, [d.get("meta") for d in fig["data"]]
    return hits[0]


def _values(trace: dict, axis: str) -> np.ndarray:
    v = trace[axis]
    if isinstance(v, dict):  # plotly's typed array
        import base64
        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=v["dtype"])
    return np.asarray(v, dtype=float)


def test_overview_metric_switch_redraws_with_the_chosen_metric():
    at = ok(linked_app(OVERVIEW, s_ops=3, model="digits-mlp@30").run())
    assert at.selectbox(key="w_ov_metric").value == "alpha"
    bars = _figures(at)[0]
    assert _trace(bars, "alpha_raw")["name"] == "α raw"
    at.selectbox(key="w_ov_metric").set_value("entropy")
    ok(at.run())
    t = analyze("digits-mlp@30", ops=3).table
    bars, scatter = _figures(at)[:2]
    assert np.allclose(_values(_trace(bars, "entropy_raw"), "x"), t["entropy_raw"])
    assert np.allclose(_values(_trace(bars, "entropy_farms"), "x"), t["entropy_farms"])
    assert np.allclose(_values(_trace(scatter, "entropy_farms"), "y"), t["entropy_farms"])
    assert not [d for d in bars["data"] if d.get("meta") == "alpha_raw"]
    assert at.query_params["metric"] in ("entropy", ["entropy"])


def test_a_linked_metric_opens_it_and_a_bad_one_is_one_sentence():
    at = ok(linked_app(OVERVIEW, s_ops=3, model="digits-mlp@30", metric="num_traps").run())
    assert at.selectbox(key="w_ov_metric").value == "num_traps"
    assert _trace(_figures(at)[0], "num_traps_raw")["name"] == "num_traps raw"
    bad = ok(linked_app(OVERVIEW, s_ops=3, model="digits-mlp@30", metric="<b>x</b>").run())
    said = [w.value for w in bad.warning if "metric" in w.value]
    assert len(said) == 1 and said[0].startswith("The link's metric=") and said[0].endswith("so alpha is used.")
    assert bad.selectbox(key="w_ov_metric").value == "alpha"


def test_layer_browser_draws_randomized_esd_traps_and_rings_the_planted_entry(tmp_path):
    g = torch.Generator().manual_seed(0)
    w = torch.randn(128, 256, generator=g) / 16
    w[10, 20] = 30.0
    path = tmp_path / "trap.safetensors"
    save_file({"trap.weight": w.contiguous()}, str(path))
    at = ok(linked_app(BROWSER, s_ops=3, model=str(path)).run())
    figs = _figures(at)
    esds = [f for f in figs if any(d.get("meta") == "randomized ESD" for d in f["data"])]
    assert len(esds) == 2  # raw and FARMS columns
    raw_traps = _trace(esds[0], "traps")
    assert raw_traps["name"] == "correlation traps (1)"
    ring = _trace(figs[-1], "trap entries")
    assert (_values(ring, "x").tolist(), _values(ring, "y").tolist()) == ([20.5], [10.5])
    words = [m.value for m in at.markdown if "ringed on |W|" in m.value]
    assert len(words) == 1 and "largest |w − mean|" in words[0]
    # randomize off: no randomized ESD, and the sentence says so
    at.session_state["s_randomize"] = False
    ok(at.run())
    assert not [d for f in _figures(at) for d in f["data"] if d.get("meta") in ("randomized ESD", "trap entries")]
    assert any("randomized ESD is off" in m.value for m in at.markdown)


def test_home_shows_the_metric_summary():
    at = ok(linked_app(APP, s_ops=3, model="digits-mlp@30").run())
    exp = [e for e in at.expander if e.label == "WeightWatcher's metrics, raw and FARMS"]
    assert len(exp) == 1
    frame = exp[0].dataframe[0].value
    assert "log_norm" in set(frame["metric"]) and {"raw", "FARMS"} <= set(frame.columns)


COMPARE = str(ROOT / "pages/4_Compare.py")


def test_compare_metric_switch_and_link():
    at = ok(linked_app(COMPARE, s_ops=3, a="digits-mlp@1", b="digits-mlp@30", metric="entropy").run())
    assert at.selectbox(key="w_cmp_metric").value == "entropy"
    ta, tb = analyze("digits-mlp@1", ops=3).table, analyze("digits-mlp@30", ops=3).table
    bars = _figures(at)[0]
    assert np.allclose(_values(_trace(bars, "delta_entropy_farms"), "x"), tb["entropy_farms"] - ta["entropy_farms"])
    at.query_params["view"] = "series"
    at.session_state["cmp_view"] = "series"
    ok(at.run())
    lines = [f for f in _figures(at) if any(d.get("meta") == "entropy_farms" for d in f["data"])]
    assert lines, "the series charts show entropy"
