"""Pages that read at 1024 px (a projector) and 1440 px: no chart text cut off at a figure's edge,
the diagnosis table whole at 1440, and the sidebar naming the main page Home on a page URL opened
first."""

from __future__ import annotations

import pytest
from browserkit import LOAD_TIMEOUT_MS, idle, no_exceptions, shot

pytestmark = pytest.mark.browser

#: small FARMS settings keep the first analysis short
QUERY = "?ops=3"

#: chart texts (titles, axis titles, legend entries) whose box leaves their figure: plotly never
#: wraps them, it cuts them off at the figure's edge (a hidden legend entry has no box)
CLIPPED = """() => {
  const out = [];
  for (const plot of document.querySelectorAll('.js-plotly-plot')) {
    const box = plot.querySelector('.main-svg').getBoundingClientRect();
    for (const el of plot.querySelectorAll('.gtitle, .g-gtitle text, .xtitle, .ytitle, .legendtext')) {
      const r = el.getBoundingClientRect();
      if (r.width === 0 || r.height === 0) continue;
      if (r.left < box.left - 1 || r.right > box.right + 1 || r.top < box.top - 1) out.push(el.textContent);
    }
  }
  return out;
}"""


def _open(page, url: str, width: int) -> None:
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(url)
    page.locator(".js-plotly-plot").first.wait_for(timeout=LOAD_TIMEOUT_MS)
    idle(page, LOAD_TIMEOUT_MS)
    page.wait_for_timeout(1500)  # plotly lays out after the script run ends
    idle(page)
    no_exceptions(page)


@pytest.fixture(scope="module")
def page(browser, fresh_server):
    ctx = browser.new_context(viewport={"width": 1024, "height": 900})
    p = ctx.new_page()
    yield p
    ctx.close()


def test_a_page_url_opened_first_lists_home_not_app(page, fresh_server):
    _open(page, fresh_server + "/Layer_browser" + QUERY, 1024)  # the server's very first request
    nav = [t.strip() for t in page.locator('[data-testid="stSidebarNav"] a').all_inner_texts()]
    assert nav == ["Home", "Model overview", "Layer browser", "Allocations", "Compare", "Lab"], nav
    assert page.locator("h1").first.inner_text().startswith("Layer browser")


@pytest.mark.parametrize("width", [1024, 1440])
@pytest.mark.parametrize("path", ["", "Layer_browser", "Model_overview"])
def test_no_chart_text_is_cut_off(page, fresh_server, artifacts, path, width):
    _open(page, f"{fresh_server}/{path}{QUERY}", width)
    assert page.evaluate(CLIPPED) == []
    shot(page, artifacts / f"layout-{path or 'home'}-{width}.png", width, 900)


def test_the_diagnosis_table_fits_at_1440(page, fresh_server):
    _open(page, f"{fresh_server}/Model_overview{QUERY}", 1440)
    table = page.locator('[data-testid="stDataFrame"]').last
    table.scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    widths = table.evaluate("""t => { const s = t.querySelector('.dvn-scroller');
                                      return [s.scrollWidth, s.clientWidth]; }""")
    assert widths[0] <= widths[1] + 1, widths  # no column out of view
