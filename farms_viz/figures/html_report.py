"""A model's report as one self-contained HTML file: opens from disk, without a server or network.

Pure: a :class:`~farms_viz.pipeline.analyze.Report` in, the HTML text out. The file holds the
title (model, date, farms-viz version, settings), the summary, the model overview's figures,
the spectra of the layers whose alpha moves most between raw and FARMS, the diagnosis table and
every column of the per-layer table (with the CSV the CLI writes, as a download link). plotly.js
is inlined once, in the first figure (about 4.8 MB of the file); every text from the model
(layer names, the model name) is HTML-escaped, and plotly's figure JSON escapes ``<`` itself.
"""

from __future__ import annotations

import base64
import html
import math
from datetime import datetime
from importlib import metadata

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from farms_viz.analyses.diagnosis import BANDS, NO_FIT, diagnosis_table, summarize
from farms_viz.figures.layer import esd_histogram
from farms_viz.figures.overview import alpha_bars, alpha_vs_aspect
from farms_viz.figures.style import FARMS_COLOR, INK, MUTED, NAMES, RAW_COLOR
from farms_viz.io.tables import table_bytes

#: At most this many layers get their ESD figures (two each, raw and FARMS): a few tens of KB
#: per figure, so the file stays near plotly.js's 4.8 MB.
MAX_ESD_LAYERS = 4
#: The page's width limits: readable from a 1024 px laptop to a 1440 px screen.
MAX_WIDTH_PX = 1440
#: plotly's figure options in the report: no logo, redrawn when the window changes width.
PLOT_CONFIG = {"displaylogo": False, "responsive": True}
#: The div id of each overview figure (tests and links find the figures by these).
OVERVIEW_IDS = ("fig-alpha-bars", "fig-alpha-vs-aspect")

CSS = f"""
*{{box-sizing:border-box}}
body{{margin:0;background:#F5F7FA;color:#1F2933;
  font:15px/1.5 Inter,'Source Sans Pro','DejaVu Sans',Arial,sans-serif}}
main{{max-width:{MAX_WIDTH_PX}px;margin:0 auto;padding:24px 32px 48px}}
h1{{font-size:26px;margin:0 0 4px;word-break:break-all}}
h2{{font-size:20px;margin:0 0 12px;border-bottom:1px solid #CBD2D9;padding-bottom:6px}}
h3{{font-size:16px;margin:16px 0 6px;word-break:break-all}}
section{{background:white;border:1px solid #E4E7EB;border-radius:8px;padding:20px 24px;margin:18px 0}}
.meta,.note{{color:{MUTED};font-size:14px}}
.cards{{display:grid;grid-template-columns:repeat(auto-fit,minmax(200px,1fr));gap:12px;margin:8px 0 12px}}
.card{{border:1px solid #E4E7EB;border-radius:6px;padding:10px 14px}}
.card .k{{color:{MUTED};font-size:13px}} .card .v{{font-size:22px;font-weight:600}}
.raw{{color:{RAW_COLOR}}} .farms{{color:{FARMS_COLOR}}}
.pair{{display:grid;grid-template-columns:repeat(2,minmax(0,1fr));gap:12px}}
@media (max-width:900px){{.pair{{grid-template-columns:minmax(0,1fr)}}}}
.plot{{width:100%;min-width:0}}
.scroll{{overflow:auto;max-height:70vh;border:1px solid #E4E7EB;border-radius:6px}}
table{{border-collapse:collapse;font-size:13px;width:100%}}
th,td{{padding:4px 10px;border-bottom:1px solid #EEF1F4;text-align:left;white-space:nowrap}}
th{{position:sticky;top:0;background:#F0F3F7;z-index:1;color:{INK}}}
td.num{{text-align:right;font-variant-numeric:tabular-nums}}
tr:nth-child(even) td{{background:#FAFBFC}}
tr.flipped td{{background:#FFF6E5}}
td.layer{{white-space:normal;overflow-wrap:anywhere;min-width:14em;max-width:30em;position:sticky;left:0;background:white;z-index:1}}
th:first-child{{position:sticky;left:0;z-index:2}}
a.download{{display:inline-block;margin:0 12px 10px 0;padding:5px 12px;border:1px solid {FARMS_COLOR};
  border-radius:5px;color:{FARMS_COLOR};text-decoration:none;font-size:14px}}
footer{{color:{MUTED};font-size:13px;margin-top:24px}}
""" + "".join(f".band-{i}{{background:{color}}}" for i, (_, _, _, color) in enumerate(BANDS))


def esc(text) -> str:
    """Text for HTML: ``& < > " '`` escaped (a layer name can hold anything)."""
    return html.escape(str(text), quote=True)


def version() -> str:
    try:
        return metadata.version("farms-viz")
    except metadata.PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


def _fmt(x, digits: int = 6) -> str:
    """A table cell: ``digits`` significant digits for floats, whole numbers as such, – when missing."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else ""
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    if isinstance(x, (float, np.floating)):
        xf = float(x)
        if not math.isfinite(xf):
            return str(xf)
        return str(int(xf)) if xf.is_integer() and abs(xf) < 1e15 else f"{xf:.{digits}g}"
    return str(x)


def html_table(table: pd.DataFrame, digits: int = 6, row_class=None) -> str:
    """``table`` as an escaped HTML table; numbers right-aligned, ``row_class(i)`` an optional class per row."""
    numeric = [pd.api.types.is_numeric_dtype(table[c]) and not pd.api.types.is_bool_dtype(table[c])
               for c in table.columns]
    head = "".join(f"<th>{esc(c)}</th>" for c in table.columns)
    rows = []
    for i, values in enumerate(table.itertuples(index=False, name=None)):
        cells = []
        for col, value, num in zip(table.columns, values, numeric):
            cls = "num" if num else ("layer" if col == "layer" else "")
            text = esc(_fmt(value, digits))
            if cls == "layer":  # a line may break after each dot or underscore of a long name
                text = text.replace(".", ".<wbr>").replace("_", "_<wbr>")
            cells.append(f"<td class=\"{cls}\">{text}</td>" if cls else f"<td>{text}</td>")
        cls = row_class(i) if row_class else ""
        rows.append(f"<tr class=\"{cls}\">" + "".join(cells) + "</tr>" if cls else "<tr>" + "".join(cells) + "</tr>")
    return f"<div class=\"scroll\"><table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"


def _figure(fig: go.Figure, div_id: str, first: bool) -> str:
    return fig.to_html(full_html=False, include_plotlyjs=first, div_id=div_id, config=PLOT_CONFIG,
                       default_width="100%", default_height=f"{int(fig.layout.height or 450)}px")


def moving_layers(report, n: int = MAX_ESD_LAYERS) -> list[str]:
    """The (at most ``n``) layers with spectra whose alpha moves most between raw and FARMS,
    largest |alpha_farms - alpha_raw| first, model order among equals."""
    t = report.table
    if not report.spectra or not len(t):
        return []
    move = (t["alpha_farms"].astype(float) - t["alpha_raw"].astype(float)).abs()
    ok = t["layer"].isin(list(report.spectra)) & np.isfinite(move)
    order = move[ok].sort_values(ascending=False, kind="stable").index[:n]
    return [str(t.loc[i, "layer"]) for i in order]


def _summary_html(report) -> str:
    s = summarize(report.table)

    def ms(m, sd):
        return "–" if not math.isfinite(m) else f"{m:.2f} ± {sd:.2f}"

    def counts(c: dict) -> str:
        return ", ".join(f"{v} {k}" for k, v in c.items() if v) or "none"

    cards = [("Layers", f"{s.n_layers}"), ("Diagnosis flips", f"{s.n_flipped} of {s.n_fitted}"),
             ("α raw: mean ± spread", ms(s.mean_raw, s.std_raw)),
             ("α FARMS: mean ± spread", ms(s.mean_farms, s.std_farms))]
    body = "".join(f"<div class=\"card\"><div class=\"k\">{esc(k)}</div><div class=\"v\">{esc(v)}</div></div>"
                   for k, v in cards)
    status = ""
    if not report.metrics_only and "status" in report.table and len(report.table):
        bad = int((report.table["status"] != "ok").sum())
        if bad:
            status = (f"<p class=\"note\">{bad} layer{'s' if bad != 1 else ''} without a fit; "
                      "see the <code>status</code> column of the table below.</p>")
    only = ("<p class=\"note\">This source carries published metrics only (no weights): there are no spectra "
            "to show; the figures and tables use the published α.</p>" if report.metrics_only else "")
    return (f"<section id=\"summary\"><h2>Summary</h2><div class=\"cards\">{body}</div>"
            f"<p><span class=\"raw\">Raw</span>: {esc(counts(s.counts_raw))}. "
            f"<span class=\"farms\">FARMS</span>: {esc(counts(s.counts_farms))}. "
            f"α &lt; 2 over-trained, 2 – 6 well-trained, α &gt; 6 under-trained; "
            f"a flip is a layer whose label differs between raw and FARMS.</p>{status}{only}</section>")


def _esd_html(report, layers: list[str]) -> str:
    if not layers:
        return ""
    t = report.table.set_index("layer", drop=False)
    parts = ["<section id=\"spectra\"><h2>Spectra of the layers whose α moves most</h2>"
             "<p class=\"note\">The eigenvalues of WᵀW for the whole matrix (raw) and pooled over the FARMS "
             "windows, with the Marchenko–Pastur fit; the layers with the largest |α FARMS − α raw|.</p>"]
    for k, layer in enumerate(layers):
        spec, row = report.spectra[layer], t.loc[layer]
        row = row.iloc[0] if isinstance(row, pd.DataFrame) else row
        parts.append(f"<h3>{esc(layer)}</h3><p class=\"note\">{esc(spec.kind)} · {spec.rows} × {spec.cols} · "
                     f"α raw {_fmt(row['alpha_raw'], 3)} → α FARMS {_fmt(row['alpha_farms'], 3)}</p><div class=\"pair\">")
        for which in ("raw", "farms"):
            side = spec.side(which)
            fig = esd_histogram(side.esd, side.mp, which, title=f"ESD {NAMES[which]}, α = {_fmt(side.fit.alpha, 3)}")
            parts.append(f"<div class=\"plot\">{_figure(fig, f'fig-esd-{k}-{which}', False)}</div>")
        parts.append("</div>")
    return "".join(parts) + "</section>"


def _downloads(report) -> str:
    stem = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in report.name)[:80] or "report"
    csv = base64.b64encode(table_bytes(report.table, "csv")).decode("ascii")
    return (f"<a class=\"download\" download=\"{esc(stem)}.csv\" href=\"data:text/csv;base64,{csv}\">"
            "Download the table (CSV, as <code>farms-viz analyze</code> writes it)</a>")


def report_html(report, created: datetime | None = None, esd_layers: int = MAX_ESD_LAYERS) -> str:
    """The one-file HTML report of ``report``: title, summary, overview figures, the ESDs of up
    to ``esd_layers`` layers, the diagnosis table and the full table. ``created`` defaults to now."""
    created = created or datetime.now().astimezone()
    table = report.table
    diag = diagnosis_table(table) if len(table) else pd.DataFrame(columns=["layer"])
    flipped = diag["flipped"].to_numpy() if "flipped" in diag else np.zeros(len(diag), dtype=bool)
    band = {name: i for i, (_, _, name, _) in enumerate(BANDS)}
    diag_html = html_table(diag, digits=4, row_class=lambda i: "flipped" if flipped[i] else "")
    figs = [_figure(alpha_bars(table), OVERVIEW_IDS[0], True), _figure(alpha_vs_aspect(table), OVERVIEW_IDS[1], False)]
    n_bands = ", ".join(f"<span class=\"band-{i}\">&nbsp;{esc(name)}&nbsp;</span>" for name, i in band.items())
    title = f"farms-viz report: {report.name}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="farms-viz {esc(version())}">
<title>{esc(title)}</title><style>{CSS}</style></head>
<body><main>
<header><h1>{esc(report.name)}</h1>
<p class="meta">Raw vs FARMS eigenspectrum report · {esc(created.strftime('%Y-%m-%d %H:%M %Z').strip())} ·
farms-viz {esc(version())}</p>
<p class="meta">Settings: {esc(report.settings.describe())}</p></header>
{_summary_html(report)}
<section id="overview"><h2>Model overview</h2>
<p class="note">α per layer, <span class="raw">raw</span> and <span class="farms">FARMS</span>, with the HT-SR
bands ({n_bands}); then α against the matrix aspect ratio, where the raw trend is the bias FARMS removes.
Hover a bar or point for its layer.</p>
<div class="plot">{figs[0]}</div><div class="plot">{figs[1]}</div></section>
{_esd_html(report, moving_layers(report, esd_layers))}
<section id="diagnosis"><h2>Diagnosis raw vs FARMS</h2>
<p class="note">Each layer's label from α raw and α FARMS; layers whose label flips come first (highlighted),
then model order. "{esc(NO_FIT)}": no power-law fit on that side.</p>{diag_html}</section>
<section id="table"><h2>Every layer</h2>
<p class="note">All {len(table.columns)} columns of the table, {len(table)} rows; numbers to 6 significant digits
here, exact in the CSV.</p>{_downloads(report)}{html_table(table)}</section>
<footer>Raw: the eigenvalues of WᵀW of the whole weight matrix W, with a power law p(λ) ∝ λ^−α fitted to the
tail. FARMS (Fixed-Aspect-Ratio Matrix Subsampling, Hu et al., ICML 2025): the same fit on the pooled
eigenvalues of windows of one fixed shape, so α is comparable across layers of different aspect ratios.
Made by farms-viz {esc(version())}; this file needs no server and no network.</footer>
</main></body></html>
"""
