"""The aspect-ratio trend and the sentence that states it (analyses.trend)."""

import numpy as np
import pandas as pd
import pytest

from farms_viz.analyses.trend import trend_pair, trend_sentence


def _table(ar, raw, farms):
    return pd.DataFrame({"aspect_ratio": ar, "alpha_raw": raw, "alpha_farms": farms})


def test_slopes_are_least_squares_per_decade():
    rng = np.random.default_rng(0)
    ar = 10 ** rng.uniform(0, 1.5, 60)
    raw = 2 + 1.2 * np.log10(ar) + rng.normal(0, 0.05, 60)
    farms = 3 + rng.normal(0, 0.05, 60)
    p = trend_pair(_table(ar, raw, farms))
    assert p.raw.value == pytest.approx(np.polyfit(np.log10(ar), raw, 1)[0], rel=1e-12)
    assert p.raw.low < 1.2 < p.raw.high and not p.raw.flat
    assert p.farms.flat and p.farms_changes_trend
    assert p.difference.value == pytest.approx(p.raw.value - p.farms.value)


def test_interval_covers_the_true_slope_about_95_percent_of_the_time():
    """The bootstrap interval is calibrated: over 60 noisy tables it covers the true slope 85-100 %."""
    rng = np.random.default_rng(1)
    hits = 0
    for _ in range(60):
        ar = 10 ** rng.uniform(0, 1, 40)
        raw = 1.0 * np.log10(ar) + rng.normal(0, 0.3, 40)
        p = trend_pair(_table(ar, raw, raw + rng.normal(0, 0.1, 40)), n_boot=400, seed=int(rng.integers(1 << 30)))
        hits += p.raw.low <= 1.0 <= p.raw.high
    assert 51 <= hits <= 60


def test_undefined_with_one_aspect_ratio_or_too_few_layers():
    assert not trend_pair(_table([1.0] * 5, [2, 3, 4, 5, 6], [2] * 5)).raw.defined
    assert "one aspect ratio" in trend_sentence(trend_pair(_table([1.0] * 5, [2, 3, 4, 5, 6], [2] * 5)))
    assert not trend_pair(_table([1.0, 4.0], [2, 3], [2, 3])).raw.defined


@pytest.mark.parametrize("seed", range(40))
def test_a_sentence_never_calls_a_trend_flat_that_its_interval_excludes(seed):
    """Random tables with and without trends: 'flat' appears for a side only when its interval holds 0,
    and 'FARMS changes the trend' only when the difference's interval excludes 0."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(4, 40))
    ar = 10 ** rng.uniform(0, rng.uniform(0.2, 2), n)
    raw = rng.uniform(-2, 2) * np.log10(ar) + rng.normal(0, rng.uniform(0.01, 1), n) + 3
    farms = rng.uniform(-2, 2) * rng.integers(0, 2) * np.log10(ar) + rng.normal(0, rng.uniform(0.01, 1), n) + 3
    p = trend_pair(_table(ar, raw, farms), n_boot=300)
    text = trend_sentence(p)
    for name, s in (("Raw", p.raw), ("FARMS", p.farms)):
        part = text.split(f"{name}:")[1].split(".")[0] if f"{name}:" in text else ""
        assert ("flat" in part) == (s.defined and s.low <= 0 <= s.high)
    assert ("FARMS changes the trend" in text) == p.farms_changes_trend
    assert "should" not in text


@pytest.mark.parametrize("seed", range(20))
def test_table_cells_say_flat_exactly_when_the_interval_holds_zero(seed):
    import re

    from farms_viz.analyses.trend import trend_rows
    rng = np.random.default_rng(100 + seed)
    ar = 10 ** rng.uniform(0, 1, 12)
    p = trend_pair(_table(ar, rng.uniform(-1, 1) * np.log10(ar) + rng.normal(0, .3, 12), rng.normal(3, .3, 12)),
                   n_boot=300)
    (row,) = trend_rows({"xmin_mid": p})
    for col in ("raw slope", "FARMS slope"):
        v, lo, hi, flat = re.fullmatch(r"([+-]\d+\.\d+) \[([+-]\d+\.\d+), ([+-]\d+\.\d+)\]( flat)?", row[col]).groups()
        assert bool(flat) == (float(lo) <= 0 <= float(hi))
    assert (row["reading"] == "FARMS changes the trend") == p.farms_changes_trend
