"""Issue 16 in a browser, on the default `make run` state (minilm, llm preset): Home shows the
picture and says how many layers FARMS can change; the layer browser opens where FARMS moves
alpha most; the numbers card lists each fit rule's alpha; no caption claims a flat trend that its
interval excludes."""

from __future__ import annotations

import re

import pytest
from browserkit import LOAD_TIMEOUT_MS, VIEWPORT, idle, no_exceptions, shots

from farms_viz import analyze
from farms_viz.analyses.story import most_moved_layer
from farms_viz.settings import FITS

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def page(browser, streamlit_server):
    ctx = browser.new_context(viewport=VIEWPORT)
    p = ctx.new_page()
    p.goto(streamlit_server + "/")
    p.get_by_text("Layers FARMS can change", exact=True).wait_for(timeout=LOAD_TIMEOUT_MS)
    idle(p)
    yield p
    ctx.close()


def _flat_claims_agree_with_their_numbers(text: str) -> int:
    """Every 'flat within its uncertainty, +b (95% CI lo to hi)' has lo <= 0 <= hi; every
    'rises/falls by b ... (95% CI lo to hi)' has 0 outside. Returns how many claims were checked."""
    n = 0
    for lo, hi in re.findall(r"flat within its uncertainty, [+-]\d+\.\d+ \(95% CI ([+-]\d+\.\d+) to ([+-]\d+\.\d+)\)", text):
        assert float(lo) <= 0 <= float(hi), (lo, hi)
        n += 1
    for lo, hi in re.findall(r"(?:rises|falls) by \d+\.\d+ per 10× aspect ratio \(95% CI ([+-]\d+\.\d+) to ([+-]\d+\.\d+)\)", text):
        assert not float(lo) <= 0 <= float(hi), (lo, hi)
        n += 1
    assert "should be flat" not in text
    return n


def test_home_shows_two_charts_and_how_many_layers_farms_can_change(page, artifacts):
    no_exceptions(page)
    page.locator(".js-plotly-plot").nth(1).wait_for(timeout=60_000)
    assert page.locator(".js-plotly-plot").count() >= 2
    body = page.locator('[data-testid="stMain"]').inner_text()
    assert "FARMS can change 12 of 37 layers" in body
    assert "25 are square and within one window: raw = FARMS by construction" in body
    assert page.get_by_role("button", name="Refit with xmin_mid").count() == 1
    assert _flat_claims_agree_with_their_numbers(body) >= 2
    shots(page, "story-home", artifacts)


def test_overview_captions_state_what_the_slopes_say(page, artifacts):
    page.locator('[data-testid="stSidebarNav"] a', has_text="Model overview").first.click()
    page.get_by_text("Each rule refits the same eigenvalues", exact=False).wait_for(timeout=120_000)
    idle(page)
    no_exceptions(page)
    body = page.locator('[data-testid="stMain"]').inner_text()
    assert _flat_claims_agree_with_their_numbers(body) >= 2  # raw and FARMS in the scatter's caption
    shots(page, "story-overview", artifacts)


def test_layer_browser_opens_on_the_most_moved_layer_with_every_rule(page, artifacts):
    page.locator('[data-testid="stSidebarNav"] a', has_text="Layer browser").first.click()
    box = page.locator('[data-testid="stSelectbox"]', has_text="Layer (").first
    box.wait_for(timeout=120_000)
    idle(page)
    no_exceptions(page)
    rep = analyze("minilm")
    want = most_moved_layer(rep.table)
    body = page.locator('[data-testid="stMain"]').inner_text()
    assert f"{want} · linear · 384 × 1536" in body and f"layer={want}" in page.url
    for rule in FITS:
        assert body.count(f"α by {rule}") == 2  # raw and FARMS cards
    assert "α by xmin_peak (in use)" in body
    shots(page, "story-browser", artifacts)
