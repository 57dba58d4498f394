"""Fit-rule sensitivity: refitting the stored spectra under each rule reproduces a fresh analysis."""

import numpy as np
import pytest
import torch
from torch import nn

from farms_viz import analyze
from farms_viz.analyses.rules import as_report_table, rule_column, rule_table, spread
from farms_viz.settings import FITS


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 96), nn.Conv2d(24, 48, 3),
                         nn.Conv2d(48, 48, 3, groups=48), nn.Linear(80, 80))


@pytest.mark.parametrize("conv_rule", ["release", "grid"])
def test_each_rule_equals_an_analysis_run_with_that_rule(conv_rule):
    """The same spectra refitted (no new eigenvalues) give the alphas a full analysis with that fit
    rule gives, on both sides, for Linear, Conv2d (release blocks or grid) and depthwise layers."""
    opts = dict(window=32, ops=4, q=1.0, conv_rule=conv_rule, cache=False)
    base = analyze(_model(), fit="xmin_peak", **opts)
    rules = rule_table(base)
    assert list(rules["layer"]) == list(base.table["layer"])
    for fit in FITS:
        fresh = analyze(_model(), fit=fit, **opts).table
        for which in ("raw", "farms"):
            np.testing.assert_allclose(rules[rule_column(fit, which)], fresh[f"alpha_{which}"], rtol=1e-12)
        t = as_report_table(rules, fit)
        np.testing.assert_allclose(t["alpha_raw"], fresh["alpha_raw"], rtol=1e-12)


def test_blocks_are_refitted_block_by_block_not_pooled():
    rep = analyze(nn.Sequential(nn.Conv2d(16, 64, 3)), fit="xmin_mid", window=8, cache=False)
    spec = next(iter(rep.spectra.values()))
    assert spec.blocks and len(spec.block_esds) == 4  # 64 x 16 slices: 4 blocks of 16 x 16
    assert sum(b.size for b in spec.block_esds) == spec.esd_farms.size


def test_spread_is_max_minus_min_over_rules():
    rep = analyze(_model(), window=32, ops=4, cache=False)
    rules = rule_table(rep)
    a = rules[[rule_column(f, "raw") for f in FITS]].to_numpy(float)
    np.testing.assert_allclose(spread(rules, "raw"), a.max(1) - a.min(1))


def test_rule_table_from_a_cached_report_equals_the_fresh_one(tmp_path, monkeypatch):
    monkeypatch.setenv("FARMS_VIZ_CACHE", str(tmp_path))
    first = rule_table(analyze(_model(), window=32, ops=4))
    second = analyze(_model(), window=32, ops=4)  # every layer read back from the disk cache
    assert any(s.blocks and s.block_esds for s in second.spectra.values())
    cols = [c for c in first.columns if c.startswith("alpha_")]
    np.testing.assert_array_equal(rule_table(second)[cols].to_numpy(float), first[cols].to_numpy(float))
