"""End-to-end: the compare page in Debian's Chromium: two checkpoints, then the digits training series."""

from __future__ import annotations

import pytest
from browserkit import LOAD_TIMEOUT_MS, VIEWPORT, idle, no_exceptions, shots

pytestmark = pytest.mark.browser

#: this page computes two checkpoints per run: wait longer for Streamlit to settle
IDLE_MS = 120_000


def test_compare_page_pair_then_digits_series(browser, streamlit_server, artifacts):
    ctx = browser.new_context(viewport=VIEWPORT)
    page = ctx.new_page()
    try:
        # digits-mlp@1 vs digits-mlp@30 from the URL, small FARMS settings
        page.goto(streamlit_server + "/Compare?ops=3&a=digits-mlp@1&b=digits-mlp@30")
        page.get_by_text("Layers matched").wait_for(timeout=LOAD_TIMEOUT_MS)
        page.locator(".js-plotly-plot").nth(2).wait_for(timeout=LOAD_TIMEOUT_MS)
        idle(page, IDLE_MS)
        no_exceptions(page)
        assert page.get_by_text("3 of 3").count() >= 1
        assert page.locator(".js-plotly-plot").count() == 3
        shots(page, "compare-pair", artifacts, IDLE_MS)

        page.get_by_text("Series (a training run)").click()
        page.get_by_text("Mean α per checkpoint (table)").wait_for(timeout=LOAD_TIMEOUT_MS)
        page.locator(".js-plotly-plot").nth(2).wait_for(timeout=LOAD_TIMEOUT_MS)
        idle(page, IDLE_MS)
        no_exceptions(page)
        assert page.get_by_text("digits-mlp: 5 checkpoints, 3 layers").count() == 1
        # the lines figure has a panel per layer and both raw and FARMS traces
        text = page.locator(".js-plotly-plot").nth(1).inner_text()
        assert "fc1" in text and "fc3" in text and "α FARMS" in text
        shots(page, "compare-series-mlp", artifacts, IDLE_MS)

        page.locator('[data-testid="stSelectbox"]', has_text="Digits model").click()
        page.get_by_role("option", name="digits-cnn").click()
        page.get_by_text("digits-cnn: 5 checkpoints, 4 layers").wait_for(timeout=LOAD_TIMEOUT_MS)
        idle(page, IDLE_MS)
        no_exceptions(page)
        assert "conv2" in page.locator(".js-plotly-plot").nth(2).inner_text()
        shots(page, "compare-series-cnn", artifacts, IDLE_MS)
    finally:
        ctx.close()


def test_compare_a_file_and_its_prefixed_copy_then_nothing_in_common(browser, streamlit_server, artifacts, tmp_path):
    import torch
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(5)
    w = {"fc1.weight": torch.randn(64, 32, generator=g), "fc2.weight": torch.randn(32, 32, generator=g)}
    save_file(w, str(tmp_path / "plain.safetensors"))
    save_file({"model." + k: v for k, v in w.items()}, str(tmp_path / "wrapped.safetensors"))
    ctx = browser.new_context(viewport=VIEWPORT)
    page = ctx.new_page()
    try:
        # paths in the link: allowed outside served mode
        page.goto(f"{streamlit_server}/Compare?ops=3&a={tmp_path}/plain.safetensors&b={tmp_path}/wrapped.safetensors")
        page.get_by_text("Layers matched").wait_for(timeout=LOAD_TIMEOUT_MS)
        page.locator(".js-plotly-plot").nth(2).wait_for(timeout=LOAD_TIMEOUT_MS)
        idle(page, IDLE_MS)
        no_exceptions(page)
        assert page.get_by_text("2 of 2 layers matched after stripping the prefix 'model.' from B.").count() == 1
        assert page.get_by_text("All 2 layers match").count() == 1
        shots(page, "compare-prefixed-copy", artifacts, IDLE_MS)

        page.goto(f"{streamlit_server}/Compare?ops=3&a=minilm&b=mobilenet-v2")
        sentence = ("minilm and mobilenet-v2 have no layer in common (names and shapes differ): nothing to compare.")
        page.get_by_text(sentence).wait_for(timeout=LOAD_TIMEOUT_MS)
        idle(page, IDLE_MS)
        no_exceptions(page)
        assert page.locator(".js-plotly-plot").count() == 0
        assert page.get_by_text("Layers matched").count() == 0 and page.get_by_text("nan").count() == 0
        shots(page, "compare-nothing-in-common", artifacts, IDLE_MS)
    finally:
        ctx.close()
