"""Layer browser: one layer's ESD, power-law tail and FARMS windows, raw | FARMS."""

import streamlit as st

from farms_viz.analyses.diagnosis import farms_what, grid_caption, layer_numbers
from farms_viz.analyses.exports import esd_table, layer_numbers_table
from farms_viz.analyses.rules import rule_column
from farms_viz.analyses.traps import LayerTraps, searchable, trap_sentence
from farms_viz.app import links
from farms_viz.app import state as app
from farms_viz.app.downloads import chart, download, safe_name, settings_tag, settings_words
from farms_viz.figures import layer as figures
from farms_viz.figures import style
from farms_viz.io.tables import table_bytes
from farms_viz.pipeline.schema import SIDES
from farms_viz.settings import FITS

#: a half-width chart's context line holds this many characters at 1024 px (12 px text, ~260 px)
HALF_CHARS = 36

app.page_setup("Layer browser")
report = app.load_report()
if report is None:
    st.stop()

st.title(f"Layer browser — {app.current_spec().title}")
names = app.spectra_layers(report)
if not names:
    st.info(f"No spectra for this source: {report.name} carries "
            + ("published metrics only. " if report.metrics_only else "no analysable layers. ")
            + "Use the model overview instead.")
    st.page_link(app.OVERVIEW, label="Model overview", icon=":material/bar_chart:")
    st.stop()
links.restore("browser")  # ?logx=0, checked like every link value


@st.fragment
def layer_view() -> None:
    """The layer view; Previous/Next/select rerun only this fragment (fast switching)."""
    layer = app.current_layer(report)
    st.session_state["layer"] = layer
    st.session_state["w_layer"] = layer
    i = names.index(layer)

    def _step(delta: int) -> None:
        app.set_layer(names[(names.index(st.session_state["layer"]) + delta) % len(names)])

    c_sel, c_prev, c_next, c_scale = st.columns([4.4, 1.3, 1.3, 2.2], vertical_alignment="bottom")
    c_sel.selectbox(f"Layer ({i + 1} of {len(names)}; type to search)", names, key="w_layer",
                    on_change=lambda: app.set_layer(st.session_state["w_layer"]))
    c_prev.button("◀ Prev", key="prev", on_click=_step, args=(-1,), width="stretch")
    c_next.button("Next ▶", key="next", on_click=_step, args=(1,), width="stretch")
    log_x = app.persisted(c_scale.toggle, "log-x ESD", "br_logx", help="Histogram on a logarithmic λ axis.")
    app.set_layer(layer)
    links.sync("browser")

    spec = report.spectra[layer]
    row = report.table.set_index("layer").loc[layer]
    st.caption(f"**{layer}** · {spec.kind} · {spec.rows} × {spec.cols} "
               f"(aspect ratio {max(spec.rows, spec.cols) / min(spec.rows, spec.cols):.2f})"
               + (f" · status: {row['status']}" if row.get("status", "ok") != "ok" else ""))

    n_slices = int(row.get("n_slices", 1) or 1)
    rules = app.rules_cached(report).set_index("layer")
    # the figures' context lines and file names: the model and the layer, the settings
    lines = (f"{report.name} · {layer}", settings_words(report.settings))
    tag = settings_tag(report.settings)
    rule_alphas = ({which: {r: rules.at[layer, rule_column(r, which)] for r in FITS} for which in SIDES}
                   if layer in rules.index else {})
    cols = st.columns(2, gap="large")
    for col, which in zip(cols, SIDES):
        side = spec.side(which)
        esd, fit, mp = side.esd, side.fit, side.mp
        name = figures.NAMES[which]
        with col:
            color = figures.COLORS[which]
            what = (f"the whole {spec.rows} × {spec.cols} matrix" if which == "raw"
                    else farms_what(spec, n_slices))
            st.markdown(f"<h3 style='color:{color};margin-bottom:0'>{name}</h3>"
                        f"<span style='color:{style.MUTED}'>{what}</span>", unsafe_allow_html=True)
            chart(st, figures.esd_histogram(esd, mp, which, log_x=log_x, title=f"ESD {name} · Marchenko–Pastur",
                                            rand=spec.rand(which)),
                  f"esd_{which}", lines, (report.name, layer, f"esd-{which}", tag), chars=HALF_CHARS)
            chart(st, figures.tail_ccdf(esd, fit, which, title=f"Power-law tail {name} (CCDF)"), f"tail_{which}",
                  lines, (report.name, layer, f"tail-{which}", tag), chars=HALF_CHARS)
            nums = layer_numbers(spec, row, which, rule_alphas.get(which))
            st.markdown(
                f"<div style='border-top:4px solid {color};padding-top:4px'></div>\n\n"
                "| | |\n|---|---|\n" + "\n".join(f"| {k} | **{v}** |" for k, v in nums.items()),
                unsafe_allow_html=True)
    stem = safe_name(report.name, layer)
    d1, d2, _ = st.columns([1, 1, 2])
    download(d1, "Numbers CSV", table_bytes(layer_numbers_table(spec, row, rule_alphas), "csv"),
             safe_name(stem, "numbers"), ".csv", "br_numbers", icon=":material/download:", width="stretch",
             help="The two cards above (raw and FARMS) as one table: quantity, raw, farms.")
    download(d2, "Eigenvalues CSV", lambda: table_bytes(esd_table(spec), "csv"), safe_name(stem, "eigenvalues"),
             ".csv", "br_eigenvalues", icon=":material/download:", width="stretch",
             help="Every eigenvalue of both ESDs (columns side, eigenvalue): the raw matrix's, then the FARMS "
                  "windows' pooled, as the fits saw them.")

    st.subheader("Where FARMS looks")
    # a wide matrix's picture is short: it gets the page's width (a third of a 1024 px window drew it
    # 45 px high) and its caption goes below; a tall one keeps the caption beside it
    g1, g2 = (st.container(), st.container()) if spec.cols > spec.rows else st.columns([3, 2])
    rand = spec.rand("raw")
    found = None
    if rand is not None and rand.n_traps > 0:
        skipped = searchable(spec.rows, spec.cols, n_slices)
        found = app.trap_entries_cached(report, layer) if skipped is None else LayerTraps(None, skipped)
    trap_pos = found.entries.positions if found is not None and found.entries is not None else None
    chart(g1, figures.window_grid_figure(spec.thumbnail, spec.grid, blocks=spec.blocks, traps=trap_pos), "grid",
          lines, (report.name, layer, "farms-windows", tag))
    g2.markdown(grid_caption(spec.grid, n_slices, spec.blocks))
    g2.markdown(trap_sentence(None if rand is None else rand.n_traps, found))
    g2.caption(f"The heatmap is |W| averaged over blocks (at most {style.DISPLAY_SIDE} × {style.DISPLAY_SIDE}). "
               + ("Each rectangle is one block (shown for the first kernel position); the FARMS ESD above "
                  "pools all blocks for the picture, the α is the mean of the block fits." if spec.blocks else
                  "Each rectangle is one FARMS window; the eigenvalues of all windows are pooled into the "
                  "FARMS ESD.")
               + f" At most {figures.MAX_OUTLINES} are outlined, each in its own colour: the legend draws all of them; "
               f"hover a dot for a {'block' if spec.blocks else 'window'}'s rows and columns.")


layer_view()
