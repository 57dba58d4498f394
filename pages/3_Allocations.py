"""Allocations: TempBalance learning rates and AlphaPruning sparsities per layer, from raw vs FARMS alpha."""

import streamlit as st

from farms_viz.analyses import allocate as al
from farms_viz.analyses import allocate_io as alloc_io
from farms_viz.analyses import blocks
from farms_viz.app import links
from farms_viz.app import state as app
from farms_viz.app.bounds import ALLOCATIONS
from farms_viz.app.downloads import chart, download, options_tag, options_words, safe_name, settings_words
from farms_viz.app.outcome import apply_and_measure
from farms_viz.errors import FarmsError
from farms_viz.figures import allocate as fa
from farms_viz.io.tables import to_csv

LLAMA = app.SourceSpec("zoo", "llama-7b-published")
SCHEMES = {"alphapruning": "AlphaPruning — sparsity per layer", "tempbalance": "TempBalance — learning rate per layer"}

app.page_setup("Allocations")
links.restore("allocations")  # ?scheme=tempbalance&map=sqrt ..., checked against the widgets' bounds


def _show_llama() -> None:
    """Switch the app to the published LLaMA-7B alphas with the paper's pruning setting."""
    prev = st.session_state.get("source")
    if prev is not None and prev != LLAMA:
        st.session_state["al_prev"] = prev
    st.session_state.update(source=LLAMA, pick_kind="zoo", pick_zoo=LLAMA.value, al_scheme="alphapruning",
                            al_sparsity=0.7, al_epsilon=0.3, al_block_wise=False)


def _go_back() -> None:
    prev = st.session_state.pop("al_prev", None) or app.SourceSpec("zoo", app.DEFAULT_MODEL)
    st.session_state["source"] = prev
    if prev.kind == "zoo":
        st.session_state.update(pick_kind="zoo", pick_zoo=prev.value)


report = app.load_report()
if report is None:
    st.stop()
spec = app.current_spec()
st.title(f"Allocations — {spec.title}")

is_llama = spec == LLAMA
transformer = blocks.has_blocks(report.table["layer"])
e1, e2 = st.columns([1, 3], vertical_alignment="center")
if is_llama:
    back = st.session_state.get("al_prev") or app.SourceSpec("zoo", app.DEFAULT_MODEL)
    e1.button(f"◀ Back to {back.title}", key="al_back", on_click=_go_back, width="stretch")
    e2.caption("**LLaMA-7B example**: the FARMS authors' published α (224 Linear layers, 32 blocks; no weights). "
               "At sparsity 0.7–0.8 and ε 0.2–0.3, see below how pruning moves between the attention and "
               "MLP matrices of each block when FARMS α replaces raw α.")
else:
    e1.button("Show the LLaMA-7B example", key="al_llama", on_click=_show_llama, type="primary", width="stretch")
    e2.caption("The FARMS authors' published LLaMA-7B α, pruned to sparsity 0.7 with ε = 0.3 — the setting of "
               "the paper's headline result (SparseGPT at 0.8: perplexity 96.02 with raw α, 79.42 with FARMS α).")

# ---------------------------------------------------------------- settings
with st.container(border=True):
    scheme = app.persisted(st.radio, "Scheme", "al_scheme", options=list(SCHEMES), format_func=SCHEMES.get,
                           horizontal=True)
    c = st.columns(4, vertical_alignment="bottom")
    if scheme == "alphapruning":
        sparsity = app.persisted(c[0].slider, "Target sparsity S", "al_sparsity", **ALLOCATIONS["sparsity"].widget(),
                                 help="Fraction of all weights removed (parameter-weighted over layers).")
        epsilon = app.persisted(c[1].slider, "ε (spread)", "al_epsilon", **ALLOCATIONS["eps"].widget(),
                                help="Before scaling, ratios run linearly from 1 − ε (smallest α) to 1 + ε (largest α).")
        block_wise = app.persisted(c[2].toggle, "Block-wise", "al_block_wise",
                                   help="Average α over the layers of each transformer block first, so a block's "
                                        "matrices share one sparsity.")
        block_size = app.persisted(c[3].number_input, "Block size (0 = from names)", "al_block_size",
                                   **ALLOCATIONS["block"].widget(), disabled=not block_wise,
                                   help="Layers per block, counted in model order; 0 reads the block number from "
                                        "names like layers.N. / layer.N. / h.N. / blocks.N.")
        if transformer:
            app.persisted(st.toggle, "Prune only the layers inside transformer blocks", "al_blocks_only",
                          help="As AlphaPruning does: embeddings, pooler and head are left dense and out of the "
                               "allocation (they are not in the downloads).")
        options = dict(sparsity=sparsity, epsilon=epsilon, block_wise=block_wise,
                       block_size=int(block_size) if block_wise and block_size else None,
                       blocks_only=bool(transformer and st.session_state["al_blocks_only"]))
    else:
        lr = app.persisted(c[0].number_input, "Base learning rate", "al_lr", **ALLOCATIONS["lr"].widget(),
                           format="%.2g")
        amap = app.persisted(c[1].selectbox, "Map", "al_map", options=list(al.MAPS),
                             help="linear: α range → [min, max] × lr · sqrt/log2: lr × n × f(α) / Σ f(α) · "
                                  "step: by rank of α")
        lr_min = app.persisted(c[2].number_input, "lr min ratio", "al_lr_min", **ALLOCATIONS["lrmin"].widget(),
                               disabled=amap in ("sqrt", "log2"), help="linear/step: lowest lr / base lr")
        lr_max = app.persisted(c[3].number_input, "lr max ratio", "al_lr_max", **ALLOCATIONS["lrmax"].widget(),
                               disabled=amap in ("sqrt", "log2"), help="linear/step: highest lr / base lr")
        k1, k2 = st.columns(2)
        keep_first = app.persisted(k1.checkbox, "Leave the first layer at the base lr", "al_keep_first")
        keep_last = app.persisted(k2.checkbox, "Leave the last layer at the base lr", "al_keep_last")
        options = dict(lr=lr, map=amap, lr_min_ratio=lr_min, lr_max_ratio=lr_max, keep_first=keep_first,
                       keep_last=keep_last)

links.sync("allocations")

try:
    alloc = al.allocate(report.table, scheme, **options)
except FarmsError as e:
    st.error(str(e))
    st.stop()
left_out = alloc.left_out
table = al.allocated_rows(alloc, report.table)
c_raw, c_farms = alloc.columns()
delta = alloc.table[c_farms] - alloc.table[c_raw]
params = al.allocated_params(alloc, report.table)

# ---------------------------------------------------------------- numbers
m = st.columns(4)
if scheme == "alphapruning":
    m[0].metric("Target sparsity", f"{options['sparsity']:.2f}")
    m[1].metric("Weighted mean, raw α", f"{al.weighted_mean(alloc.table[c_raw], params):.4f}",
                help="Σ p·ratio / Σ p over all layers (p = parameters): the model's overall sparsity.")
    m[2].metric("Weighted mean, FARMS α", f"{al.weighted_mean(alloc.table[c_farms], params):.4f}")
    m[3].metric("Largest move FARMS − raw", f"{delta[delta.abs().idxmax()]:+.3f}",
                help=f"{alloc.table['layer'][delta.abs().idxmax()]}")
else:
    m[0].metric("Base lr", f"{options['lr']:.3g}")
    m[1].metric("lr range, raw α", f"{alloc.table[c_raw].min():.3g} – {alloc.table[c_raw].max():.3g}")
    m[2].metric("lr range, FARMS α", f"{alloc.table[c_farms].min():.3g} – {alloc.table[c_farms].max():.3g}")
    m[3].metric("Largest move FARMS − raw", f"{delta[delta.abs().idxmax()]:+.3g}",
                help=f"{alloc.table['layer'][delta.abs().idxmax()]}")
capped = list(dict.fromkeys(alloc.capped["raw"] + alloc.capped["farms"]))
if capped:
    which = " and ".join(n for w, n in (("raw", "raw"), ("farms", "FARMS")) if alloc.capped[w])
    st.warning(f"{len(capped)} layer{'s' if len(capped) > 1 else ''} would exceed sparsity 1 with {which} α and "
               f"{'are' if len(capped) > 1 else 'is'} capped at 1 (pruned entirely): {', '.join(capped[:4])}"
               f"{' …' if len(capped) > 4 else ''}. The excess is spread over the other layers so the weighted "
               "mean stays S; lower S or ε to avoid it.")
if left_out:
    st.caption(f"Not pruned (outside the transformer blocks): {', '.join(left_out[:6])}"
               f"{' …' if len(left_out) > 6 else ''}.")
missing = sorted(set(alloc.missing["raw"]) | set(alloc.missing["farms"]))
if missing:
    st.info(f"{len(missing)} layer{'s' if len(missing) > 1 else ''} without α (see the status column) "
            + ("keep the target sparsity S." if scheme == "alphapruning" else "keep the base learning rate."))

# the figures' context lines and file names: the model, the scheme's options, the analysis settings
lines = (f"{report.name} · {options_words(options)}", settings_words(report.settings))
stem = safe_name(report.name, scheme, options_tag(options))
chart(st, fa.allocation_chart(alloc, table), "al_chart", lines, (stem, "per-layer"))
st.caption("Top: each layer's " + ("sparsity" if scheme == "alphapruning" else "learning rate")
           + " from raw α (orange) and from FARMS α (blue), in model order. Bottom: FARMS − raw. "
           "Hover for the layer name and its α.")

# ---------------------------------------------------------------- blocks
block_size = options.get("block_size")
if blocks.has_blocks(table["layer"]) or block_size:
    st.subheader("Per transformer block")
    summary = al.block_summary(alloc, table, block_size)
    chart(st, fa.block_chart(summary, alloc), "al_blocks", lines, (stem, "per-block"))
    if scheme == "alphapruning" and options["block_wise"]:
        st.caption("Block-wise: every matrix of a block has the same sparsity. Turn block-wise off to see how "
                   "pruning moves between the attention and MLP matrices inside each block.")
    else:
        chart(st, fa.group_chart(alloc, table), "al_groups", lines, (stem, "attention-vs-mlp"))
        st.caption("Parameter-weighted mean over the attention matrices (solid) and over the MLP matrices "
                   "(dotted) of each block: where the two α give different shares to attention and MLP.")
        chart(st, fa.delta_heatmap(alloc, table), "al_heat", lines, (stem, "heatmap"))
        st.caption("Each matrix's change: blue cells get more with FARMS α than with raw α, orange cells less. "
                   "A matrix that FARMS measures whole (a square one no larger than the window) has the same α "
                   "either way and moves only through the common rescaling, so it stays near white.")

# ---------------------------------------------------------------- movers and downloads
st.subheader("Layers that move most")
top = al.movers(alloc, table, top=15)
fmt = "{:.4f}" if scheme == "alphapruning" else "{:.3g}"
st.dataframe(top.style.format({"alpha_raw": "{:.2f}", "alpha_farms": "{:.2f}", c_raw: fmt, c_farms: fmt,
                               "delta": "{:+.4f}" if scheme == "alphapruning" else "{:+.3g}"}, na_rep="–"),
             hide_index=True, width="stretch", key="al_table",
             column_config={"layer": st.column_config.TextColumn("layer", width="large"),
                            "alpha_raw": "α raw", "alpha_farms": "α FARMS", c_raw: f"{alloc.value} raw",
                            c_farms: f"{alloc.value} FARMS", "delta": "FARMS − raw"})
d1, d2, _ = st.columns([1, 1, 2])
download(d1, "Download CSV", to_csv(alloc.table).encode(), stem, ".csv", "al_csv", width="stretch")
download(d2, "Download JSON", alloc_io.to_json(alloc).encode(), stem, ".json", "al_json", width="stretch",
         help='{"raw": {layer: value}, "farms": {layer: value}} — read it in a training or pruning script.')
st.caption("Same numbers from the command line: "
           + (f"`farms-viz allocate REPORT --scheme alphapruning --sparsity {options['sparsity']:g} "
              f"--epsilon {options['epsilon']:g}"
              + (f" --block-size {block_size}" if block_size else (" --block-wise" if options["block_wise"] else ""))
              + (" --blocks-only" if options["blocks_only"] else "")
              if scheme == "alphapruning" else
              f"`farms-viz allocate REPORT --scheme tempbalance --lr {options['lr']:g} --map {options['map']} "
              f"--lr-min-ratio {options['lr_min_ratio']:g} --lr-max-ratio {options['lr_max_ratio']:g}"
              + (" --keep-first" if options["keep_first"] else "") + (" --keep-last" if options["keep_last"] else ""))
           + " --out FILE.csv`")

apply_and_measure(spec, options.get("epsilon", 0.3))  # prune tinylm / digits / MiniLM and measure

with st.expander("What these schemes do, and why the bias matters", expanded=False):
    st.markdown(
        r"""
**TempBalance** (Zhou et al., NeurIPS 2023) gives each layer its own learning rate. A larger α (a
lighter-tailed ESD) reads as a less-trained layer, so it gets a *larger* learning rate; heavy-tailed,
well-trained layers get a smaller one. `linear` maps the α range onto [min, max] × lr; `sqrt` and
`log2` give lr × n × f(α) / Σ f(α) (mean lr stays the base lr); `step` orders the layers by α and
spaces the rates evenly. TempBalance recomputes α during training (e.g. every epoch); this page shows
one snapshot.

**AlphaPruning** (Lu et al., NeurIPS 2024) gives each layer its own sparsity for a pruner such as
magnitude, Wanda or SparseGPT. A heavy-tailed layer (small α) holds more learned structure, so it is
pruned *less*; a large-α layer more. The ratios go linearly from 1 − ε to 1 + ε over the α range and are
then scaled so the parameter-weighted mean sparsity is exactly the target S. Block-wise, α is averaged
over each transformer block first.

**Why the bias matters.** Both schemes only compare α across layers. Raw α also depends on a matrix's
aspect ratio — in LLaMA-7B the MLP matrices are 11008 × 4096 (aspect ratio 2.69), the attention ones
4096 × 4096 — so raw α partly ranks layers by *shape*. FARMS measures every layer at one fixed aspect
ratio, so the ranking, and the learning rates or sparsities that follow from it, reflect training
quality instead. In the FARMS paper, LLaMA-7B pruned to 0.8 sparsity with SparseGPT reaches perplexity
79.42 with FARMS α against 96.02 with raw α.
"""
    )
