"""Model overview: alpha per layer (raw vs FARMS), the aspect-ratio bias, the diagnosis table."""

import streamlit as st

from farms_viz.analyses.diagnosis import diagnosis_table, filter_layers, layer_kinds
from farms_viz.app import state as app
from farms_viz.errors import FarmsError
from farms_viz.figures import overview
from farms_viz.io.tables import to_csv

app.page_setup("Model overview")
report = app.load_report()
if report is None:
    st.stop()

st.title(f"Model overview — {app.current_spec().title}")

f1, f2 = st.columns([2, 1])
pattern = f1.text_input("Filter layers by name (regular expression)", key="ov_pattern",
                        placeholder=r"e.g. attention  or  layer\.[0-2]\.  or  ^features",
                        help="Regular expression matched anywhere in the layer name (RE2: Python syntax "
                             "without back-references or look-around; always fast).")
kinds = layer_kinds(report.table)
chosen = f2.multiselect("Layer kinds", kinds, key="ov_kinds", placeholder="all kinds") if kinds else []
try:
    table = filter_layers(report.table, pattern, chosen)
except FarmsError as e:
    st.error(str(e))
    table = report.table
if table.empty:
    st.warning("No layer matches the filter.")
    st.stop()

st.caption(f"{len(table)} of {len(report.table)} layers. "
           + ("Click a bar to open that layer in the layer browser." if not report.metrics_only
              else "Published metrics only: no spectra, so bars do not open the layer browser."))
event = st.plotly_chart(overview.alpha_bars(table), key="ov_bars", on_select="rerun",
                        selection_mode="points", theme=None, config={"displaylogo": False})
clicked = app.selected_layer(event)
if clicked and not report.metrics_only and clicked in report.spectra:
    app.open_layer(clicked)

st.plotly_chart(overview.alpha_vs_aspect(table), key="ov_scatter", theme=None, config={"displaylogo": False})
st.caption("Raw α drifts with the aspect ratio of the matrix; FARMS measures every layer at one fixed "
           "aspect ratio, so its trend line should be flat. Raw points sit just left of each aspect ratio, "
           "FARMS points just right, and a grey line joins the two values of a layer. Where one FARMS window "
           "covers a whole matrix (square layers smaller than the window), raw and FARMS are the same number.")

st.subheader("Diagnosis raw vs FARMS")
diag = diagnosis_table(table)
n_flip = int(diag["flipped"].sum())
st.markdown(f"**{n_flip}** layer{'s' if n_flip != 1 else ''} change diagnosis between raw and FARMS "
            "(highlighted, listed first). Click a column header to sort.")


def _highlight(row):
    return ["background-color: #FFF1DB" if row["flipped"] else ""] * len(row)


st.dataframe(
    diag.style.apply(_highlight, axis=1).format({"aspect_ratio": "{:.2f}", "alpha_raw": "{:.2f}",
                                                 "alpha_farms": "{:.2f}"}, na_rep="–"),
    hide_index=True, width="stretch", key="ov_table",
    column_config={
        "layer": st.column_config.TextColumn("layer", width="large"),
        "aspect_ratio": st.column_config.NumberColumn("aspect ratio"),
        "alpha_raw": st.column_config.NumberColumn("α raw"),
        "alpha_farms": st.column_config.NumberColumn("α FARMS"),
        "label_raw": "diagnosis raw", "label_farms": "diagnosis FARMS",
        "flipped": st.column_config.CheckboxColumn("flipped"),
    },
)
st.download_button("Download diagnosis CSV", to_csv(diag).encode(), key="ov_csv",
                   file_name=f"{report.name}-farms-diagnosis.csv", mime="text/csv")
