"""Outcome figures: a line per allocation at the seeds' mean, its band exactly the seeds' min-max."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from farms_viz.analyses.outcome import ALLOCATIONS, COLUMNS, summarize
from farms_viz.analyses.tempbalance import summarize_curves
from farms_viz.figures.outcome import curves_chart, outcome_chart


def _table(seeds=(0, 1, 2), metric="held-out perplexity") -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = [{"model": "tinylm", "seed": s, "method": "wanda", "allocation": a, "sparsity": x, "achieved": x,
             "capped": 0, "metric": metric, "value": 5 + 10 * x + i + rng.uniform(0, 1), "dense": 4.4,
             "seconds": 1.0}
            for s in seeds for x in (0.5, 0.6, 0.7) for i, a in enumerate(ALLOCATIONS)]
    return pd.DataFrame(rows, columns=list(COLUMNS))


def _by_meta(fig) -> dict:
    return {t.meta: t for t in fig.data}


def test_lines_are_means_and_bands_span_min_to_max():
    t = _table()
    fig = outcome_chart(summarize(t))
    traces = _by_meta(fig)
    for a in ALLOCATIONS:
        sub = t[t["allocation"] == a].groupby("sparsity")["value"]
        assert list(traces[a].x) == [0.5, 0.6, 0.7]
        assert np.allclose(traces[a].y, sub.mean().to_numpy())
        band = traces[f"{a} band"]
        assert band.fill == "toself"
        assert np.allclose(band.y, np.concatenate([sub.min().to_numpy(), sub.max().to_numpy()[::-1]]))
    assert fig.layout.yaxis.type == "log"  # perplexity
    assert fig.layout.shapes[0].y0 == pytest.approx(4.4)  # the dense model
    sd = _by_meta(outcome_chart(summarize(t), band="sd"))["farms band"]
    s = summarize(t)
    f = s[s["allocation"] == "farms"]
    assert np.allclose(sd.y[:3], f["mean"] - f["sd"])


def test_one_seed_has_no_band_and_accuracy_is_linear():
    fig = outcome_chart(summarize(_table(seeds=(0,), metric="test accuracy")))
    assert not [t for t in fig.data if str(t.meta).endswith("band")]
    assert fig.layout.yaxis.type == "linear" and "one seed" in fig.layout.title.text


def test_curves_chart_has_a_line_and_band_per_arm():
    rows = [{"arm": a, "seed": s, "epoch": e, "accuracy": 0.1 + 0.08 * e + 0.01 * s, "seconds": 0.1}
            for a in ("uniform", "raw", "farms") for s in (0, 1, 2) for e in range(4)]
    summary = summarize_curves(pd.DataFrame(rows))
    traces = _by_meta(curves_chart(summary))
    assert {"uniform", "raw", "farms", "uniform band", "raw band", "farms band"} == set(traces)
    assert np.allclose(traces["farms"].y, [0.11 + 0.08 * e for e in range(4)])
    assert np.allclose(traces["raw band"].y[:4], [0.1 + 0.08 * e for e in range(4)])
