"""End-to-end: the compare page in Debian's Chromium: two checkpoints, then the digits training series."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser

LOAD_TIMEOUT_MS = 240_000
SIZES = {"wide": (1600, 1000), "laptop": (1280, 800)}


def _idle(page, timeout=120_000):
    page.wait_for_function(
        """() => !document.querySelector('[data-testid="stStatusWidget"]')
               && document.querySelectorAll('[data-stale="true"]').length === 0""",
        timeout=timeout,
    )


def _no_exceptions(page):
    assert page.locator('[data-testid="stException"]').count() == 0, page.locator(
        '[data-testid="stException"]').first.inner_text()


def _shots(page, name: str, artifacts):
    """Whole-page screenshots at two widths (Streamlit scrolls an inner element, so the viewport is
    stretched to the content's height first)."""
    for size, (w, h) in SIZES.items():
        page.set_viewport_size({"width": w, "height": h})
        page.wait_for_timeout(800)
        _idle(page)
        full = page.evaluate("""() => Math.max(...[...document.querySelectorAll(
            '[data-testid="stMain"], [data-testid="stAppViewContainer"], section.main')].map(e => e.scrollHeight), 0)""")
        page.set_viewport_size({"width": w, "height": max(h, min(int(full), 6000))})
        page.wait_for_timeout(800)
        _idle(page)
        page.screenshot(path=str(artifacts / f"{name}-{size}.png"), full_page=True)
    page.set_viewport_size({"width": 1600, "height": 1000})


def test_compare_page_pair_then_digits_series(browser, streamlit_server, artifacts):
    ctx = browser.new_context(viewport={"width": 1600, "height": 1000})
    page = ctx.new_page()
    try:
        # digits-mlp@1 vs digits-mlp@30 from the URL, small FARMS settings
        page.goto(streamlit_server + "/Compare?ops=3&a=digits-mlp@1&b=digits-mlp@30")
        page.get_by_text("Layers matched").wait_for(timeout=LOAD_TIMEOUT_MS)
        page.locator(".js-plotly-plot").nth(2).wait_for(timeout=LOAD_TIMEOUT_MS)
        _idle(page)
        _no_exceptions(page)
        assert page.get_by_text("3 of 3").count() >= 1
        assert page.locator(".js-plotly-plot").count() == 3
        _shots(page, "compare-pair", artifacts)

        page.get_by_text("Series (a training run)").click()
        page.get_by_text("Mean α per checkpoint (table)").wait_for(timeout=LOAD_TIMEOUT_MS)
        page.locator(".js-plotly-plot").nth(2).wait_for(timeout=LOAD_TIMEOUT_MS)
        _idle(page)
        _no_exceptions(page)
        assert page.get_by_text("digits-mlp: 5 checkpoints, 3 layers").count() == 1
        # the lines figure has a panel per layer and both raw and FARMS traces
        text = page.locator(".js-plotly-plot").nth(1).inner_text()
        assert "fc1" in text and "fc3" in text and "α FARMS" in text
        _shots(page, "compare-series-mlp", artifacts)

        page.locator('[data-testid="stSelectbox"]', has_text="Digits model").click()
        page.get_by_role("option", name="digits-cnn").click()
        page.get_by_text("digits-cnn: 5 checkpoints, 4 layers").wait_for(timeout=LOAD_TIMEOUT_MS)
        _idle(page)
        _no_exceptions(page)
        assert "conv2" in page.locator(".js-plotly-plot").nth(2).inner_text()
        _shots(page, "compare-series-cnn", artifacts)
    finally:
        ctx.close()
