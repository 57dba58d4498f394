"""Every page's view controls in the URL (bounds.LINKS): a link reopens the view, a bad value is one sentence.

Allocations (scheme and its settings), Compare (the series view), the overview's filters and the layer
browser's log-x toggle: each value that differs from its default goes into the URL, a link with it
reopens the same widgets, and a value the widget would not accept is clamped or replaced by the default
with one st.warning naming the parameter and the value used.
"""

from __future__ import annotations

import json

import pytest
from appkit import ROOT, linked_app, metrics, ok
from appkit import warnings as all_warnings

from farms_viz.app.bounds import ALLOCATIONS, FILTER, FLAG, LINKS, TEXT, Bound, Subset, read, url_text

OVERVIEW = str(ROOT / "pages" / "1_Model_overview.py")
BROWSER = str(ROOT / "pages" / "2_Layer_browser.py")
ALLOC = str(ROOT / "pages" / "3_Allocations.py")
COMPARE = str(ROOT / "pages" / "4_Compare.py")
#: three Linear layers (fc1..fc3): analysed in well under a second
SMALL = "digits-mlp@30"
#: two Conv2d and two Linear layers
CNN = "digits-cnn@30"


def _qp(at) -> dict:
    return {k: (v[0] if isinstance(v, list) else v) for k, v in at.query_params.items()}


def warnings(at) -> list[str]:
    """The page's sentences about the link (not its own notes, such as capped layers)."""
    return [w for w in all_warnings(at) if w.startswith("The link's")]


def _view(at) -> dict:
    """The URL's view values: without the model, the layer, A / B and the sidebar's settings."""
    return {k: v for k, v in _qp(at).items() if k not in ("model", "layer", "a", "b", "ops")}


def _captions(at) -> str:
    return " ".join(c.value for c in at.caption)


def _spec(at, i: int = 0) -> dict:
    """The i-th Plotly chart's figure JSON."""
    return json.loads(at.get("plotly_chart")[i].proto.spec)


# ------------------------------------------------------------------ the rules, once

@pytest.mark.parametrize("page", list(LINKS))
def test_every_default_passes_its_own_rule_and_round_trips(page):
    for p in LINKS[page]:
        if p.default in ("", ()):
            continue
        value, problem = read(p.url, url_text(p.default), p.rule, p.default)
        assert problem is None and value == p.default, p
        if isinstance(p.rule, Bound):
            assert p.rule.lo <= p.default <= p.rule.hi


def test_url_keys_are_unique_per_page_and_short():
    for page, params in LINKS.items():
        keys = [p.url for p in params]
        assert len(keys) == len(set(keys)), page
        assert all(k.isascii() and k.isalnum() and len(k) <= 10 for k in keys), keys


# ------------------------------------------------------------------ Allocations

def test_tempbalance_link_reopens_tempbalance_with_its_settings():
    at = ok(linked_app(ALLOC, s_ops=3, model=SMALL, scheme="tempbalance", map="sqrt", lr="0.01",
                       keepfirst="1").run())
    assert warnings(at) == []
    assert at.radio(key="w_al_scheme").value == "tempbalance"
    assert at.selectbox(key="w_al_map").value == "sqrt"
    assert at.number_input(key="w_al_lr").value == 0.01
    assert at.checkbox(key="w_al_keep_first").value is True
    assert metrics(at)["Base lr"] == "0.01"
    assert any("--scheme tempbalance --lr 0.01 --map sqrt" in c and "--keep-first" in c for c in
               [c.value for c in at.caption])
    assert _view(at) == {"scheme": "tempbalance", "map": "sqrt", "lr": "0.01", "keepfirst": "1"}


def test_alphapruning_settings_reopen_and_defaults_stay_out_of_the_url():
    at = ok(linked_app(ALLOC, s_ops=3, model=SMALL, sparsity="0.8", eps="0.2").run())
    assert warnings(at) == []
    assert at.slider(key="w_al_sparsity").value == 0.8 and at.slider(key="w_al_epsilon").value == 0.2
    assert metrics(at)["Target sparsity"] == "0.80"
    qp = _qp(at)
    assert qp["sparsity"] == "0.8" and qp["eps"] == "0.2"
    assert not {"scheme", "map", "lr", "blockwise"} & set(qp)  # defaults are not written
    at.slider(key="w_al_sparsity").set_value(0.7)
    ok(at.run())
    assert "sparsity" not in _qp(at)  # back at the default: dropped from the link
    at.radio(key="w_al_scheme").set_value("tempbalance")
    ok(at.run())
    assert _qp(at)["scheme"] == "tempbalance"


@pytest.mark.parametrize("query,key,used,words", [
    ({"sparsity": "2"}, "al_sparsity", 0.95, "sparsity=2 is above the largest allowed value, so 0.95 is used"),
    ({"sparsity": "nan"}, "al_sparsity", 0.7, "sparsity=nan is not a finite number, so the default 0.7"),
    ({"eps": "-1"}, "al_epsilon", 0.0, "eps=\\-1 is below the smallest allowed value, so 0 is used"),
    ({"scheme": "prune"}, "al_scheme", "alphapruning", "scheme=prune is not one of alphapruning, tempbalance"),
    ({"scheme": "tempbalance", "lr": "0"}, "al_lr", 1e-8, "lr=0 is below the smallest allowed value, so 1e-08"),
    ({"scheme": "tempbalance", "map": "cube"}, "al_map", "linear", "map=cube is not one of linear, sqrt"),
    ({"scheme": "tempbalance", "lrmax": "1e9"}, "al_lr_max", 10.0, "lrmax=1e9 is above the largest"),
    ({"blockwise": "maybe"}, "al_block_wise", False, "blockwise=maybe is not 1, 0, true or false, so 0 is used"),
    ({"block": "2.5"}, "al_block_size", 0, "block=2\\.5 is not a whole number, so the default 0"),
])
def test_bad_allocation_values_are_one_sentence_and_the_widget_value(query, key, used, words):
    at = ok(linked_app(ALLOC, s_ops=3, model=SMALL, **query).run())
    (w,) = warnings(at)
    assert words in w, w
    assert at.session_state[key] == used
    assert not at.error


def test_allocation_numbers_use_the_widgets_bounds():
    assert ALLOCATIONS["sparsity"].widget() == {"min_value": 0.05, "max_value": 0.95, "step": 0.05}
    assert ALLOCATIONS["eps"].widget() == {"min_value": 0.0, "max_value": 0.9, "step": 0.05}
    assert ALLOCATIONS["lr"].lo == 1e-8 and ALLOCATIONS["lr"].hi == 10.0


# ------------------------------------------------------------------ Compare

def test_series_link_reopens_the_series_view():
    at = ok(linked_app(COMPARE, s_ops=3, view="series", series="cnn").run())
    assert warnings(at) == []
    assert at.radio(key="w_cmp_view").value == "series"
    assert at.selectbox(key="w_cmp_series_arch").value == "cnn"
    assert any("digits-cnn: 5 checkpoints" in h.value for h in at.subheader)
    assert _view(at) == {"view": "series", "series": "cnn"}
    at.radio(key="w_cmp_view").set_value("pair")
    at.run()
    assert "view" not in _qp(at)


def test_bad_compare_view_values_are_sentences():
    at = ok(linked_app(COMPARE, s_ops=3, a="digits-mlp@1", b=SMALL, view="grid", series="rnn").run())
    ws = warnings(at)
    assert any("view=grid is not one of pair, series, so pair is used" in w for w in ws), ws
    assert any("series=rnn is not one of mlp, cnn, so mlp is used" in w for w in ws), ws
    assert at.radio(key="w_cmp_view").value == "pair"


def test_series_folder_link_opens_that_folder(tmp_path):
    import torch
    from safetensors.torch import save_file

    for step in (10, 2):
        save_file({"fc.weight": torch.randn(64, 32, generator=torch.Generator().manual_seed(step))},
                  str(tmp_path / f"step_{step}.safetensors"))
    at = ok(linked_app(COMPARE, s_ops=3, view="series", **{"from": "folder"}, folder=str(tmp_path)).run())
    assert warnings(at) == [] and not at.error
    assert at.text_input(key="w_cmp_series_folder").value == str(tmp_path)
    assert any("2 checkpoints" in h.value for h in at.subheader)


def test_series_folder_in_served_mode_is_a_sentence(monkeypatch):
    monkeypatch.setenv("FARMS_VIZ_SERVED", "1")
    at = ok(linked_app(COMPARE, s_ops=3, view="series", **{"from": "folder"}, folder="/etc").run())
    ws = warnings(at)
    assert any("from=folder is not one of zoo, so zoo is used" in w for w in ws), ws
    assert at.radio(key="w_cmp_series_kind").value == "zoo"


# ------------------------------------------------------------------ model overview

def test_overview_filter_and_kinds_reopen():
    at = ok(linked_app(OVERVIEW, s_ops=3, model=CNN, filter="^(conv|fc)2", kinds="conv2d").run())
    assert warnings(at) == []
    assert at.text_input(key="w_ov_pattern").value == "^(conv|fc)2"
    assert at.multiselect(key="w_ov_kinds").value == ["conv2d"]
    assert "1 of 4 layers" in _captions(at)
    assert _view(at) == {"filter": "^(conv|fc)2", "kinds": "conv2d"}
    at.multiselect(key="w_ov_kinds").set_value([]).run()
    assert _view(at) == {"filter": "^(conv|fc)2"} and "2 of 4 layers" in _captions(at)
    at.text_input(key="w_ov_pattern").input("").run()
    assert _view(at) == {} and "4 of 4 layers" in _captions(at)


@pytest.mark.parametrize("query,words", [
    ({"filter": "layer("}, "filter=layer\\( is not a regular expression the filter accepts"),
    ({"filter": "(a)\\1"}, "no back-references or look-around), so no filter is used"),
    ({"filter": "x" * 300}, "The link's filter is 300 characters long, more than the 200"),
    ({"kinds": "conv2d,bogus"}, "kinds=conv2d\\,bogus names bogus, not among"),
    ({"view": "pie"}, "view=pie is not one of blocks, bars, so blocks is used"),
])
def test_bad_overview_values_are_one_sentence(query, words):
    at = ok(linked_app(OVERVIEW, s_ops=3, model=CNN, **query).run())
    (w,) = warnings(at)
    assert words in w and len(w) < 400, w
    assert not at.error
    assert at.text_input(key="w_ov_pattern").value == ""


# ------------------------------------------------------------------ layer browser

def test_logx_link_reopens_a_linear_axis():
    at = ok(linked_app(BROWSER, s_ops=3, model=SMALL, layer="fc2", logx="0").run())
    assert warnings(at) == []
    assert at.toggle(key="w_br_logx").value is False
    assert _spec(at)["layout"]["xaxis"].get("type") != "log"
    assert _qp(at)["logx"] == "0" and _qp(at)["layer"] == "fc2"
    at.toggle(key="w_br_logx").set_value(True)
    ok(at.run())
    assert "logx" not in _qp(at)
    assert _spec(at)["layout"]["xaxis"].get("type") == "log"


@pytest.mark.parametrize("raw", ["maybe", "2", "\x00", "on" * 600])
def test_bad_logx_is_a_sentence_and_log(raw):
    at = ok(linked_app(BROWSER, s_ops=3, model=SMALL, logx=raw).run())
    (w,) = warnings(at)
    assert "is not 1, 0, true or false, so 1 is used" in w and len(w) < 400
    assert at.toggle(key="w_br_logx").value is True


@pytest.mark.parametrize("rule,raw,default,value,words", [
    (TEXT, "/runs/a b", "", "/runs/a b", None),
    (TEXT, "/runs/\x00x", "", "", "contains control characters"),
    (TEXT, "x" * 3000, "", "", "3000 characters long"),
    (FLAG, "TRUE", False, True, None),
    (FLAG, " 0 ", True, False, None),
    (FLAG, "yes", False, False, "is not 1, 0, true or false, so 0 is used"),
    (Subset(("linear", "conv2d")), "conv2d,linear,conv2d", (), ("conv2d", "linear"), None),
    (Subset(("linear",), "every kind"), "x,,y", (), (), "names x\\, y, not among linear, so every kind is used"),
    (FILTER, r"layer\.[0-2]\.", "", r"layer\.[0-2]\.", None),
    (FILTER, "(?<=a)b", "", "", "not a regular expression the filter accepts"),
])
def test_rules_read_text_flags_subsets_and_filters(rule, raw, default, value, words):
    got, problem = read("p", raw, rule, default)
    assert got == value
    assert (problem is None) if words is None else (words in problem and len(problem) < 300)


def test_overview_view_link_reopens_bars_on_a_long_model():
    """llama-7b-published (224 layers in 32 blocks) opens by block; ?view=bars reopens every layer as a bar."""
    def png_names(at):
        return [json.loads(c.proto.config)["toImageButtonOptions"]["filename"] for c in at.get("plotly_chart")]

    at = ok(linked_app(OVERVIEW, model="llama-7b-published").run())
    assert at.session_state["ov_view"] == "blocks" and any(n.endswith("alpha-by-block") for n in png_names(at))
    at = ok(linked_app(OVERVIEW, model="llama-7b-published", view="bars").run())
    assert warnings(at) == []
    assert at.session_state["ov_view"] == "bars" and any(n.endswith("alpha-per-layer") for n in png_names(at))
    assert _view(at) == {"view": "bars"}
