"""The lab's figures: MP curve integrates to 1 with the right edges; traces say what they show."""

from __future__ import annotations

import math

import numpy as np
import pytest

from farms_viz.analyses import lab
from farms_viz.figures import lab as figures_lab
from farms_viz.figures import style


@pytest.mark.parametrize("Q", [1.0, 1.5, 4.0, 16.0])
@pytest.mark.parametrize("scale", [1.0, 0.03])
def test_mp_curve_integrates_to_one_over_its_support(Q, scale):
    x, y = figures_lab.mp_line(Q, scale, log_x=False, n=4000)
    lo, hi = scale * (1 - 1 / math.sqrt(Q)) ** 2, scale * (1 + 1 / math.sqrt(Q)) ** 2
    assert x[0] == pytest.approx(lo, abs=1e-12) and x[-1] == pytest.approx(hi)
    assert np.trapezoid(y, x) == pytest.approx(1.0, abs=0.02 if Q == 1 else 0.005)
    # the mean of MP is the scale
    assert np.trapezoid(x * y, x) == pytest.approx(scale, rel=0.01)


def test_mp_curve_per_decade_integrates_to_one_in_log10():
    x, y = figures_lab.mp_line(4.0, 1.0, log_x=True, n=4000)
    assert np.trapezoid(y, np.log10(x)) == pytest.approx(1.0, abs=0.01)
    assert np.all(y >= 0)


def test_weight_scales_the_curve():
    _, y1 = figures_lab.mp_line(2.0, 1.0)
    _, y2 = figures_lab.mp_line(2.0, 1.0, weight=0.5)
    assert np.allclose(y2, 0.5 * y1)


def _result(spec):
    return lab.run_matrix(spec, lab.lab_settings(spec.rows, spec.cols))


def test_lab_esd_draws_theory_edges_and_no_spikes_for_noise():
    res = _result(lab.MatrixSpec(800, 200))  # Q = 4: edges 0.25, 2.25
    fig = figures_lab.lab_esd(res.spectra.esd_raw, res.theory_raw, res.spectra.mp_raw, "raw")
    names = [t.name.replace("<br>", " ") for t in fig.data]
    assert names[0].startswith("ESD raw: 200 eigenvalues")
    assert any(n.startswith("MP theory, Q = 4") for n in names)
    assert any(n.startswith("MP fitted to the bulk") for n in names)
    edges = sorted(float(t.x[0]) for t in fig.data if t.name and ("λ−" in t.name or "λ+" in t.name))
    assert edges == pytest.approx([0.25, 2.25])
    assert not any("spikes" in (n or "") for n in names)
    theory = next(t for t in fig.data if t.name.replace("<br>", " ").startswith("MP theory"))
    assert float(theory.x[0]) == pytest.approx(0.25) and float(theory.x[-1]) == pytest.approx(2.25)
    esd = next(t for t in fig.data if t.name.replace("<br>", " ").startswith("ESD raw"))
    assert esd.marker.color is None and esd.line.color == style.RAW_COLOR


def test_lab_esd_marks_planted_spikes():
    res = _result(lab.MatrixSpec(1000, 500, "planted", strength=2.0, rank=3))
    fig = figures_lab.lab_esd(res.spectra.esd_raw, res.theory_raw, res.spectra.mp_raw, "raw")
    spikes = next(t for t in fig.data if t.name.replace("<br>", " ").startswith("spikes above λ+: 3"))
    assert len(spikes.x) == 3 and min(spikes.x) > res.theory_raw.lambda_plus


def test_lab_esd_without_theory_uses_the_fit_and_log_axis():
    res = _result(lab.MatrixSpec(600, 300, "pareto", mu=1.5))
    fig = figures_lab.lab_esd(res.spectra.esd_farms, None, res.spectra.mp_farms, "farms", log_x=True)
    assert fig.layout.xaxis.type == "log"
    assert any(t.name.replace("<br>", " ").startswith("MP fitted to the bulk") for t in fig.data)
    assert not any(t.name.replace("<br>", " ").startswith("MP theory") for t in fig.data)
    assert next(t for t in fig.data if t.name.replace("<br>", " ").startswith("ESD FARMS")).line.color == style.FARMS_COLOR


def test_numbers_table_raw_vs_farms():
    res = _result(lab.MatrixSpec(400, 100))
    t = figures_lab.numbers_table(res.row, res.theory_raw, res.theory_farms)
    assert list(t.index) == ["raw", "FARMS"]
    assert float(t.loc["raw", "α (tail exponent)"]) == pytest.approx(res.alpha_raw, abs=1e-3)
    assert float(t.loc["raw", "MP bulk edge λ+ (theory)"]) == pytest.approx(2.25, abs=1e-3)


def test_sweep_figure_means_bands_and_reference():
    res = lab.sweep(lab.MatrixSpec(dist="pareto", mu=1.0), size=64, ratios=(1, 2, 4), n_seeds=2)
    fig = figures_lab.sweep_figure(res, reference=1.5)
    means = [t for t in fig.data if t.mode == "lines+markers"]
    assert [t.name.split(":")[0] for t in means] == ["α raw", "α FARMS"]
    assert np.allclose(means[0].y, res.mean("raw")) and np.allclose(means[1].y, res.mean("farms"))
    bands = [t for t in fig.data if t.fill == "toself"]
    assert len(bands) == 2 and len(bands[0].x) == 6
    lo, hi = res.band("raw")
    assert np.allclose(bands[0].y, np.concatenate([hi, lo[::-1]]))
    ref = next(t for t in fig.data if (t.name or "").replace("<br>", " ").startswith("theory 1 + μ/2"))
    assert list(ref.y) == [1.5, 1.5]
    assert fig.layout.xaxis.type == "log" and list(fig.layout.xaxis.tickvals) == [1, 1.5, 2, 3, 4]
