"""Aspect-ratio lab: make a random matrix, see Marchenko-Pastur, alpha, the aspect-ratio bias and FARMS."""

import streamlit as st

from farms_viz.analyses.diagnosis import fmt_number, grid_caption
from farms_viz.analyses.exports import sweep_table
from farms_viz.analyses.lab import DISTRIBUTIONS, SWEEP_MODES, SWEEP_RATIOS, quantization_error
from farms_viz.app import lab as lab_st
from farms_viz.app import server as appserver
from farms_viz.app import state as app
from farms_viz.app.bounds import LAB, LAB_MAX_WINDOW
from farms_viz.app.downloads import chart, download, safe_name
from farms_viz.errors import FarmsError
from farms_viz.figures import lab as figures_lab
from farms_viz.figures import layer as figures
from farms_viz.figures import style
from farms_viz.io.tables import table_bytes
from farms_viz.settings import FITS

app.page_config("Aspect-ratio lab")  # no page_setup: the lab's URL keys are its own, not the analysis settings
lab_st.init()
W = lab_st.widget
#: a lab chart (two of five columns, ~175 px at 1024 px) holds context lines of this many characters
LAB_CHARS = 28
FIT_WORDS = {"xmin_mid": "xmin_mid: tail = top half (stable on noise)",
             "xmin_peak": "xmin_peak: best KS fit near the peak (LLM setting)",
             "ks": "ks: best KS fit anywhere (WeightWatcher)"}

# a compact top so the plots start high on a projector
st.markdown("<style>[data-testid='stMainBlockContainer']{padding-top:2.2rem}</style>", unsafe_allow_html=True)
st.title("Aspect-ratio lab")
st.markdown("Make a random matrix, look at its eigenvalues, and see why the **shape** of a matrix alone "
            "moves the power-law exponent α, and how FARMS removes that. One click on a preset sets everything.")
appserver.show_notices()  # the link's refused or clamped values, one sentence each

cols = st.columns(len(lab_st.PRESETS))
for c, name in zip(cols, lab_st.PRESETS):
    c.button(name, key=f"preset_{name}", icon=lab_st.PRESET_ICONS[name], on_click=lab_st.apply_preset,
             args=(name,), width="stretch", type="primary" if name == "Bias sweep" else "secondary")

# ---------------------------------------------------------------- the matrix maker
with st.container(border=True):
    v1, v2 = st.columns([1, 1.6], vertical_alignment="center")
    with v1:
        W(st.segmented_control, "View", "view", options=list(lab_st.VIEWS), format_func=lab_st.VIEWS.get,
          label_visibility="collapsed", on_change=lab_st.keep_choice, args=("view",))
    view = lab_st.get("view")
    v2.caption(":material/link: The address bar holds every setting of this view: copy the link to share it.")
    dist = lab_st.get("dist")
    c = st.columns([2.2, 1.4, 1, 1, 0.8] if view == "matrix" else [2.2, 1.4, 1.6, 1, 1], vertical_alignment="bottom")
    W(c[0].selectbox, "Entries", "dist", options=list(DISTRIBUTIONS), format_func=DISTRIBUTIONS.get)
    with c[1]:
        if dist == "student_t":
            W(st.number_input, "ν (degrees of freedom)", "nu", **LAB["nu"].widget(),
              help="Entry tail P(|x| > t) ~ t^−ν; below 2 the variance is infinite and the ESD is heavy-tailed.")
        elif dist == "pareto":
            W(st.number_input, "μ (tail index)", "mu", **LAB["mu"].widget(),
              help="Entry tail P(|x| > t) = t^−μ (t ≥ 1), random signs; below 2 the variance is infinite.")
        elif dist == "planted":
            s1, s2 = st.columns(2)
            W(s1.number_input, "θ", "strength", **LAB["strength"].widget(),
              help="Signal strength θ: each planted direction adds θ u vᵀ (u, v unit vectors) to noise of entry variance 1/N.")
            W(s2.number_input, "rank r", "rank", **LAB["rank"].widget())
        else:
            st.caption("entries N(0, 1/N), N = long side")
    if view == "matrix":
        W(c[2].number_input, "rows", "rows", **LAB["rows"].widget())
        W(c[3].number_input, "columns", "cols", **LAB["cols"].widget())
        W(c[4].number_input, "seed", "seed", **LAB["seed"].widget())
    else:
        W(c[2].radio, "Keep fixed", "mode", options=list(SWEEP_MODES), format_func=SWEEP_MODES.get,
          horizontal=True, help="Fixed short side: the matrix grows with the aspect ratio. Fixed number of "
                                "entries: short side = size / √Q, long side = size · √Q.")
        W(c[3].number_input, "size", "size", **LAB["size"].widget(),
          help="The short side (fixed short side) or the side of the square (fixed number of entries).")
        W(c[4].number_input, "seeds", "seeds", **LAB["seeds"].widget(),
          help="Matrices per aspect ratio; the band is ±1 standard deviation over them.")
    if view == "matrix":
        W(st.toggle, "Store it at 4 bits (GGML Q4_1, as SmolLM2-135M's weights are) and read it back", "q4",
          help="Blocks of 32 entries along each row keep 16 levels between their min and max. The α cards then "
               "show how far the 4-bit round trip moved α: how much of a quantized model's spectrum is "
               "quantization noise.")
    with st.expander("FARMS window and fit rule"):
        e = st.columns(3)
        W(e[0].number_input, "FARMS window rows (0 = auto)", "win", **LAB["win"].widget(),
          help=f"Square windows of this many rows (at most {LAB_MAX_WINDOW}); auto = min(short side, 256). In the "
               "sweep the window is the smallest short side (at most 256), the same for every aspect ratio.")
        W(e[1].number_input, "Windows per side", "per_dim", **LAB["per_dim"].widget(),
          help="FARMS slides up to this many windows along each side (overlapping where needed).")
        if view == "matrix":  # the sweep shows the rule beside its chart
            W(e[2].selectbox, "Fit rule", "fit", options=list(FITS), format_func=FIT_WORDS.get)
        upload = st.file_uploader("Or analyse your own matrix (.npy, 2-D, sides up to 4096)", type=["npy"],
                                  key="lab_upload") if view == "matrix" else None

lab_st.sync_url()

try:
    spec = lab_st.matrix_spec()
except FarmsError as err:
    st.error(str(err))
    st.stop()

# ---------------------------------------------------------------- texts
ESD_TEXT = r"""
**The ESD.** For a matrix W (N × M, N ≥ M) the *empirical spectral density* is the histogram of the
M eigenvalues of WᵀW (the squared singular values).

**Marchenko–Pastur.** If the entries are independent with mean 0 and variance σ², then for large
N, M with Q = N/M fixed the ESD follows
"""
# two lines: one would overflow the teaching column on a 1280-pixel laptop screen
MP_LATEX = (r"\small\begin{aligned}p(\lambda)&=\frac{Q}{2\pi N\sigma^2\lambda}\\&\times\sqrt{(\lambda_+-\lambda)(\lambda-\lambda_-)}\end{aligned}",
            r"\lambda_\pm=N\sigma^2\Big(1\pm\frac{1}{\sqrt Q}\Big)^2")
MP_AFTER = r"""
Here σ² = 1/N, so λ± = (1 ± 1/√Q)²: the taller the matrix, the narrower the bulk.
Eigenvalues clearly above λ+ (**spikes**) are structure that noise does not explain; a planted
rank-r signal of strength θ gives r spikes once θ > Q^(−1/4).
"""
ALPHA_TEXT = r"""
**α.** HT-SR fits a power law p(λ) ∝ λ^(−α) to the right tail of the ESD, λ ≥ xmin, with the
Hill estimator over the n tail eigenvalues:
"""
ALPHA_LATEX = r"\hat\alpha = 1 + n\Big/\sum_{i=1}^{n}\ln\frac{\lambda_i}{x_{\min}}"
ALPHA_AFTER = r"""
On log–log axes the tail's CCDF P(Λ ≥ λ) is then a line of slope 1 − α. Smaller α means a heavier
tail. Entries with tail index μ < 2 give α ≈ 1 + μ/2. Pure noise has no real power law: α then
only says how fast the bulk ends, and that depends on Q — **the aspect-ratio bias**.
"""
FARMS_TEXT = r"""
**FARMS** (Hu et al., ICML 2025) slides square windows over W, pools the eigenvalues of all
windows into one ESD and fits that. Every matrix is then measured at the same aspect ratio (1),
so α no longer depends on the matrix's shape, while heavy tails stay heavy.
"""


def teach(text: str, formulas, after: str) -> None:
    st.markdown(text)
    for f in [formulas] if isinstance(formulas, str) else formulas:
        st.latex(f)
    st.markdown(after)


# ---------------------------------------------------------------- one matrix
def matrix_view() -> None:
    res, name = None, None
    try:
        if upload is not None:
            name = upload.name
            res = lab_st.upload_result(upload)
        else:
            res = lab_st.matrix_result(spec)
    except FarmsError as err:
        st.error(str(err))
        return
    sp = res.spectra
    g = sp.grid
    what = (f"your matrix **{name}**" if name else f"{DISTRIBUTIONS[spec.dist].split(' (')[0]} entries, seed {spec.seed}")
    base = lab_st.matrix_result(spec.replace(q4_1=False)) if spec.q4_1 and name is None else None
    shift = {w: (f"{getattr(res, f'alpha_{w}') - getattr(base, f'alpha_{w}'):+.3f} from 4 bits"
                 if base is not None else None) for w in ("raw", "farms")}
    m = st.columns(4)
    m[0].metric("α raw", fmt_number(res.alpha_raw), delta=shift["raw"], delta_color="off",
                help="Power-law exponent of the whole matrix's ESD tail.")
    m[1].metric("α FARMS", fmt_number(res.alpha_farms), delta=shift["farms"], delta_color="off",
                help="Power-law exponent of the pooled window ESD.")
    m[2].metric("Matrix", f"{sp.rows} × {sp.cols}", delta=f"aspect ratio Q = {max(sp.rows, sp.cols) / min(sp.rows, sp.cols):.3g}",
                delta_color="off", delta_arrow="off")
    m[3].metric("FARMS window", f"{g.h} × {g.w}", delta=f"{g.n_windows} windows, aspect ratio {g.aspect_ratio:.3g}",
                delta_color="off", delta_arrow="off")
    st.caption(f"{what} · fit rule {sp.fit_raw.method} · analysed in {res.seconds:.2f} s"
               + (f" · stored at 4 bits (Q4_1): ‖W − Q(W)‖ / ‖W‖ = {quantization_error(spec):.3f}; the deltas "
                  f"are α of Q(W) − α of W (raw {fmt_number(base.alpha_raw)}, FARMS {fmt_number(base.alpha_farms)})"
                  if base is not None else ""))
    lines, file = lab_st.matrix_context(spec, sp.rows, sp.cols, name)

    st.subheader("1 · The spectrum and the Marchenko–Pastur law")
    log_x = W(st.toggle, "log-scale λ axis", "log",
              help="Heavy-tailed spectra span decades; a log axis shows them whole.")
    # the two charts side by side, their text under them (a third column left each chart ~180 px
    # wide at a 1024 px window: titles, axis titles and legends cut off, the formulas too)
    c_raw, c_farms = st.columns(2, gap="medium")
    c_txt = st.container()
    for col, which in ((c_raw, "raw"), (c_farms, "farms")):
        side = sp.side(which)
        esd, mp, th = side.esd, side.mp, res.theory(which)
        # two short lines: a lab chart is ~178 px wide at 1024 px (20 characters of title text)
        title = (f"Raw: the whole<br>{sp.rows} × {sp.cols} matrix" if which == "raw"
                 else f"FARMS: {g.n_windows} windows<br>of {g.h} × {g.w}")
        chart(col, figures_lab.lab_esd(esd, th, mp, which, log_x=log_x, title=title), f"lab_esd_{which}", lines,
              (*file, f"esd-{which}"), chars=LAB_CHARS)
    with c_txt:
        teach(ESD_TEXT, MP_LATEX, MP_AFTER)
        if res.theory_raw is None:
            st.info("These entries have infinite variance, so no Marchenko–Pastur law applies; "
                    "the curve is an MP law fitted to the bulk." if name is None else
                    "The entry variance of an uploaded matrix is unknown; the curve is an MP law fitted to its bulk.")

    st.subheader("2 · The tail and α")
    c_raw, c_farms = st.columns(2, gap="medium")
    c_txt = st.container()
    for col, which in ((c_raw, "raw"), (c_farms, "farms")):
        side = sp.side(which)
        fit, esd = side.fit, side.esd
        chart(col, figures.tail_ccdf(esd, fit, which, title=f"Tail {figures.NAMES[which]}:<br>CCDF, power-law fit"),
              f"lab_tail_{which}", lines, (*file, f"tail-{which}"), chars=LAB_CHARS)
    with c_txt:
        teach(ALPHA_TEXT, ALPHA_LATEX, ALPHA_AFTER)
    st.dataframe(figures_lab.numbers_table(res.row, res.theory_raw, res.theory_farms), width="stretch")

    st.subheader("3 · Where FARMS looks")
    c_grid, c_txt = st.columns([2.6, 2.85], gap="medium")
    chart(c_grid, figures.window_grid_figure(sp.thumbnail, g), "lab_grid", lines, (*file, "farms-windows"))
    with c_txt:
        st.markdown(FARMS_TEXT)
        st.markdown(grid_caption(g))
        st.caption(f"The heatmap is |W| averaged over blocks (at most {style.DISPLAY_SIDE} × {style.DISPLAY_SIDE}).")


# ---------------------------------------------------------------- the sweep
def sweep_view() -> None:
    W(st.segmented_control, "Fit rule: the same matrices, refitted; watch the FARMS line", "fit",
      options=list(FITS), format_func=lambda f: f, on_change=lab_st.keep_choice, args=("fit",),
      help=" · ".join(FIT_WORDS.values()))
    try:
        res = lab_st.sweep_result(spec)
    except FarmsError as err:
        st.error(str(err))
        return
    ref = spec.tail_alpha()
    label = DISTRIBUTIONS[spec.dist].split(" (")[0]
    param = {"student_t": f", ν = {spec.nu:g}", "pareto": f", μ = {spec.mu:g}",
             "planted": f", θ = {spec.strength:g}, rank {spec.rank}"}.get(spec.dist, "")
    f_lo, f_hi, sd = res.spread("farms")
    c_fig, c_txt = st.columns([3.2, 1.45], gap="medium")
    lines, file = lab_st.sweep_context(res)
    chart(c_fig, figures_lab.sweep_figure(
        res, ref, title=f"α vs aspect ratio — {label}{param}, {SWEEP_MODES[res.mode]} {res.size}, "
                        f"{len(res.seeds)} seeds"), "lab_sweep", lines, file)
    download(c_fig, "Sweep CSV", table_bytes(sweep_table(res), "csv"), safe_name(*file), ".csv", "lab_sweep_csv",
             icon=":material/download:",
             help="One row per matrix: aspect_ratio, rows, cols, seed, window, alpha_raw, alpha_farms.")
    with c_txt:
        st.markdown(f"""
**What is plotted.** For each aspect ratio Q from {SWEEP_RATIOS[0]:g} to {SWEEP_RATIOS[-1]:g}, {len(res.seeds)}
random matrices; lines are the mean α, bands ±1 standard deviation, faint dots single matrices.
FARMS uses {res.window} × {res.window} windows at every Q.

**What to see.** Under the **{lab_st.get('fit')}** rule raw α changes by
**{res.slope('raw'):+.2f}** per doubling of Q, FARMS α by **{res.slope('farms'):+.2f}**; FARMS α ranges from {f_lo:.2f} to {f_hi:.2f}
over the aspect ratios (seed-to-seed sd up to {sd:.2f}). Nothing about the entries changed, only the
shape. Switch the fit rule above: the same spectra give a different trend, so the rule matters.

Try **Entries → Pareto-tailed**: both α drop to about 1 + μ/2, so heavy and light tails stay apart.
""")
        st.caption(f"{len(res.shapes) * len(res.seeds)} matrices analysed in {res.seconds:.1f} s "
                   f"(shapes {res.shapes[0][0]} × {res.shapes[0][1]} to {res.shapes[-1][0]} × {res.shapes[-1][1]}).")
        st.markdown(FARMS_TEXT)


if view == "matrix":
    matrix_view()
else:
    sweep_view()
