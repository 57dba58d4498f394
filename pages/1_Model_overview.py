"""Model overview: alpha per layer (raw vs FARMS), the aspect-ratio bias, the diagnosis table."""

import streamlit as st

from farms_viz.analyses.diagnosis import (
    BANDS_NOTE,
    CNN_BANDS_NOTE,
    blocks_mask,
    diagnosis_table,
    filter_layers,
    is_conv_net,
    layer_kinds,
    rough_fits,
)
from farms_viz.analyses.rules import as_report_table
from farms_viz.analyses.summary import metric_trend_sentence, metrics_with_values
from farms_viz.analyses.trend import trend_pair, trend_rows, trend_sentence
from farms_viz.app import links
from farms_viz.app import state as app
from farms_viz.app.bounds import FILTER_CHARS, OVERVIEW_CHOICES
from farms_viz.app.downloads import chart, download, safe_name, settings_tag, settings_words, table_downloads
from farms_viz.errors import FarmsError
from farms_viz.figures import overview
from farms_viz.figures.html_report import report_html
from farms_viz.io.tables import to_csv
from farms_viz.settings import FITS

#: more layers than this, in numbered blocks: the overview opens on the by-block view
LONG_MODEL = 80

app.page_setup("Model overview")
report = app.load_report()
if report is None:
    st.stop()

st.title(f"Model overview — {app.current_spec().title}")

kinds = layer_kinds(report.table)
metrics = metrics_with_values(report.table, OVERVIEW_CHOICES["metric"])
# ?filter=...&kinds=...&view=bars&metric=log_norm, checked like the widgets
links.restore("overview", choices={"kinds": kinds, "metric": metrics or ["alpha"]})
f1, f2, f3 = st.columns([2, 1, 1])
pattern = app.persisted(f1.text_input, "Filter layers by name (regular expression)", "ov_pattern",
                        max_chars=FILTER_CHARS, placeholder=r"e.g. attention  or  layer\.[0-2]\.  or  ^features",
                        help="Regular expression matched anywhere in the layer name (RE2: Python syntax "
                             "without back-references or look-around; always fast).")
chosen = app.persisted(f2.multiselect, "Layer kinds", "ov_kinds", options=kinds,
                       placeholder="all kinds") if kinds else []
metric = app.persisted(f3.selectbox, "Metric", "ov_metric", options=metrics or ["alpha"],
                       help="What the per-layer chart and the aspect-ratio plot show, raw and FARMS: α or any of "
                            "WeightWatcher's metrics (log_norm, alpha_weighted, entropy, num_traps ...; see the "
                            "README). The α bands are drawn for α only.")
try:
    table = filter_layers(report.table, pattern, chosen)
except FarmsError as e:
    st.error(str(e))
    table = report.table
if table.empty:
    st.warning("No layer matches the filter.")
    st.stop()

blocks = blocks_mask(table, report.settings)
rough = rough_fits(table, blocks)
by_block = overview.block_layout(table) is not None and len(table) > LONG_MODEL
view = "bars"
if by_block:
    view = app.persisted(st.segmented_control, "View", "ov_view", options=["blocks", "bars"],
                         on_change=links.keep_choice, args=("ov_view",),
                         format_func={"blocks": "by block, one panel per matrix role",
                                      "bars": "every layer as a bar"}.get) or "blocks"
links.sync("overview")
# the figures' context lines and file names: the model, the filter, the settings
lines = (report.name + (f" · {len(table)} of {len(report.table)} layers" if len(table) < len(report.table) else ""),
         settings_words(report.settings))
stem = safe_name(report.name, settings_tag(report.settings))
st.caption(f"{len(table)} of {len(report.table)} layers. "
           + ("Click a bar to open that layer in the layer browser. " if not report.metrics_only
              else "Published metrics only: no spectra, so bars do not open the layer browser. ")
           + ("Hatched bars: fits on fewer than 50 eigenvalues or a tail under 10. " + BANDS_NOTE
              + (" " + CNN_BANDS_NOTE if is_conv_net(table) else "") if metric == "alpha" else
              f"Showing WeightWatcher's {metric}, raw and FARMS (a FARMS value of a per-matrix metric is empty)."))
slug = metric.replace("_", "-")
if view == "blocks":
    event = chart(st, overview.alpha_by_block(table, metric=metric), "ov_blocks", lines, (stem, f"{slug}-by-block"),
                  on_select="rerun", selection_mode="points")
else:
    event = chart(st, overview.alpha_bars(table, rough=rough if metric == "alpha" else None, metric=metric),
                  "ov_bars", lines, (stem, f"{slug}-per-layer"), on_select="rerun", selection_mode="points")
clicked = app.selected_layer(event)
if clicked and not report.metrics_only and clicked in report.spectra:
    app.open_layer(clicked)

pair = trend_pair(table, f"{metric}_raw", f"{metric}_farms")
chart(st, overview.alpha_vs_aspect(table, rough=rough if metric == "alpha" else None, trend=pair, metric=metric),
      "ov_scatter", lines, (stem, f"{slug}-vs-aspect-ratio"))
st.caption(metric_trend_sentence(trend_sentence(pair), metric) + " Raw points sit just left of each aspect ratio, FARMS points just right, and a "
           "grey line joins the two values of a layer; hollow markers are rough fits. Where one FARMS window covers "
           "a whole matrix (square layers no larger than the window), raw and FARMS are the same number.")

if report.spectra:
    st.subheader("Does the trend depend on the fit rule?")
    rules = app.rules_cached(report)
    rules = rules[rules["layer"].isin(table["layer"])]
    pairs = {rule: trend_pair(as_report_table(rules, rule)) for rule in FITS}
    r1, r2 = st.columns([3, 2], gap="medium")
    chart(r1, overview.rule_trends(pairs), "ov_rules", lines[:1], (stem, "trend-per-fit-rule"))
    r2.markdown(f"The same spectra fitted with each rule. In use: **{report.settings.fit}**. "
                + ("Under some rule FARMS changes the trend beyond its uncertainty, under others not: the rule "
                   "decides what the bias looks like." if len({p.farms_changes_trend for p in pairs.values()}) > 1
                   else "Under every rule: " + ("FARMS changes the trend." if any(p.farms_changes_trend for p in
                                                pairs.values()) else "no difference beyond the uncertainty.")))
    r2.caption("Slopes are α per 10× aspect ratio with 95% bootstrap intervals over layers; 'flat': the interval "
               "holds 0. Each rule refits the same eigenvalues (raw ESD, FARMS pooled ESD or conv blocks); no "
               "spectrum is recomputed.")
    st.dataframe(trend_rows(pairs), hide_index=True, width="stretch", key="ov_rule_table")

st.subheader("Diagnosis raw vs FARMS")
diag = diagnosis_table(table, blocks)
n_flip = int(diag["flipped"].sum())
st.markdown(f"**{n_flip}** layer{'s' if n_flip != 1 else ''} change diagnosis between raw and FARMS "
            "(highlighted, listed first). Click a column header to sort.")


def _highlight(row):
    return ["background-color: #FFF1DB" if row["flipped"] else ""] * len(row)


st.dataframe(
    diag.style.apply(_highlight, axis=1).format({"aspect_ratio": "{:.2f}", "alpha_raw": "{:.2f}",
                                                 "alpha_farms": "{:.2f}"}, na_rep="–"),
    hide_index=True, width="stretch", key="ov_table",
    # widths in px that hold their values: all ten columns fit a 1440 px window (a "large" layer
    # column pushed 'flipped' and 'trust' out of view); the layer stays pinned when it scrolls
    column_config={
        "layer": st.column_config.TextColumn("layer", width=240, pinned=True),
        "kind": st.column_config.TextColumn("kind", width=55),
        "shape": st.column_config.TextColumn("shape", width=85),
        "aspect_ratio": st.column_config.NumberColumn("aspect ratio", width=85),
        "alpha_raw": st.column_config.NumberColumn("α raw", width=55),
        "alpha_farms": st.column_config.NumberColumn("α FARMS", width=70),
        "label_raw": st.column_config.TextColumn("diagnosis raw", width=105),
        "label_farms": st.column_config.TextColumn("diagnosis FARMS", width=120),
        "flipped": st.column_config.CheckboxColumn("flipped", width=55),
        "trust": st.column_config.TextColumn("trust", help="Fits on fewer than 50 eigenvalues (per block for "
                                             "conv blocks) or a tail under 10: a rough reading."),
    },
)

st.subheader("Downloads")
d1, d2, d3 = st.columns([2, 1, 1])
table_downloads(d1, report.table, safe_name(report.name, "farms-table"), "ov_full", "Full table")
download(d2, "Diagnosis CSV", to_csv(diag).encode(), safe_name(report.name, "farms-diagnosis"), ".csv", "ov_csv",
         icon=":material/download:", width="stretch", help="The table above: the layers the filter shows.")
download(d3, "HTML report", lambda: report_html(report).encode("utf-8", "backslashreplace"),
         safe_name(report.name, "farms-report"), ".html", "ov_report", icon=":material/description:",
         width="stretch", help="One file with the tables and figures; opens in a browser without a server.")
st.caption("The full table is what `farms-viz analyze SOURCE --out FILE.csv` (or `.json`) writes with these settings, "
           "byte for byte; the report is `farms-viz report SOURCE --out FILE.html`.")
