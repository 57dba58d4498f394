"""The HTML report opened from disk in Chromium, offline: every plot renders, nothing fails."""

from __future__ import annotations

import torch

from farms_viz import analyze
from farms_viz.figures.html_report import MAX_ESD_LAYERS, report_html

#: a layer name that would run script if it reached the page unescaped
HOSTILE = 'x<img src=q onerror="window.pwned=1"><script>window.pwned=2</script>'


def _report():
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    shapes = [(96, 32), (64, 64), (128, 16), (48, 40), (80, 20)]
    names = [HOSTILE, "b", "c", "d", "e"]
    return analyze({f"{n}.weight": torch.randn(*s, generator=g) for n, s in zip(names, shapes)},
                   window=16, ops=3, cache=False)


def _open(browser, path, width):
    ctx = browser.new_context(viewport={"width": width, "height": 900}, offline=True)
    page = ctx.new_page()
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(path.as_uri())
    return ctx, page, errors


def test_report_file_renders_every_plot_offline(browser, tmp_path, artifacts):
    report = _report()
    path = tmp_path / "report.html"
    path.write_text(report_html(report), encoding="utf-8")
    n_figures = 2 + 2 * MAX_ESD_LAYERS
    for width in (1024, 1440):
        ctx, page, errors = _open(browser, path, width)
        page.wait_for_function(f"document.querySelectorAll('.js-plotly-plot').length === {n_figures}",
                               timeout=60_000)
        # drawn, not only created: one bar per layer and side in the alpha plot, an SVG in every plot
        assert page.locator("#fig-alpha-bars .bars .point").count() == 2 * len(report.table)
        assert page.locator(".js-plotly-plot .main-svg").count() >= n_figures
        assert errors == []
        assert page.evaluate("window.pwned") is None  # the hostile name ran nothing
        assert HOSTILE in page.locator("#table td.layer").first.inner_text()
        # readable at this width: the page does not scroll sideways (wide tables scroll in their box)
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        page.screenshot(path=str(artifacts / f"html-report-{width}.png"), full_page=True)
        ctx.close()
