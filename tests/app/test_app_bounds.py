"""Link values against the widgets' bounds: one definition, clamped or defaulted with a sentence."""

from __future__ import annotations

import math

import pytest

from farms_viz.app.bounds import LAB, LAB_MAX_WINDOW, SETTINGS, Bound, choice_from_url, from_url, quote
from farms_viz.app.serving import admit, check_text, served

OPS = SETTINGS["ops"]
Q = SETTINGS["q"]


@pytest.mark.parametrize("raw,value", [("3", 3), ("50", 50), ("1", 1), ("7.0", 7), ("1e1", 10)])
def test_values_within_bounds_pass_unchanged(raw, value):
    assert from_url("ops", raw, OPS, 15) == (value, None)


@pytest.mark.parametrize("raw,value,words", [
    ("200", 50, "above the largest allowed value, so 50"),
    ("1e400", 15, "not a finite number"),  # overflows float: inf
    ("-3", 1, "below the smallest allowed value, so 1"),
    ("0", 1, "below"),
    ("abc", 15, "not a finite number, so the default 15"),
    ("nan", 15, "not a finite number"),
    ("inf", 15, "not a finite number"),
    ("-inf", 15, "not a finite number"),
    ("", 15, "not a finite number"),
    ("2.5", 15, "not a whole number"),
    ("9" * 500, 15, "not a finite number"),
])
def test_bad_whole_numbers_get_a_sentence_and_a_value_the_widget_accepts(raw, value, words):
    got, problem = from_url("ops", raw, OPS, 15)
    assert got == value and isinstance(got, int)
    assert words in problem and problem.count(".") >= 1
    assert OPS.lo <= got <= OPS.hi


@pytest.mark.parametrize("raw,value", [("0.01", 0.05), ("1e-300", 0.05), ("25", 20.0), ("nan", 1.0),
                                       ("0.5", 0.5)])
def test_floats_are_clamped_to_the_widget_range(raw, value):
    got, _ = from_url("q", raw, Q, 1.0)
    assert got == value and isinstance(got, float)


def test_widget_keywords_are_the_same_bounds():
    kw = SETTINGS["window"].widget()
    assert kw == {"min_value": 2, "max_value": 100_000, "step": 50}
    assert all(isinstance(v, int) for v in kw.values())
    assert all(isinstance(v, float) for v in Q.widget().values())
    assert LAB["win"].hi == LAB_MAX_WINDOW
    for b in (*SETTINGS.values(), *LAB.values()):
        assert b.lo < b.hi and b.step > 0


def test_choices_fall_back_to_the_default_with_a_sentence():
    assert choice_from_url("fit", "ks", ("xmin_peak", "ks"), "xmin_peak") == ("ks", None)
    value, problem = choice_from_url("fit", "[x](http://evil)", ("xmin_peak", "ks"), "xmin_peak")
    assert value == "xmin_peak" and "not one of xmin_peak, ks" in problem


@pytest.mark.parametrize("raw", ["[click](http://evil.example)", ":red[big]", "**bold**", "<b>x</b>", "`code`",
                                 ":material/home:"])
def test_quoted_values_cannot_inject_markup(raw):
    q = quote(raw)
    for c in "[]():*<>`":
        assert f"\\{c}" in q or c not in raw


def test_quoted_values_are_short_and_control_characters_visible():
    assert len(quote("a" * 3000)) <= 61
    assert "\\x00" in quote("a\x00b").replace("\\\\", "\\")
    assert "\x1b" not in quote("\x1b[31mred")


@pytest.mark.parametrize("value", ["a\x00b", "\x00", "x\ny", "\x1b[2J", "a" * 3000])
def test_no_source_can_have_control_characters_or_3000_characters(value):
    from farms_viz.errors import FarmsError

    with pytest.raises(FarmsError, match="nothing was opened"):
        check_text("link's model", value)


@pytest.mark.parametrize("kind,value", [("path", "/etc/shadow"), ("path", "relative/x.pt"), ("hub", "org/model"),
                                        ("zoo", "not-in-zoo"), ("ray", "10.0.0.5:6379")])
def test_served_mode_refuses_everything_but_zoo_and_uploads(monkeypatch, kind, value):
    from farms_viz.errors import FarmsError

    monkeypatch.setenv("FARMS_VIZ_SERVED", "1")
    assert served()
    with pytest.raises(FarmsError):
        admit(kind, value, zoo_names={"minilm"})
    admit("zoo", "minilm", zoo_names={"minilm"})
    admit("upload", "/tmp/farms_viz-1-x/session-y/home-w.pt")


@pytest.mark.parametrize("flag", ["", "0", "no", "false"])
def test_local_mode_keeps_paths_and_hub_ids(monkeypatch, flag):
    monkeypatch.setenv("FARMS_VIZ_SERVED", flag)
    assert not served()
    admit("path", "/etc/shadow")
    admit("hub", "org/model")


def test_bound_cast():
    assert Bound(0, 1, 1, whole=True).cast(1.0) == 1
    assert math.isclose(Bound(0.0, 1.0, 0.1).cast(1), 1.0)


def test_widget_bounds_lie_inside_what_settings_accept():
    """A value a widget or link allows never fails Settings' own validation (config.BOUNDS)."""
    from farms_viz.settings import BOUNDS

    for name, b in SETTINGS.items():
        low, high = BOUNDS[name]
        assert low <= b.lo and b.hi <= high, name
