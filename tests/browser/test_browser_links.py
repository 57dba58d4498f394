"""Links in a real browser: a URL with non-default state reopens that view in a fresh context, absurd
links are a sentence and never a traceback, and the full-table download holds the CLI's columns."""

from __future__ import annotations

import pytest
from browserkit import VIEWPORT, idle, no_exceptions
from playwright.sync_api import expect

from farms_viz.cli import main as cli

pytestmark = pytest.mark.browser

SMALL = "digits-mlp@30"
#: a first load may analyse a model (cold server)
LOAD_MS = 180_000


def _open(browser, url: str):
    """``url`` in a fresh context (no session, no cookies): what a colleague sees who gets the link."""
    ctx = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    page = ctx.new_page()
    page.goto(url)
    return ctx, page


def _settle(page, locator) -> None:
    locator.wait_for(timeout=LOAD_MS)
    idle(page, LOAD_MS)
    no_exceptions(page)


def _warnings(page) -> list[str]:
    return page.locator('[data-testid="stAlertContentWarning"]').all_inner_texts()


def test_allocations_link_reopens_tempbalance_with_sqrt(browser, streamlit_server):
    ctx, page = _open(browser, f"{streamlit_server}/Allocations?model={SMALL}&ops=3&scheme=tempbalance&map=sqrt")
    _settle(page, page.get_by_text("lr range, FARMS α"))
    expect(page.get_by_role("radio", name="TempBalance — learning rate per layer")).to_be_checked()
    assert page.get_by_text("--scheme tempbalance --lr 0.001 --map sqrt").count() == 1
    assert "scheme=tempbalance" in page.url and "map=sqrt" in page.url
    assert _warnings(page) == []
    ctx.close()


def test_compare_link_reopens_the_series_view(browser, streamlit_server):
    ctx, page = _open(browser, f"{streamlit_server}/Compare?ops=3&view=series&series=cnn")
    _settle(page, page.get_by_text("digits-cnn: 5 checkpoints"))
    expect(page.get_by_role("radio", name="Series (a training run)")).to_be_checked()
    page.locator(".js-plotly-plot").nth(2).wait_for(timeout=LOAD_MS)
    assert page.locator(".js-plotly-plot").count() == 3
    assert "view=series" in page.url and "series=cnn" in page.url
    ctx.close()


def test_browser_link_reopens_the_layer_on_a_linear_axis(browser, streamlit_server):
    ctx, page = _open(browser, f"{streamlit_server}/Layer_browser?model={SMALL}&ops=3&layer=fc2&logx=0")
    _settle(page, page.locator(".js-plotly-plot").first)
    expect(page.get_by_role("switch", name="log-x ESD")).not_to_be_checked()
    assert page.get_by_text("fc2 · linear").count() >= 1
    assert "logx=0" in page.url and "layer=fc2" in page.url
    axis = page.locator(".js-plotly-plot").first.evaluate("e => e.layout.xaxis.type")
    assert axis == "linear"
    ctx.close()


def test_overview_link_reopens_the_filter(browser, streamlit_server):
    ctx, page = _open(browser, f"{streamlit_server}/Model_overview?model={SMALL}&ops=3&filter=fc%5B12%5D")
    box = page.get_by_role("textbox", name="Filter layers by name (regular expression)")
    _settle(page, box)
    expect(box).to_have_value("fc[12]", timeout=LOAD_MS)
    expect(page.get_by_text("2 of 3 layers.", exact=False).first).to_be_visible()
    assert "filter=fc%5B12%5D" in page.url
    ctx.close()


def test_lab_sweep_link_reopens_the_sweep(browser, streamlit_server):
    ctx, page = _open(browser, f"{streamlit_server}/Lab?view=sweep&size=16&seeds=2")
    _settle(page, page.get_by_text("per doubling of Q"))
    page.locator(".js-plotly-plot").first.wait_for(timeout=LOAD_MS)
    assert page.locator(".js-plotly-plot").count() == 1
    assert page.get_by_role("button", name="Sweep CSV").count() == 1
    assert "view=sweep" in page.url and "size=16" in page.url and "seeds=2" in page.url
    ctx.close()


@pytest.mark.parametrize("path,words", [
    ("/?model=%00", "control characters"),
    ("/?model=" + "x" * 3000, "3000 characters long"),
    (f"/?model={SMALL}&ops=200&window=1", "ops=200 is above the largest allowed value, so 50 is used"),
    (f"/Allocations?model={SMALL}&ops=3&sparsity=5&scheme=nope", "sparsity=5 is above the largest allowed value"),
    (f"/Layer_browser?model={SMALL}&ops=3&logx=maybe", "logx=maybe is not 1, 0, true or false"),
    (f"/Model_overview?model={SMALL}&ops=3&filter=(a)%5C1", "is not a regular expression the filter accepts"),
])
def test_absurd_links_are_a_sentence_not_a_traceback(browser, streamlit_server, path, words):
    ctx, page = _open(browser, streamlit_server + path)
    _settle(page, page.locator('[data-testid="stAlertContentWarning"]').first)
    assert any(words in w for w in _warnings(page)), _warnings(page)
    page.locator(".js-plotly-plot").first.wait_for(timeout=LOAD_MS)  # and the page goes on to draw
    idle(page, LOAD_MS)
    no_exceptions(page)
    assert "Traceback" not in page.locator("body").inner_text()
    ctx.close()


def test_full_table_download_has_the_cli_columns(browser, streamlit_server, tmp_path):
    ctx, page = _open(browser, f"{streamlit_server}/Model_overview?model={SMALL}&ops=3")
    button = page.get_by_role("button", name="Full table CSV")
    _settle(page, button)
    with page.expect_download() as info:
        button.click()
    download = info.value
    assert download.suggested_filename == "digits-mlp_30-farms-table.csv"
    got = tmp_path / "app.csv"
    download.save_as(got)
    assert cli(["analyze", SMALL, "--ops", "3", "--quiet", "--out", str(tmp_path / "cli.csv")]) == 0
    app_lines = got.read_text().splitlines()
    cli_lines = (tmp_path / "cli.csv").read_text().splitlines()
    assert app_lines[0] == cli_lines[0] and len(app_lines) == len(cli_lines) == 4
    idle(page)
    with page.expect_download() as info:
        page.get_by_role("button", name="HTML report").click()
    assert info.value.suggested_filename == "digits-mlp_30-farms-report.html"
    no_exceptions(page)
    ctx.close()
