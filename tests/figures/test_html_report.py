"""The one-file HTML report (figures/html_report.py) and ``farms-viz report``."""

from __future__ import annotations

import base64
import html
import re
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest
import torch

from farms_viz import analyze
from farms_viz.cli import main
from farms_viz.figures import html_report
from farms_viz.figures.html_report import MAX_ESD_LAYERS, OVERVIEW_IDS, html_table, moving_layers, report_html
from farms_viz.io.tables import table_bytes
from farms_viz.pipeline.analyze import Report
from farms_viz.settings import Settings

#: layer names a model file may hold: markup, quotes, an entity, a formula
HOSTILE = ["x<script>alert(1)</script>", "y<img src=q onerror=\"window.pwned=1\">", "z'\"&amp;", "=cmd|'/C calc'!A0"]


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("FARMS_VIZ_CACHE", str(tmp_path / "cache"))


def weights() -> dict:
    g = torch.Generator().manual_seed(0)
    shapes = [(96, 32), (64, 64), (128, 16), (48, 40), (80, 20), (40, 40)]
    names = HOSTILE + ["plain.a", "plain.b"]
    return {f"{n}.weight": torch.randn(*s, generator=g) for n, s in zip(names, shapes)}


@pytest.fixture(scope="module")
def report():
    torch.set_num_threads(1)
    return analyze(weights(), window=16, ops=3, cache=False)


@pytest.fixture(scope="module")
def page(report):
    return report_html(report, created=datetime(2025, 1, 2, 3, 4, tzinfo=timezone.utc))


def test_plotly_js_is_inlined_exactly_once_and_nothing_is_fetched(page):
    assert page.count("* plotly.js v") == 1
    assert not re.search(r"<script[^>]*\bsrc=", page)  # no external script
    assert not re.search(r"<link[^>]*\bhref=", page)  # no external stylesheet or font


def test_every_figure_has_its_div_and_one_plot_call(report, page):
    ids = [*OVERVIEW_IDS] + [f"fig-esd-{k}-{w}" for k in range(len(moving_layers(report))) for w in ("raw", "farms")]
    assert len(ids) == 2 + 2 * MAX_ESD_LAYERS
    for i in ids:
        assert page.count(f'id="{i}"') == 1, i
    assert page.count("Plotly.newPlot(") == len(ids)
    # plotly's config script, the library, then one script per figure: nothing else runs
    assert page.count("<script") == len(ids) + 2


def test_title_holds_model_date_version_and_settings(report, page):
    assert f"<h1>{html.escape(report.name)}</h1>" in page
    assert "2025-01-02 03:04 UTC" in page
    assert f"farms-viz {html_report.version()}" in page and html_report.version() != "unknown"
    assert html.escape(report.settings.describe()) in page and report.settings.window == 16


def test_every_column_and_row_of_the_table_is_shown_and_downloadable(report, page):
    section = page[page.index('<section id="table">'):]
    heads = re.findall(r"<th>(.*?)</th>", section)
    assert heads == [html.escape(c) for c in report.table.columns]
    assert section.count("<tr") == len(report.table) + 1
    csv = re.search(r'href="data:text/csv;base64,([^"]+)"', section).group(1)
    assert base64.b64decode(csv) == table_bytes(report.table, "csv")


def test_layer_names_are_escaped_everywhere(report, page):
    for name in HOSTILE:
        assert name in set(report.table["layer"])
        if any(ch in name for ch in "<>&\"'"):
            assert name not in page, name
    assert "<img" not in page and "alert(1)</script>" not in page
    esc = html.escape(HOSTILE[0]).replace(".", ".<wbr>").replace("_", "_<wbr>")
    assert esc in page  # shown as text in the tables


def test_summary_and_diagnosis_match_the_table(report, page):
    from farms_viz.analyses.diagnosis import diagnosis_table, summarize

    s = summarize(report.table)
    assert f"{s.n_flipped} of {s.n_fitted}" in page
    assert f"{s.mean_raw:.2f} ± {s.std_raw:.2f}" in page
    diag = page[page.index('<section id="diagnosis">'):page.index('<section id="table">')]
    d = diagnosis_table(report.table)
    assert diag.count("<tr") == len(d) + 1
    assert diag.count('class="flipped"') == int(d["flipped"].sum())


def test_moving_layers_are_those_with_spectra_whose_alpha_moves_most():
    table = pd.DataFrame({"layer": list("abcdefg"),
                          "alpha_raw": [2.0, 3.0, 4.0, 2.0, 5.0, np.nan, 3.0],
                          "alpha_farms": [2.1, 5.0, 3.0, 2.0, 1.0, 9.0, 9.0]})
    spectra = {k: None for k in "abcdef"}  # g moves most but has no spectra; f has no raw alpha
    r = Report("m", Settings(), table, spectra)
    assert moving_layers(r) == ["e", "b", "c", "a"]  # |moves| 4, 2, 1, 0.1
    assert moving_layers(r, 2) == ["e", "b"]
    assert moving_layers(Report("m", Settings(), table, {}, metrics_only=True)) == []


def test_esd_figures_are_for_the_moving_layers(report, page):
    spec = page[page.index('<section id="spectra">'):page.index('<section id="diagnosis">')]
    layers = moving_layers(report)
    heads = re.findall(r"<h3>(.*?)</h3>", spec)
    assert heads == [html.escape(n) for n in layers]
    for n in layers:
        r = report.table.set_index("layer").loc[n]
        assert f"α FARMS {r['alpha_farms']:.3g}" in spec


def test_file_stays_small(page):
    assert len(page.encode("utf-8")) < 6e6


def test_metrics_only_report_works_without_spectra():
    r = analyze("llama-7b-published")
    page = report_html(r)
    assert "fig-esd" not in page and 'id="spectra"' not in page
    assert page.count("Plotly.newPlot(") == 2 and page.count("* plotly.js v") == 1
    assert "published metrics only" in page
    section = page[page.index('<section id="table">'):]
    assert section.count("<tr") == len(r.table) + 1 == 225
    empty = analyze("llama-7b-published", layers="no-such-layer")
    assert "0 rows" in report_html(empty)


def test_html_table_escapes_headers_and_cells_and_formats_numbers():
    t = pd.DataFrame({"<b>": ["<i>x</i>"], "n": [3], "f": [1 / 3], "gone": [np.nan], "ok": [True]})
    out = html_table(t)
    assert "<b>" not in out and "<i>" not in out and "&lt;b&gt;" in out
    assert '<td class="num">3</td>' in out and '<td class="num">0.333333</td>' in out
    assert '<td class="num">–</td>' in out and "<td>yes</td>" in out


# ---------------------------------------------------------------- farms-viz report

def _src(tmp_path) -> str:
    from safetensors.torch import save_file

    p = tmp_path / "m.safetensors"
    save_file({k: v.contiguous() for k, v in list(weights().items())[3:]}, str(p))
    return str(p)


def test_cli_report_writes_the_file_with_a_progress_bar(tmp_path, capsys):
    src, out = _src(tmp_path), tmp_path / "r.html"
    assert main(["report", src, "--out", str(out), "--window", "16", "--ops", "3", "--layers", "plain"]) == 0
    cap = capsys.readouterr()
    assert "2/2" in cap.err and "#" in cap.err and f"wrote {out}" in cap.out
    page = out.read_text(encoding="utf-8")
    assert "<h1>m.safetensors</h1>" in page and page.count("* plotly.js v") == 1
    assert html.escape(Settings(window=16, ops=3).describe()) in page
    section = page[page.index('<section id="table">'):]
    assert section.count("<tr") == 3  # the header and the two 'plain' layers


@pytest.mark.parametrize("bad,why", [("r.csv", "must end in .html"), ("d.html", "is a directory"),
                                     ("missing/r.html", "does not exist"), ("m.safetensors", "must end in .html")])
def test_cli_report_refuses_a_bad_out_before_analysing(tmp_path, capsys, monkeypatch, bad, why):
    import farms_viz.cli as cli

    monkeypatch.setattr(cli, "analyze", lambda *a, **k: pytest.fail("the analysis ran before --out was checked"))
    src = _src(tmp_path)
    (tmp_path / "d.html").mkdir()
    assert main(["report", src, "--out", str(tmp_path / bad), "--quiet"]) == 2
    assert why in capsys.readouterr().err


def test_cli_report_refuses_to_overwrite_its_input(tmp_path, capsys):
    p = tmp_path / "model.html"
    p.write_text("<html></html>")
    assert main(["report", str(p), "--out", str(p), "--quiet"]) == 2
    assert "is the input" in capsys.readouterr().err
    assert p.read_text() == "<html></html>"
