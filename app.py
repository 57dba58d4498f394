"""farms-viz home: pick a model, set the analysis, read the summary (raw vs FARMS)."""

import streamlit as st

from farms_viz.analyses.diagnosis import BANDS_NOTE, CNN_BANDS_NOTE, blocks_mask, is_conv_net, rough_fits, summarize
from farms_viz.analyses.story import story, whole_matrix_window
from farms_viz.analyses.trend import trend_sentence
from farms_viz.app import state as app
from farms_viz.errors import FarmsError
from farms_viz.figures import home as home_figures
from farms_viz.figures import overview


def _counts(c: dict) -> str:
    return ", ".join(f"{v} {k}" for k, v in c.items() if v)


def show_where_the_bias_is(report) -> None:
    """When the effect is small here: where it can be seen, each one click away."""
    with st.container(border=True):
        st.markdown("**Where the bias shows.** Each of these changes one thing:")
        b = st.columns(3)
        if report.settings.fit != "xmin_mid" and not report.metrics_only:
            b[0].button("Refit with xmin_mid", key="home_mid", on_click=app.use_setting, args=("fit", "xmin_mid"),
                        help="The median-tail rule (TempBalance's): flat on pure noise, so the aspect-ratio bias of "
                             "raw α stands out. Same spectra, only the fit changes.", width="stretch")
        if report.name != "minilm-init":
            b[1].button("Open an untrained MiniLM", key="home_init", on_click=app.use_zoo_model, args=("minilm-init",),
                        help="minilm-init: the same 37 layers freshly initialised, where raw α depends on the "
                             "shape alone.", width="stretch")
        b[2].page_link(app.LAB, label="Lab: bias sweep on noise", icon=":material/science:",
                       help="Random matrices of growing aspect ratio: raw α drifts, FARMS α stays.")


def home() -> None:
    """The home page: model picker, summary and what raw vs FARMS means."""
    app.page_setup("Home")
    st.title("farms-viz: raw vs FARMS eigenspectrum diagnosis")

    # ---------------------------------------------------------------- model picker
    current = app.current_spec()
    entries = app.zoo_entries()
    names = [n for n, _ in entries]
    summaries = dict(entries)
    kinds = app.source_kinds()  # served mode: zoo and upload only
    if st.session_state.get("pick_kind") not in (None, *kinds):
        st.session_state["pick_kind"] = "zoo"
    for key, default in (("pick_kind", current.kind if current.kind in kinds else "zoo"),
                         ("pick_zoo", current.value if current.kind == "zoo" and current.value in names else names[0]),
                         ("pick_path", current.value if current.kind == "path" else ""),
                         ("pick_hub", current.value if current.kind == "hub" else "")):
        st.session_state.setdefault(key, default)

    with st.container(border=True):
        c1, c2 = st.columns([1, 3], vertical_alignment="bottom")
        with c1:
            kind = app.persisted(st.radio, "Source", "pick_kind", options=list(kinds), format_func=kinds.get)
        requested = None
        if kind == "zoo":
            with c2:
                zoo_name = app.persisted(st.selectbox, "Model", "pick_zoo", options=names,
                                         format_func=lambda n: f"{n} — {summaries.get(n, '')}",
                                         help="Models that ship with farms-viz and work offline.")
            requested = app.SourceSpec("zoo", zoo_name)
        elif kind == "path":
            with c2:
                path = app.persisted(st.text_input, "Path on this machine", "pick_path",
                                 placeholder="/models/my-model  or  model.safetensors  or  weights.pt",
                                 help="A Hugging Face model folder, a .safetensors file or a .pt/.bin state dict. "
                                      "Press Enter to analyse.")
            if path.strip():
                requested = app.SourceSpec("path", path.strip())
        elif kind == "upload":
            limit = st.get_option("server.maxUploadSize")
            up = c2.file_uploader(f"Weights file (.safetensors, .pt, .bin; up to {limit} MB)",
                                  type=["safetensors", "pt", "pth", "bin"], key="w_pick_upload")
            if up is not None:
                try:
                    saved = app.save_upload("home", up)
                    requested = app.SourceSpec("upload", str(saved), label=up.name)
                except FarmsError as e:
                    st.error(str(e))
        else:
            with c2:
                hub = app.persisted(st.text_input, "Hugging Face model id", "pick_hub", placeholder="org/model-name",
                                help="Downloaded through the Hugging Face cache (needs network access unless cached).")
            if hub.strip():
                requested = app.SourceSpec("hub", hub.strip())

    report = app.load_report(requested)
    if report is None:
        st.info("Pick a model above to start.")
        return

    # ---------------------------------------------------------------- what FARMS changes here
    title = app.current_spec().title
    sty = story(report.table, report.settings, published=report.metrics_only)
    cov, pair = sty.coverage, sty.trend
    st.subheader(f"What FARMS changes in {title}")
    m = st.columns(4)
    m[0].metric("Layers FARMS can change", f"{cov.n_changeable} of {cov.n_layers}",
                help="Non-square layers, or layers larger than one FARMS window. In the others one window is "
                     "the whole matrix, so raw and FARMS see the same eigenvalues.")
    m[1].metric("Diagnosis flips", f"{sty.n_flipped} of {sty.n_fitted}",
                help="Layers whose label (over-, well-, under-trained) differs between raw and FARMS α.")
    for col, which in ((m[2], "raw"), (m[3], "farms")):
        sl = getattr(pair, which)
        col.metric(f"α per 10× aspect ratio, {'raw' if which == 'raw' else 'FARMS'}",
                   f"{sl.value:+.2f}" if sl.defined else "–",
                   help="Slope of α against log10(aspect ratio) over the layers, with its 95% bootstrap interval "
                        "below. Flat means the interval contains 0.")
        if sl.defined and sl.low == sl.low:
            col.caption(f"95% CI {sl.low:+.2f} to {sl.high:+.2f}")
    st.markdown("\n".join(f"- {line}" for line in sty.sentences))

    rough = rough_fits(report.table, blocks_mask(report.table, report.settings))
    c1, c2 = st.columns(2, gap="medium")
    c1.plotly_chart(overview.alpha_vs_aspect(report.table, rough=rough, trend=pair), key="home_scatter",
                    theme=None, config={"displaylogo": False})
    c2.plotly_chart(home_figures.alpha_shift(report.table, whole_matrix_window(report.table, report.settings)),
                    key="home_shift", theme=None, config={"displaylogo": False})
    st.caption(trend_sentence(pair) + " Hollow markers: fits on fewer than 50 eigenvalues or a tail under 10.")

    if is_conv_net(report.table) and st.session_state.get("s_preset") == "llm" and not report.metrics_only:
        w1, w2 = st.columns([4, 1], vertical_alignment="center")
        w1.warning("This is a conv net opened with the LLM preset. The paper analyses image classifiers with "
                   "the cnn preset (xmin_mid, windows of 100 rows, 9 × 9 per matrix).", icon=":material/tune:")
        w2.button("Use the cnn preset", key="home_cnn", on_click=app.use_preset, args=("cnn",))
    if sty.small:
        show_where_the_bias_is(report)
    bands = BANDS_NOTE + (" " + CNN_BANDS_NOTE if is_conv_net(report.table) else "")
    counts = summarize(report.table)
    st.caption(f"{bands} Raw: {_counts(counts.counts_raw)}. FARMS: {_counts(counts.counts_farms)}.")
    st.caption(("Published numbers, computed with: " if report.metrics_only else "Settings: ")
               + report.settings.describe())
    if report.metrics_only:
        st.info("This source carries published metrics only (no weights): the model overview works, "
                "the layer browser has no spectra to show.")

    c1, c2, c3 = st.columns(3)
    # three short labels: at 1400 px a column holds ~40 characters; longer ones were cut mid-word
    c1.page_link(app.OVERVIEW, label="Model overview: α per layer", icon=":material/bar_chart:",
                 help="α per layer, the bias plot and the diagnosis table.")
    c2.page_link(app.BROWSER, label="Layer browser: most moved layer", icon=":material/biotech:",
                 disabled=report.metrics_only, help="Opens on the layer whose α FARMS moves most.")
    c3.page_link(app.ALLOCATIONS, label="Apply and measure: prune an LM", icon=":material/content_cut:",
                 help="AlphaPruning from raw and from FARMS alphas on SmolLM2-135M or the tiny LM, pruned with "
                      "magnitude, Wanda or SparseGPT, and the held-out perplexity that follows.")

    summary = report.summary()
    if len(summary):
        with st.expander("WeightWatcher's metrics, raw and FARMS", expanded=False):
            st.caption(f"WeightWatcher's get_summary(), raw and FARMS: each metric's mean over the "
                       f"{int(summary['n_layers'].iloc[0])} analysed layers, and over the "
                       f"{int(summary['n_changeable'].iloc[0])} whose FARMS window is smaller than the matrix "
                       "(the layers FARMS can change). Per layer: the model overview's Metric list.")
            st.dataframe(summary.drop(columns=["n_layers", "n_changeable"]).rename(columns={
                "farms": "FARMS", "raw_changeable": "raw (FARMS can change)",
                "farms_changeable": "FARMS (FARMS can change)"}), hide_index=True, key="home_summary",
                column_config={c: st.column_config.NumberColumn(format="%.4g") for c in
                               ("raw", "FARMS", "raw (FARMS can change)", "FARMS (FARMS can change)")})

    with st.expander("What do raw and FARMS mean?", expanded=False):
        st.markdown(
            """
    **Raw** analysis takes each weight matrix *W*, computes the eigenvalues of *WᵀW* (its
    *empirical spectral density*, ESD) and fits a power law *p(λ) ∝ λ^−α* to the tail.
    Heavy-tailed self-regularisation (HT-SR) reads α as training quality: **α < 2** over-trained,
    **2 – 6** well-trained, **α > 6** under-trained.

    But α also depends on the matrix's **aspect ratio** (long side / short side): a tall 1536 × 384
    matrix and a square 384 × 384 one of equal quality get different α, so comparing layers is biased.

    **FARMS** (Fixed-Aspect-Ratio Matrix Subsampling, Hu et al., ICML 2025) slides windows of one
    fixed shape over every matrix, pools the eigenvalues of all windows into one ESD and fits that.
    Every layer is then measured at the same aspect ratio, so α is comparable across layers.
    """
        )


# The sidebar: the main page is listed as "Home" (without st.navigation Streamlit names it after
# this file, "app"); the other pages keep their files and their URLs (/Model_overview, ...).
st.navigation([
    st.Page(home, title="Home", default=True),
    st.Page(app.OVERVIEW, title="Model overview", url_path="Model_overview"),
    st.Page(app.BROWSER, title="Layer browser", url_path="Layer_browser"),
    st.Page("pages/3_Allocations.py", title="Allocations", url_path="Allocations"),
    st.Page("pages/4_Compare.py", title="Compare", url_path="Compare"),
    st.Page(app.LAB, title="Lab", url_path="Lab"),
]).run()
