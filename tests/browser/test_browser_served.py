"""Served mode on a real server in Chromium: a visitor's server path refused in one sentence, the job
queue visible, and a closed tab's job stopped so the next visitor's runs."""

from __future__ import annotations

import time

import pytest
from browserkit import LOAD_TIMEOUT_MS, VIEWPORT, idle, no_exceptions, shots

pytestmark = pytest.mark.browser

REFUSAL = "This server is shared (served mode), so it opens only its zoo models and uploaded files"


def _alerts(page) -> list[str]:
    return [t.strip() for t in page.locator('[data-testid="stAlert"] [data-testid="stMarkdownContainer"]')
            .all_inner_texts()]


@pytest.mark.parametrize("model", ["/etc/passwd", "/etc/shadow"])
def test_a_server_path_in_the_link_is_refused_in_one_sentence(browser, served_server, artifacts, model):
    ctx = browser.new_context(viewport=VIEWPORT)
    page = ctx.new_page()
    page.goto(f"{served_server}/?model={model}&ops=3")
    page.get_by_text("Layers FARMS can change", exact=True).wait_for(timeout=LOAD_TIMEOUT_MS)
    idle(page)
    no_exceptions(page)
    alerts = _alerts(page)
    assert len(alerts) == 1, alerts
    assert alerts[0].startswith(REFUSAL) and alerts[0].endswith("Showing minilm instead.")
    assert "passwd" not in alerts[0] and "shadow" not in alerts[0] and "text file" not in alerts[0]
    radios = page.locator('[data-testid="stRadio"]').first.inner_text()
    assert "Model zoo" in radios and "Upload" in radios and "Local path" not in radios and "hub" not in radios
    assert page.get_by_text("Ray address").count() == 0
    assert "model=minilm" in page.url  # the shared link now names what is shown
    if model == "/etc/passwd":
        shots(page, "served-refusal", artifacts)
    ctx.close()


def test_lab_link_over_the_limit_is_clamped_and_said(browser, served_server):
    ctx = browser.new_context(viewport=VIEWPORT)
    page = ctx.new_page()
    page.goto(f"{served_server}/Lab?rows=300&cols=200&per_dim=1000&q=abc")
    page.get_by_text("α FARMS").first.wait_for(timeout=120_000)
    idle(page)
    no_exceptions(page)
    alerts = [a for a in _alerts(page) if "link" in a]
    assert alerts == ["The link's per_dim=1000 is above the largest allowed value, so 15 is used."]
    assert "per_dim=15" in page.url
    ctx.close()


def test_the_queue_is_shown_and_a_closed_tab_gives_its_slot_to_the_next_visitor(browser, served_server, artifacts):
    ctx = browser.new_context(viewport=VIEWPORT)
    heavy = ctx.new_page()  # a sweep of 180 matrices: ~20 s alone on 2 cores
    heavy.goto(f"{served_server}/Lab?view=sweep&seeds=20&per_dim=15&seed=4242")
    heavy.get_by_text("Sweep: matrix").wait_for(timeout=120_000)
    light = ctx.new_page()
    light.goto(f"{served_server}/Lab?rows=321&cols=123&seed=4242")
    light.get_by_text("waiting for 1 job ahead of yours").wait_for(timeout=60_000)
    assert "one heavy job at a time" in light.get_by_text("waiting for 1 job ahead").inner_text()
    light.screenshot(path=str(artifacts / "served-queue.png"))
    t0 = time.perf_counter()
    heavy.close()  # the visitor leaves: the sweep stops at its next matrix and frees the slot
    light.locator('[data-testid="stMetric"]', has_text="321 × 123").wait_for(timeout=30_000)
    waited = time.perf_counter() - t0
    idle(light)
    no_exceptions(light)
    assert not [a for a in _alerts(light) if "waiting for" in a], _alerts(light)
    assert waited < 15, f"the next visitor waited {waited:.1f} s after the heavy tab closed"
    ctx.close()
