"""End-to-end in Chromium: the Allocations page, the LLaMA-7B example, screenshots in test-artifacts/."""

from __future__ import annotations

import pytest
from browserkit import LOAD_TIMEOUT_MS, SIZES, VIEWPORT, idle, no_exceptions, shot, shots

pytestmark = pytest.mark.browser


def test_allocations_page_llama_example(browser, streamlit_server, artifacts):
    ctx = browser.new_context(viewport=VIEWPORT)
    page = ctx.new_page()
    try:
        page.goto(streamlit_server + "/Allocations?ops=3")
        page.get_by_role("button", name="Show the LLaMA-7B example").wait_for(timeout=LOAD_TIMEOUT_MS)
        page.locator(".js-plotly-plot").nth(3).wait_for(timeout=60_000)
        idle(page)
        no_exceptions(page)
        shot(page, artifacts / "allocations-minilm-wide.png", *SIZES["wide"])
        page.get_by_role("button", name="Show the LLaMA-7B example").click()
        page.get_by_text("Allocations — llama-7b-published").wait_for(timeout=60_000)
        page.locator(".js-plotly-plot").nth(3).wait_for(timeout=60_000)
        idle(page)
        no_exceptions(page)
        assert page.locator(".js-plotly-plot").count() == 4
        assert page.get_by_text("Attention vs MLP matrices per block").count() >= 1
        assert "model=llama-7b-published" in page.url
        shots(page, "allocations-llama", artifacts)
    finally:
        ctx.close()
