"""Links (URL query values) in the app: held to the widgets' bounds, absurd values answered in one sentence.

Every value read from the URL goes through farms_viz.app.bounds, the same limits the widgets take, so the
number analysed is the number the widget shows; a refused or clamped value is one st.warning.
"""

from __future__ import annotations

import pytest
from appkit import ROOT, linked_app, ok, warnings

from farms_viz.app import server as appserver
from farms_viz.app.budget import JobBudget

LAB = str(ROOT / "pages" / "5_Lab.py")
BROWSER = str(ROOT / "pages" / "2_Layer_browser.py")
COMPARE = str(ROOT / "pages" / "4_Compare.py")
#: a zoo model of three small Linear layers: analysed in well under a second at any setting
SMALL = "digits-mlp@30"




def _qp(at) -> dict:
    return {k: (v[0] if isinstance(v, list) else v) for k, v in at.query_params.items()}


def _caption(at) -> str:
    return " ".join(c.value for c in at.caption)


def test_ops_over_the_maximum_analyses_with_what_the_widget_shows():
    at = ok(linked_app(model=SMALL, ops="200").run())
    assert at.number_input(key="w_s_ops").value == 50
    assert "50 × 50 per matrix" in _caption(at)  # the analysis ran with 50, not 200
    (w,) = warnings(at)
    assert "ops=200" in w and "largest allowed value, so 50" in w
    assert _qp(at)["ops"] == "50"  # the shared link now says what was used


@pytest.mark.parametrize("query,field,used,words", [
    ({"window": "1"}, "window", 2, "below the smallest"),
    ({"q": "0.01"}, "q", 0.05, "below the smallest"),
    ({"q": "inf"}, "q", 1.0, "not a finite number"),
    ({"xmin_pos": "1e400"}, "xmin_pos", 2.0, "not a finite number"),
    ({"ops": "2.5"}, "ops", 15, "not a whole number"),
])
def test_each_bad_setting_is_one_sentence_and_the_widget_value(query, field, used, words):
    at = ok(linked_app(model=SMALL, **query).run())
    assert at.number_input(key=f"w_s_{field}").value == used
    assert at.session_state[f"s_{field}"] == used
    (w,) = warnings(at)
    assert words in w


def test_several_bad_values_get_a_sentence_each_and_are_not_dropped_silently():
    at = ok(linked_app(model=SMALL, window="abc", ops="-3", q="nan", fit="bogus", preset="evil").run())
    ws = warnings(at)
    assert len(ws) == 5, ws
    for name in ("window=abc", "ops=\\-3", "q=nan", "fit=bogus", "preset=evil"):
        assert any(name in w for w in ws), (name, ws)
    assert at.session_state["s_window"] == 2000 and at.session_state["s_ops"] == 1
    assert at.session_state["s_q"] == 1.0 and at.session_state["s_fit"] == "xmin_peak"
    # the warnings are shown once: the next rerun of the same session is quiet
    assert warnings(ok(at.run())) == []


@pytest.mark.parametrize("model,words", [
    ("\x00", "control characters"),
    ("a\x00b", "control characters"),
    ("x" * 3000, "3000 characters long"),
    ("/tmp/\x1b[31mred", "control characters"),
])
def test_absurd_model_values_are_one_sentence_not_a_traceback(model, words):
    at = ok(linked_app(model=model, ops="3").run())
    ws = warnings(at)
    assert len(ws) == 1 and words in ws[0] and "Showing minilm instead" in ws[0]
    assert len(ws[0]) < 400  # the 3000 characters are not echoed
    assert at.metric[0].value  # the default model is shown
    assert not at.error


def test_a_markdown_link_in_a_value_is_shown_as_text():
    at = ok(linked_app(model=SMALL, fit="[click](http://evil.example)").run())
    (w,) = warnings(at)
    assert "\\[click\\]\\(http" in w  # escaped: rendered as the literal text, not a link


@pytest.mark.parametrize("layer", ["nonexistent", "\x00", "L" * 3000])
def test_unknown_layer_in_the_link_is_one_sentence_and_the_most_moved_layer(layer):
    at = ok(linked_app(BROWSER, model=SMALL, layer=layer).run())
    (w,) = warnings(at)
    shown = at.selectbox(key="w_layer").value
    assert "is not a layer of" in w and "showing the layer whose α FARMS moves most" in w and len(w) < 400
    assert f"`{shown}`" in w or shown in w
    assert _qp(at)["layer"] == at.selectbox(key="w_layer").value


@pytest.mark.parametrize("query,key,used,words", [
    ({"per_dim": "1000"}, "per_dim", 15, "largest allowed value, so 15"),
    ({"win": "5000"}, "win", 1024, "largest allowed value, so 1024"),
    ({"seed": "-1"}, "seed", 0, "smallest allowed value, so 0"),
    ({"rows": "abc"}, "rows", 1000, "not a finite number"),
    ({"dist": "cauchy"}, "dist", "gaussian", "not one of"),
])
def test_lab_link_values_are_held_to_the_lab_widgets(query, key, used, words):
    at = ok(linked_app(LAB, **{"rows": "300", "cols": "200", **query}).run())
    assert at.session_state[f"lab_{key}"] == used
    assert any(words in w for w in warnings(at)), warnings(at)
    widget = at.selectbox(key=f"w_lab_{key}") if key == "dist" else at.number_input(key=f"w_lab_{key}")
    assert widget.value == used


def test_lab_sweep_link_with_huge_values_is_clamped_not_run():
    at = ok(linked_app(LAB, view="sweep", seeds="100", size="99999").run())
    ws = warnings(at)
    assert any("seeds=100" in w for w in ws) and any("size=99999" in w for w in ws)
    assert at.session_state["lab_seeds"] == 20 and at.session_state["lab_size"] == 512
    assert any("over the lab's 4096" in e.value for e in at.error)  # 512 x 16: refused before any work


def test_compare_sides_with_absurd_values_fall_back_with_a_sentence():
    at = ok(linked_app(COMPARE, a="\x00", b=SMALL, ops="3").run())
    ws = [w for w in warnings(at) if w.startswith("Checkpoint")]  # not the page's unmatched-layers note
    assert len(ws) == 1 and ws[0].startswith("Checkpoint A:") and "control characters" in ws[0]
    assert at.radio(key="w_cmp_a_kind").value == "zoo"


def test_a_lab_job_waits_for_a_free_slot_and_then_runs(monkeypatch):
    """Another visitor's job holds the server's only slot: this page queues, then computes."""
    import threading

    budget = JobBudget(1)
    monkeypatch.setattr(appserver, "job_budget", lambda: budget)
    seen = []
    real = appserver.queue_text
    monkeypatch.setattr(appserver, "queue_text", lambda a, s: seen.append(a) or real(a, s))
    held = threading.Event()
    done = threading.Event()

    def other_visitor():
        with budget.slot():
            held.set()
            done.wait(1.5)

    t = threading.Thread(target=other_visitor)
    t.start()
    held.wait(5)
    at = ok(linked_app(LAB, rows="321", cols="123").run())
    t.join(5)
    assert seen and seen[0] == 1  # "waiting for 1 job ahead of yours"
    assert budget.waited == 1 and budget.running == 0
    assert any(m.label == "Matrix" and m.value == "321 × 123" for m in at.metric)


def test_a_sweep_stops_between_matrices_when_the_visitor_has_gone(monkeypatch):
    from farms_viz.analyses import lab

    budget = JobBudget(1)
    monkeypatch.setattr(appserver, "job_budget", lambda: budget)
    calls = []
    real = lab.analyze_matrix
    monkeypatch.setattr(lab, "analyze_matrix", lambda *a, **k: calls.append(1) or real(*a, **k))
    checks = []
    monkeypatch.setattr(appserver, "session_gone", lambda: checks.append(1) or len(checks) > 3)
    at = ok(linked_app(LAB, view="sweep", size="32", seeds="3").run())
    assert len(calls) == 3  # 3 of 27 matrices, then the session was gone
    assert not at.get("plotly_chart") and not at.error
    assert budget.running == 0 and budget.waiting == 0
