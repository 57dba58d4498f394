"""End-to-end in Chromium: the Allocations page, the LLaMA-7B example, screenshots in test-artifacts/."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser

LOAD_TIMEOUT_MS = 240_000
SIZES = {"wide": (1600, 1000), "laptop": (1280, 800)}


def _idle(page, timeout=60_000):
    page.wait_for_function(
        """() => !document.querySelector('[data-testid="stStatusWidget"]')
               && document.querySelectorAll('[data-stale="true"]').length === 0""",
        timeout=timeout,
    )


def _shot(page, path, width, min_height):
    """The whole page: Streamlit scrolls inside its main section, so grow the viewport to its height."""
    page.set_viewport_size({"width": width, "height": min_height})
    page.wait_for_timeout(800)
    _idle(page)
    height = page.evaluate("""() => { const m = document.querySelector('[data-testid="stMain"]')
                                              || document.querySelector('section.main');
                                     return m ? m.scrollHeight : document.body.scrollHeight; }""")
    page.set_viewport_size({"width": width, "height": max(min_height, min(int(height) + 40, 8000))})
    page.wait_for_timeout(800)
    _idle(page)
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size({"width": width, "height": min_height})


def _no_exceptions(page):
    assert page.locator('[data-testid="stException"]').count() == 0, page.locator(
        '[data-testid="stException"]').first.inner_text()


def test_allocations_page_llama_example(browser, streamlit_server, artifacts):
    ctx = browser.new_context(viewport={"width": 1600, "height": 1000})
    page = ctx.new_page()
    try:
        page.goto(streamlit_server + "/Allocations?ops=3")
        page.get_by_role("button", name="Show the LLaMA-7B example").wait_for(timeout=LOAD_TIMEOUT_MS)
        page.locator(".js-plotly-plot").nth(3).wait_for(timeout=60_000)
        _idle(page)
        _no_exceptions(page)
        _shot(page, artifacts / "allocations-minilm-wide.png", 1600, 1000)
        page.get_by_role("button", name="Show the LLaMA-7B example").click()
        page.get_by_text("Allocations — llama-7b-published").wait_for(timeout=60_000)
        page.locator(".js-plotly-plot").nth(3).wait_for(timeout=60_000)
        _idle(page)
        _no_exceptions(page)
        assert page.locator(".js-plotly-plot").count() == 4
        assert page.get_by_text("Attention vs MLP matrices per block").count() >= 1
        assert "model=llama-7b-published" in page.url
        for size, (w, h) in SIZES.items():
            _shot(page, artifacts / f"allocations-llama-{size}.png", w, h)
    finally:
        ctx.close()
