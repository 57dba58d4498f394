"""Compare checkpoints: two side by side (delta alpha, scatter, ESD overlay), or a whole training run."""

import streamlit as st

from farms_viz.analyses.compare import (
    checkpoint_files,
    compare_summary,
    compare_tables,
    diagnosis_changes,
    series_long,
    series_mean,
    side_names,
    unmatched,
    zoo_series,
)
from farms_viz.app import compare as cmpst
from farms_viz.app import links
from farms_viz.app import server as appserver
from farms_viz.app import state as app
from farms_viz.app.bounds import OVERVIEW_CHOICES
from farms_viz.app.downloads import chart, download, safe_name, settings_tag, settings_words
from farms_viz.errors import FarmsError
from farms_viz.figures import compare as fc
from farms_viz.io.tables import to_csv
from farms_viz.zoo.digits import ARCHS, accuracy

app.page_setup("Compare")
settings = app.sidebar_settings()
VIEWS = {"pair": "Two checkpoints", "series": "Series (a training run)"}

st.title("Compare checkpoints")
SERIES_KINDS = ["zoo", "folder"] if "path" in app.source_kinds() else ["zoo"]  # served mode: no server folders
links.restore("compare", choices={"from": SERIES_KINDS})  # ?view=series&series=cnn, checked like every link
v1, v2 = st.columns([3, 1], vertical_alignment="bottom")
view = app.persisted(v1.radio, "View", "cmp_view", options=list(VIEWS), format_func=VIEWS.get, horizontal=True,
                     label_visibility="collapsed")
metric = app.persisted(v2.selectbox, "Metric", "cmp_metric", options=list(OVERVIEW_CHOICES["metric"]),
                       help="What the charts compare, raw and FARMS: α or one of WeightWatcher's metrics (the "
                            "diagnoses stay α's). ?metric= in the link.")
ML = "α" if metric == "alpha" else metric
st.caption(f"Settings from the sidebar, the same for every checkpoint: {cmpst.settings_text(settings)}. "
           "Changing them recomputes all of them.")


def pair_view() -> None:
    with st.container(border=True):
        ca, cb = st.columns(2, gap="large")
        with ca:
            a = cmpst.source_picker("a")
        with cb:
            b = cmpst.source_picker("b")
        match = cmpst.match_picker()
    cmpst.sync_url(a, b, match)
    appserver.show_notices()  # a refused ?a= / ?b= from the link
    if a is None or b is None:
        st.info("Give both checkpoints to compare (a path needs Enter, an upload a file).")
        return
    ra, rb = cmpst.analyze_pair(a, b, settings)
    if ra is None or rb is None:
        return
    la, lb = a.title, b.title
    lines = (f"A = {la} → B = {lb}", settings_words(settings))
    stem = safe_name(ra.name, "vs", rb.name, settings_tag(settings))
    st.subheader(f"A = {la}  →  B = {lb}")
    try:
        cmp = compare_tables(ra, rb, match=match, names=(la, lb), metric=metric)
    except FarmsError as e:  # no layer pairs up: a sentence, no charts of nothing
        st.info(str(e), icon=":material/compare_arrows:")
        return
    s = compare_summary(cmp)
    st.caption(f"{s['matching']}.")
    m = st.columns(4)
    m[0].metric("Layers matched", f"{s['matched']} of {s['layers']}",
                help="Paired as 'Match layers by' says (the line above); 'shape differs' layers are matched "
                     "but flagged.")
    m[1].metric("Changed raw · FARMS", f"{s['changed_raw']} · {s['changed_farms']}",
                help="Layers whose diagnosis (over-, well-, under-trained) differs between A and B: "
                     "with raw α, then with FARMS α.")
    m[2].metric("Mean Δα raw (B − A)", f"{s['mean_delta_raw']:+.2f}")
    m[3].metric("Mean Δα FARMS (B − A)", f"{s['mean_delta_farms']:+.2f}")
    if s["only_a"] or s["only_b"] or s["shape_differs"]:
        st.warning(f"{s['only_a']} layer(s) only in A, {s['only_b']} only in B, {s['shape_differs']} with a "
                   "different shape: see *Unmatched layers* below.")

    event = chart(st, fc.delta_bars(cmp, la, lb, title=f"Change of {ML} per layer: B − A", metric=metric), "cmp_bars",
                  lines, (stem, f"delta-{metric}"), on_select="rerun", selection_mode="points")
    st.caption(("Negative Δα: the tail of B's spectrum is heavier (HT-SR reads this as more training). "
                if metric == "alpha" else f"Δ{metric}: B's {metric} minus A's. ")
               + "Rows marked ◆ change diagnosis (by α) between A and B. Click a bar to show that layer's spectra "
                 "below.")

    c1, c2 = st.columns([1, 1], gap="large")
    chart(c1, fc.alpha_scatter(cmp, la, lb, title=f"{ML} of A vs {ML} of B, per layer", metric=metric), "cmp_scatter",
          lines, (stem, f"{metric}-a-vs-b"))
    with c2:
        st.markdown("**Diagnosis changes A → B**")
        ch = diagnosis_changes(cmp)
        if ch.empty:
            st.caption("No layer changes diagnosis, raw or FARMS.")
        else:
            # short labels and fixed widths: all three columns fit beside the scatter at 1280 px
            st.dataframe(ch.assign(**{w: [(f"{a} → {b}" if a != b else f"{a} (same)").replace("-trained", "")
                                          for a, b in zip(ch[f"label_{w}_a"], ch[f"label_{w}_b"])]
                                      for w in ("raw", "farms")})[["layer", "raw", "farms"]],
                         hide_index=True, key="cmp_changes", width="stretch",
                         column_config={"layer": st.column_config.TextColumn("layer", width=204),
                                        "raw": st.column_config.TextColumn("raw A → B", width=88),
                                        "farms": st.column_config.TextColumn("FARMS A → B", width=88)})

    st.subheader("One layer: spectra of A and B")
    names = side_names(cmp)  # a row's layer in A and in B (B's name may differ)
    layers = [n for n, (na, nb) in names.items() if na in ra.spectra or nb in rb.spectra]
    if not layers:
        st.info("No spectra to overlay: a side carries published metrics only.")
    else:
        clicked = app.selected_layer(event)
        if clicked in layers and clicked != st.session_state.get("cmp_last_click"):
            st.session_state["cmp_last_click"] = clicked
            st.session_state["cmp_layer"] = clicked
        if st.session_state.get("cmp_layer") not in layers:
            changed = cmp.loc[cmp["changed_raw"] | cmp["changed_farms"], "layer"]
            first = [n for n in changed if n in layers]
            st.session_state["cmp_layer"] = first[0] if first else layers[0]
        layer = app.persisted(st.selectbox, f"Layer ({len(layers)}; type to search)", "cmp_layer", options=layers)
        name_a, name_b = names[layer]
        spec_a, spec_b = ra.spectra.get(name_a), rb.spectra.get(name_b)
        row = cmp.set_index("layer").loc[layer]
        in_b = f" (in B: {name_b})" if name_b and name_b != layer else ""
        st.caption(f"**{layer}**{in_b} · A {row['shape_a'] or '—'} · B {row['shape_b'] or '—'} · "
                   f"status: {row['status']}. A dashed / hollow, B solid / filled.")
        chart(st, fc.esd_overlay(spec_a, spec_b, la, lb, title=f"ESDs of A and B: {layer}"), "cmp_overlay",
              lines, (stem, layer, "esd"))

    st.subheader("Unmatched layers")
    um = unmatched(cmp)
    if um.empty:
        st.success(f"All {len(cmp)} layers match, with the same shape and no layer status on either side.")
    else:
        st.dataframe(um[["layer", "layer_b", "status", "shape_a", "shape_b", "alpha_farms_a", "alpha_farms_b"]],
                     hide_index=True, key="cmp_unmatched", width="stretch")
    with st.expander("The whole comparison table"):
        st.dataframe(cmp, hide_index=True, key="cmp_table", width="stretch")
    download(st, "Download comparison CSV", to_csv(cmp).encode(), safe_name(ra.name, "vs", rb.name, "farms-compare"),
             ".csv", "cmp_csv")


def series_view() -> None:
    kinds = SERIES_KINDS
    with st.container(border=True):
        c1, c2 = st.columns([1, 2], vertical_alignment="bottom")
        with c1:
            kind = app.persisted(st.radio, "Checkpoints from", "cmp_series_kind", options=kinds,
                                 format_func={"zoo": "Zoo: digits training run",
                                              "folder": "Folder of checkpoints"}.get)
        with c2:
            if kind == "zoo":
                arch = app.persisted(st.selectbox, "Digits model", "cmp_series_arch", options=list(ARCHS),
                                     format_func={"mlp": "digits-mlp (3 Linear layers) at epochs 0, 1, 3, 10, 30",
                                                  "cnn": "digits-cnn (2 Conv2d + 2 Linear) at epochs 0, 1, 3, 10, 30"}.get)
                items = [(label, app.SourceSpec("zoo", name)) for label, name in zoo_series(arch)]
            else:
                folder = app.persisted(st.text_input, "Folder", "cmp_series_folder",
                                       placeholder="/runs/my-run  (checkpoint-500/, step_1000.safetensors, …)",
                                       help="One checkpoint per file or subfolder; sorted by the step number in "
                                            "the name. Press Enter to analyse.")
                if not folder.strip():
                    st.info("Give a folder of checkpoints.")
                    return
                try:
                    items = [(label, app.SourceSpec("path", str(p))) for label, p in checkpoint_files(folder.strip())]
                except FarmsError as e:
                    st.error(str(e))
                    return
    reports = cmpst.analyse_series(items, settings)
    if not reports:
        return
    long = series_long(reports, metric)
    mean = series_mean(long, metric)
    title = "digits-" + arch if kind == "zoo" else folder.strip()
    st.subheader(f"{title}: {len(reports)} checkpoints, {long['layer'].nunique()} layers")
    if kind == "zoo":
        acc = (accuracy() or {}).get("test_accuracy", {}).get(arch, {})
        if acc:
            st.caption("Test accuracy: " + ", ".join(f"epoch {e} **{v:.3f}**" for e, v in acc.items()))
    lines = (f"{title}: {len(reports)} checkpoints", settings_words(settings))
    stem = safe_name(title, settings_tag(settings))
    chart(st, fc.series_mean_figure(mean, title=f"Mean {ML} over layers across training", metric=metric), "series_mean",
          lines, (stem, f"mean-{metric}"))
    chart(st, fc.series_lines(long, title=f"{ML} per layer across training", metric=metric), "series_lines", lines,
          (stem, "per-layer"))
    chart(st, fc.series_heatmap(long, title=f"{ML} per layer (rows) and checkpoint (columns)", metric=metric),
          "series_heatmap", lines, (stem, "heatmap"))
    with st.expander(f"Mean {ML} per checkpoint (table)", expanded=True):
        st.dataframe(mean.drop(columns="step_index"), hide_index=True, key="series_table",
                     column_config={c: st.column_config.NumberColumn(c, format="%.2f" if metric == "alpha" else "%.4g")
                                    for c in ("mean_raw", "std_raw", "mean_farms", "std_farms")})
    download(st, "Download series CSV (long: a row per layer and checkpoint)", to_csv(long).encode(),
             safe_name(title, "farms-series"), ".csv", "series_csv")


if view == "pair":
    pair_view()
else:
    series_view()
links.sync("compare")
