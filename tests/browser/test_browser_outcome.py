"""End-to-end in Chromium: "Apply and measure" on the Allocations page prunes a digits model and draws the
outcome chart (a line per allocation with its band), screenshots in test-artifacts/."""

from __future__ import annotations

import pytest
from browserkit import LOAD_TIMEOUT_MS, VIEWPORT, idle, no_exceptions, shots

pytestmark = pytest.mark.browser


def test_apply_and_measure_on_digits_draws_the_outcome_chart(browser, streamlit_server, artifacts):
    ctx = browser.new_context(viewport=VIEWPORT)
    page = ctx.new_page()
    try:
        page.goto(streamlit_server + "/Allocations?model=digits-cnn@30&ops=3")
        run = page.get_by_role("button", name="Apply and measure")
        run.wait_for(timeout=LOAD_TIMEOUT_MS)
        page.locator(".js-plotly-plot").first.wait_for(timeout=LOAD_TIMEOUT_MS)  # the allocation chart
        idle(page)
        no_exceptions(page)
        before = page.locator(".js-plotly-plot").count()
        run.scroll_into_view_if_needed()
        run.click()
        chart = page.locator(".js-plotly-plot", has_text="digits-cnn pruned with Wanda")
        chart.wait_for(timeout=240_000)
        idle(page, timeout=240_000)
        no_exceptions(page)
        assert page.locator(".js-plotly-plot").count() == before + 1
        legend = chart.locator(".legend").text_content()
        for name in ("uniform", "AlphaPruning, raw α", "AlphaPruning, FARMS α", "dense"):
            assert name in legend
        # three drawn lines (one per allocation) and their three bands, each a non-empty path
        paths = chart.locator(".scatterlayer .trace .js-line").evaluate_all("els => els.map(e => e.getAttribute('d'))")
        fills = chart.locator(".scatterlayer .trace .js-fill").evaluate_all("els => els.map(e => e.getAttribute('d'))")
        assert len([d for d in paths if d and d.startswith("M")]) >= 3, paths
        assert len([d for d in fills if d and d.startswith("M")]) == 3, fills
        assert page.get_by_text("farms-viz measure digits-cnn --method wanda").count() >= 1
        chart.scroll_into_view_if_needed()
        shots(page, "outcome-digits", artifacts)
    finally:
        ctx.close()
