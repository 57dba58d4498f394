"""The lab in Debian's Chromium (Playwright): a preset and the bias sweep in one click each, screenshots."""

from __future__ import annotations

import time

import pytest
from browserkit import VIEWPORT, idle, no_exceptions, shots

pytestmark = pytest.mark.browser


def _metric(page, label: str) -> str:
    m = page.locator('[data-testid="stMetric"]', has_text=label).first
    return m.locator('[data-testid="stMetricValue"]').inner_text()


@pytest.fixture(scope="module")
def lab_page(browser, streamlit_server):
    ctx = browser.new_context(viewport=VIEWPORT)
    page = ctx.new_page()
    page.goto(streamlit_server + "/Lab")
    page.get_by_text("α FARMS").first.wait_for(timeout=120_000)
    page.locator(".js-plotly-plot").nth(4).wait_for(timeout=60_000)
    idle(page)
    yield page
    ctx.close()


def test_lab_opens_from_the_sidebar_and_shows_five_plots(lab_page, artifacts):
    page = lab_page
    no_exceptions(page)
    assert page.locator('[data-testid="stSidebarNav"] a', has_text="Lab").count() == 1
    assert page.locator(".js-plotly-plot").count() == 5
    assert _metric(page, "Matrix") == "1000 × 1000"
    assert page.locator(".katex").count() >= 2  # the formulas render
    shots(page, "lab-default", artifacts)


def test_preset_click_updates_plots_and_url(lab_page, artifacts):
    page = lab_page
    t0 = time.perf_counter()
    page.get_by_role("button", name="Pure noise, tall matrix").click()
    page.wait_for_function(
        """() => [...document.querySelectorAll('[data-testid="stMetric"]')]
                 .some(e => e.innerText.includes('2000 × 250'))""", timeout=30_000)
    idle(page)
    elapsed = time.perf_counter() - t0
    (artifacts / "lab-preset-seconds.txt").write_text(f"{elapsed:.3f}\n")
    no_exceptions(page)
    assert "rows=2000" in page.url and "cols=250" in page.url
    assert float(_metric(page, "α raw")) > float(_metric(page, "α FARMS")) + 1.5
    shots(page, "lab-tall-noise", artifacts)
    page.get_by_role("button", name="Heavy-tailed").click()
    page.wait_for_function("() => location.search.includes('dist=pareto')", timeout=30_000)
    idle(page)
    no_exceptions(page)
    shots(page, "lab-heavy-tailed", artifacts)
    page.get_by_role("button", name="Planted signal").click()
    page.wait_for_function("() => location.search.includes('dist=planted')", timeout=30_000)
    idle(page)
    no_exceptions(page)
    assert page.get_by_text("spikes above λ+: 3").count() >= 1
    shots(page, "lab-planted", artifacts)
    assert elapsed < 5, f"preset took {elapsed:.2f} s"


def test_bias_sweep_in_one_click(lab_page, artifacts, streamlit_server):
    page = lab_page
    page.get_by_role("button", name="Bias sweep").click()
    page.get_by_text("per doubling of Q").wait_for(timeout=60_000)
    idle(page)
    no_exceptions(page)
    assert "view=sweep" in page.url
    assert page.locator(".js-plotly-plot").count() == 1
    assert page.get_by_text("α raw:").count() >= 1
    shots(page, "lab-sweep", artifacts)
    # the shared link opens the same view for a student
    page.goto(page.url)
    page.get_by_text("per doubling of Q").wait_for(timeout=60_000)
    idle(page)
    no_exceptions(page)
