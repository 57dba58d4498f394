"""farms-viz home: pick a model, set the analysis, read the summary (raw vs FARMS)."""

import streamlit as st

from farms_viz.analyses.diagnosis import summarize
from farms_viz.app import state as app
from farms_viz.errors import FarmsError


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

    # ---------------------------------------------------------------- summary
    s = summarize(report.table)
    st.subheader(f"Summary — {app.current_spec().title}")
    m = st.columns(4)
    m[0].metric("Layers analysed", s.n_layers, help="Weight matrices (Linear, conv, …) in the model.")
    m[1].metric("Diagnosis flips", f"{s.n_flipped} of {s.n_fitted}",
                help="Layers whose label (over-, well-, under-trained) differs between raw and FARMS alpha.")
    m[2].metric("α raw: mean ± spread", f"{s.mean_raw:.2f} ± {s.std_raw:.2f}",
                help="Mean and standard deviation over layers of the raw power-law exponent.")
    m[3].metric("α FARMS: mean ± spread", f"{s.mean_farms:.2f} ± {s.std_farms:.2f}",
                delta=f"{s.std_farms - s.std_raw:+.2f} spread vs raw", delta_color="off",
                help="Mean and standard deviation over layers of the FARMS power-law exponent.")


    def _counts(c: dict) -> str:
        return ", ".join(f"{v} {k}" for k, v in c.items() if v)


    st.caption(f"Raw: {_counts(s.counts_raw)}.  FARMS: {_counts(s.counts_farms)}.  "
               f"Settings: {report.settings.describe()}")
    if report.metrics_only:
        st.info("This source carries published metrics only (no weights): the model overview works, "
                "the layer browser has no spectra to show.")

    c1, c2 = st.columns(2)
    c1.page_link(app.OVERVIEW, label="Model overview: α per layer, bias plot, diagnosis table", icon=":material/bar_chart:")
    c2.page_link(app.BROWSER, label="Layer browser: spectra, fits and FARMS windows", icon=":material/biotech:",
                 disabled=report.metrics_only)

    with st.expander("What do raw and FARMS mean?", expanded=True):
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
    st.Page("pages/5_Lab.py", title="Lab", url_path="Lab"),
]).run()
