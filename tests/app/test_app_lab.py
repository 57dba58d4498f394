"""The lab page through AppTest: presets in one click, state in the URL, the sweep, bad input."""

from __future__ import annotations

from appkit import ROOT, charts, metrics, ok
from streamlit.testing.v1 import AppTest

LAB = str(ROOT / "pages" / "5_Lab.py")


def _lab(**query) -> AppTest:
    at = AppTest.from_file(LAB, default_timeout=60)
    for k, v in query.items():
        at.query_params[k] = v
    return at


def _qp(at) -> dict:
    return {k: (v[0] if isinstance(v, list) else v) for k, v in at.query_params.items()}


def _click(at, preset: str) -> AppTest:
    return ok(at.button(key=f"preset_{preset}").click().run())


def test_default_view_is_a_square_gaussian_with_equal_alphas():
    at = ok(_lab().run())
    m = metrics(at)
    assert m["Matrix"] == "1000 × 1000"
    assert abs(float(m["α raw"]) - float(m["α FARMS"])) < 0.05  # square: no bias to remove
    assert charts(at) == 5
    assert _qp(at) == {}
    assert len(at.latex) == 3


def test_pure_noise_tall_preset_shows_the_bias():
    at = _click(ok(_lab().run()), "Pure noise, tall matrix")
    m = metrics(at)
    assert m["Matrix"] == "2000 × 250"
    assert float(m["α raw"]) > float(m["α FARMS"]) + 1.5
    assert _qp(at) == {"rows": "2000", "cols": "250"}


def test_heavy_tailed_preset_and_link_round_trip():
    at = _click(ok(_lab().run()), "Heavy-tailed")
    qp = _qp(at)
    assert qp == {"cols": "500", "dist": "pareto", "log": "1"}
    assert 1.55 < float(metrics(at)["α raw"]) < 1.95  # theory 1 + 1.5/2 = 1.75
    assert any("infinite variance" in i.value for i in at.info)
    # a student opening the shared link sees the same matrix
    at2 = ok(_lab(**qp).run())
    assert metrics(at2) == metrics(at)
    assert at2.selectbox(key="w_lab_dist").value == "pareto"


def test_planted_signal_preset_shows_rank_spikes():
    at = _click(ok(_lab().run()), "Planted signal")
    df = at.dataframe[0].value
    assert df.loc["raw", "spikes above λ+"] == "3" and df.loc["FARMS", "spikes above λ+"].endswith(" per window")
    assert _qp(at)["dist"] == "planted"


def test_bias_sweep_preset_runs_the_sweep():
    at = _click(ok(_lab().run()), "Bias sweep")
    assert _qp(at) == {"view": "sweep"}
    chart = at.get("plotly_chart")
    assert len(chart) == 1
    text = " ".join(m.value for m in at.markdown)
    assert "per doubling of Q" in text
    raw_slope = float(text.split("raw α changes by\n**")[1].split("**")[0])
    farms_slope = float(text.split("FARMS α by **")[1].split("**")[0])
    assert raw_slope > 0.5 and abs(farms_slope) < 0.05
    assert "Under the **xmin_mid** rule" in text  # the sweep says which rule it fitted with


def test_the_sweep_switches_fit_rule_from_the_same_view():
    at = _click(ok(_lab().run()), "Bias sweep")
    at.get("segmented_control")  # the rule switch sits beside the sweep
    ctl = [w for w in at.get("segmented_control") if "Fit rule" in str(w.proto.label)]
    assert len(ctl) == 1
    ctl[0].set_value("xmin_peak")
    ok(at.run())
    text = " ".join(m.value for m in at.markdown)
    assert "Under the **xmin_peak** rule" in text and _qp(at).get("fit") == "xmin_peak"


def test_bad_url_values_fall_back_and_bad_sizes_are_errors():
    at = ok(_lab(dist="cauchy", rows="abc").run())
    assert metrics(at)["Matrix"] == "1000 × 1000"
    at = ok(_lab(view="sweep", size="512").run())  # 512 * 16 > 4096
    assert any("over the lab's 4096" in e.value for e in at.error)


def test_the_4_bit_round_trip_shows_how_far_quantization_moves_alpha():
    """q4=1 stores the matrix at 4 bits (GGML Q4_1) and reads it back; the alpha cards say how far
    that moved each alpha against the same matrix unquantized, and the caption gives the error."""
    plain = metrics(ok(_lab(rows="800", cols="200").run()))
    at = ok(_lab(rows="800", cols="200", q4="1").run())
    assert at.toggle(key="w_lab_q4").value is True
    m = metrics(at)
    deltas = {x.label: x.proto.delta for x in at.metric}
    for card in ("α raw", "α FARMS"):
        want = float(m[card]) - float(plain[card])  # of the cards' rounded values: to a few 1e-3
        assert deltas[card].endswith(" from 4 bits") and abs(float(deltas[card].split()[0]) - want) < 2e-3
    assert any("Q4_1" in c.value and "‖W − Q(W)‖ / ‖W‖ = 0.0" in c.value for c in at.caption)
