"""End-to-end (issue 18): the layer browser draws the randomized ESD and marks the trap of a matrix
with one planted huge entry; the overview's metric switch redraws with the chosen metric."""

from __future__ import annotations

import pytest
from browserkit import LOAD_TIMEOUT_MS, VIEWPORT, idle, no_exceptions, shots

pytestmark = pytest.mark.browser

IDLE_MS = 120_000


def _legend(page, i: int) -> str:
    return page.locator(".js-plotly-plot").nth(i).inner_text().replace("\n", " ")


def test_layer_browser_shows_randomized_esd_and_the_planted_trap(browser, streamlit_server, artifacts, tmp_path):
    import torch
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(0)
    w = torch.randn(128, 256, generator=g) / 16
    w[10, 20] = 30.0  # one entry ~500 sigma: one eigenvalue of the shuffled matrix far beyond its bulk
    save_file({"trap.weight": w.contiguous()}, str(tmp_path / "trap.safetensors"))
    ctx = browser.new_context(viewport=VIEWPORT)
    page = ctx.new_page()
    try:
        page.goto(f"{streamlit_server}/Layer_browser?ops=3&model={tmp_path}/trap.safetensors")
        page.get_by_text("ringed on |W|").wait_for(timeout=LOAD_TIMEOUT_MS)
        page.locator(".js-plotly-plot").nth(4).wait_for(timeout=LOAD_TIMEOUT_MS)
        idle(page, IDLE_MS)
        no_exceptions(page)
        raw_esd = _legend(page, 0)
        assert "randomized ESD" in raw_esd and "trap threshold" in raw_esd and "correlation traps (1)" in raw_esd
        assert "randomized ESD" in _legend(page, 2)  # the FARMS column too
        assert page.locator(".js-plotly-plot").nth(0).locator(".scatterlayer .trace .point").count() >= 1
        assert "trap entries (1)" in _legend(page, 4)
        assert page.get_by_text("The 1 entry ringed on |W| causes the raw randomized ESD's 1 correlation trap").count() == 1
        shots(page, "browser-planted-trap", artifacts, IDLE_MS)
    finally:
        ctx.close()


def test_overview_metric_switch_redraws(browser, streamlit_server, artifacts):
    ctx = browser.new_context(viewport=VIEWPORT)
    page = ctx.new_page()
    try:
        page.goto(f"{streamlit_server}/Model_overview?ops=3&model=digits-mlp@30")
        page.locator(".js-plotly-plot").nth(1).wait_for(timeout=LOAD_TIMEOUT_MS)
        idle(page, IDLE_MS)
        assert "α raw" in _legend(page, 0)
        page.locator('[data-testid="stSelectbox"]', has_text="Metric").click()
        page.get_by_role("option", name="log_norm", exact=True).click()
        page.get_by_text("log_norm per layer").wait_for(timeout=LOAD_TIMEOUT_MS)
        idle(page, IDLE_MS)
        no_exceptions(page)
        assert "log_norm raw" in _legend(page, 0) and "α raw" not in _legend(page, 0)
        assert "log_norm FARMS" in _legend(page, 1)
        assert "metric=log_norm" in page.url
        shots(page, "overview-metric-log-norm", artifacts, IDLE_MS)
    finally:
        ctx.close()
