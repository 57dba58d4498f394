"""End-to-end: the real app in Debian's Chromium (Playwright): load, navigate, switch layers, screenshot."""

from __future__ import annotations

import statistics
import time

import pytest
from browserkit import LOAD_TIMEOUT_MS, VIEWPORT, idle, no_exceptions, shots

pytestmark = pytest.mark.browser

#: small FARMS settings (3 x 3 windows) keep the first analysis short; still the default model
QUERY = "?ops=3"


def _nav(page, label: str):
    page.locator('[data-testid="stSidebarNav"] a', has_text=label).first.click()


def _layer_box(page):
    return page.locator('[data-testid="stSelectbox"]', has_text="Layer (").first


@pytest.fixture(scope="module")
def app_page(browser, streamlit_server):
    ctx = browser.new_context(viewport=VIEWPORT)
    page = ctx.new_page()
    page.goto(streamlit_server + "/" + QUERY)
    page.get_by_text("Layers FARMS can change", exact=True).wait_for(timeout=LOAD_TIMEOUT_MS)
    idle(page)
    yield page
    ctx.close()


def test_home_shows_summary_for_default_model(app_page, artifacts):
    page = app_page
    no_exceptions(page)
    assert page.get_by_text("Diagnosis flips").count() == 1
    assert "minilm" in page.locator("h3").all_inner_texts()[0] or page.get_by_text("minilm").count()
    assert page.locator('[data-testid="stMetric"]').count() == 4
    nav = [t.strip() for t in page.locator('[data-testid="stSidebarNav"] a').all_inner_texts()]
    assert nav == ["Home", "Model overview", "Layer browser", "Allocations", "Compare", "Lab"], nav
    shots(page, "home", artifacts)


def test_overview_renders_charts(app_page, artifacts):
    page = app_page
    _nav(page, "Model overview")
    # the page's last heading: Home's two charts are still there for a moment after the click
    page.get_by_text("Diagnosis raw vs FARMS").wait_for(timeout=120_000)
    page.locator(".js-plotly-plot").nth(1).wait_for(timeout=60_000)
    idle(page)
    no_exceptions(page)
    assert page.locator(".js-plotly-plot").count() >= 2
    assert page.get_by_text("Diagnosis raw vs FARMS").count() == 1
    shots(page, "overview", artifacts)


def test_layer_browser_next_is_fast(app_page, artifacts):
    page = app_page
    _nav(page, "Layer browser")
    _layer_box(page).wait_for(timeout=60_000)
    page.locator(".js-plotly-plot").nth(4).wait_for(timeout=60_000)
    idle(page)
    no_exceptions(page)
    assert page.locator(".js-plotly-plot").count() == 5
    times = []
    for _ in range(5):
        before = _layer_box(page).inner_text()
        t0 = time.perf_counter()
        page.get_by_role("button", name="Next ▶").click()
        page.wait_for_function(
            """(before) => {
                 const box = [...document.querySelectorAll('[data-testid="stSelectbox"]')]
                     .find(e => e.innerText.includes('Layer ('));
                 return box && box.innerText !== before
                     && !document.querySelector('[data-testid="stStatusWidget"]')
                     && document.querySelectorAll('[data-stale="true"]').length === 0
                     && document.querySelectorAll('.js-plotly-plot').length === 5;
               }""", arg=before, timeout=30_000)
        times.append(time.perf_counter() - t0)
    no_exceptions(page)
    median = statistics.median(times)
    (artifacts / "layer-switch-seconds.txt").write_text(
        "\n".join(f"{t:.3f}" for t in times) + f"\nmedian {median:.3f}\n")
    assert "layer=" in page.url
    shots(page, "layer-browser", artifacts)
    # end to end in headless software-rendered Chromium: server rerun of the fragment + 5 Plotly redraws.
    # A guard against a switch that recomputes the model (tens of seconds), not a speed target: those
    # live in benchmarks/ (the median is written above; 1.1-1.6 s on 2 loaded cores). A tight limit
    # here failed on a loaded machine (1.57 s) with nothing wrong.
    assert median < 6.0, f"layer switch took {median:.2f} s (median of {times})"
