"""The Allocations page's "Apply and measure": prune a model farms-viz can evaluate by uniform,
AlphaPruning-raw and AlphaPruning-FARMS sparsities, measure it, and show the outcome.

The measure is :func:`farms_viz.analyses.outcome.measure` (rows cached on disk, shared with the CLI
and ``benchmarks/prune_experiment.py``), run in a slot of the server's job budget
(:func:`farms_viz.app.state.memo`) with a progress bar, and kept in memory per request.
Session state: ``am_model``, ``am_method``, ``am_levels``, ``am_seeds``, ``am_eps`` (the widgets)
and ``am_request`` (the last request run).
"""

from __future__ import annotations

from collections import OrderedDict

import streamlit as st

from farms_viz.analyses import outcome
from farms_viz.analyses.prune import METHODS
from farms_viz.app import server as appserver
from farms_viz.app import serving
from farms_viz.app.sidebar import persisted
from farms_viz.app.state import memo
from farms_viz.errors import FarmsError
from farms_viz.figures import outcome as fo
from farms_viz.io.tables import to_csv

#: the models offered: those farms-viz can prune and measure (outcome.FAMILIES less the test variant)
MODELS = ("tinylm", "smollm2-135m", "digits-cnn", "digits-mlp", "minilm")
#: models too slow to prune on a shared 2-core server (SmolLM2: a minute or more a row): served
#: mode shows only what has been measured there before (``outcome.measure(cache_only=True)``)
CACHED_ONLY = ("smollm2-135m",)
#: the epsilon choices: searched per arm as the releases, or the page's fixed value
EPSILON_MODES = ("search", "fixed")
LEVELS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
DEFAULT_LEVELS = [0.5, 0.6, 0.7, 0.8]
#: served mode: at most this many sparsity levels per run (a tiny LM row takes 3-5 s on 2 cores)
SERVED_LEVELS = 4
EXAMPLE = {"am_model": "tinylm", "am_method": "wanda", "am_levels": DEFAULT_LEVELS}
MAX_RESULTS = 8
METHOD_NAMES = {"magnitude": "magnitude |W|", "wanda": "Wanda |W|·‖X‖", "sparsegpt": "SparseGPT (OBS)"}


@st.cache_resource(show_spinner=False)
def _store() -> OrderedDict:
    """Measured tables by request, least recently used first."""
    return OrderedDict()


def max_seeds(model: str) -> int:
    """How many training seeds a run may use: all of the family's, or in served mode only those
    already trained (a tiny LM seed takes about 3 CPU-minutes to train)."""
    fam = outcome.family(model)
    if not serving.served():
        return len(fam.seeds)
    ready = 0
    for s in fam.seeds:
        if not fam.built(s):
            break
        ready += 1
    return max(1, ready)


def _default_model(spec) -> str:
    value = getattr(spec, "value", "")
    try:
        name = outcome.family(value).name
    except FarmsError:
        return "tinylm"
    return name if name in MODELS else "tinylm"


def _request() -> tuple:
    s = st.session_state
    seeds = min(int(s["am_seeds"]), max_seeds(s["am_model"]))
    levels = sorted(float(x) for x in s["am_levels"])
    if serving.served():
        levels = levels[:SERVED_LEVELS]
    return s["am_model"], s["am_method"], tuple(levels), tuple(outcome.family(s["am_model"]).seeds[:seeds])


def _run(epsilon: float) -> None:
    s = st.session_state
    s["am_request"] = (*_request(), "search" if s.get("am_eps", "search") == "search" else float(epsilon))


def _example(epsilon: float) -> None:
    st.session_state.update(EXAMPLE)
    st.session_state["am_seeds"] = max_seeds("tinylm")
    _run(epsilon)


def _measure(request: tuple):
    model, method, levels, seeds, epsilon = request
    bar = st.progress(0.0, text=f"Pruning and measuring {model} …")

    def progress(done: int, total: int, what: str) -> None:
        appserver.step()
        bar.progress(min(1.0, done / total) if total else 1.0,
                     text=f"{model}, {method}: {what} ({done} of {total} measured)" if what else "Done.")

    try:
        return outcome.measure(model, method, levels, seeds=seeds, epsilon=epsilon, progress=progress,
                               cache_only=serving.served() and model in CACHED_ONLY)
    finally:
        bar.empty()


def apply_and_measure(spec=None, epsilon: float = 0.3) -> None:
    """The section: model, method, sparsity levels and seeds; a run button and the one-click example
    on the miniature language model; then the outcome chart and table of the last run."""
    s = st.session_state
    s.setdefault("am_model", _default_model(spec))
    s.setdefault("am_method", "wanda")
    s.setdefault("am_levels", list(DEFAULT_LEVELS))
    s.setdefault("am_eps", "search")
    served = serving.served()
    st.subheader("Apply and measure")
    st.caption("Prune a model farms-viz can evaluate with each allocation — uniform S, AlphaPruning from raw α, "
               "AlphaPruning from FARMS α (block-wise α; transformers: only the layers inside blocks) — and "
               "measure it: held-out perplexity (tinylm; SmolLM2-135M on Brown Corpus documents; lower is "
               "better), test accuracy (digits), or MiniLM's agreement with its dense self (a proxy). ε is "
               "searched per arm on tuning data, never on the held-out part, as the releases search it; the "
               "chart writes the ε chosen under each sparsity. Each model is analysed with the paper's preset "
               "(llm, cnn), not with the sidebar's settings. SmolLM2's weights are stored at 4 bits (Q4_1).")
    with st.container(border=True):
        c = st.columns([2, 2, 4, 1], vertical_alignment="bottom")
        model = persisted(c[0].selectbox, "Model", "am_model", options=list(MODELS),
                          help="tinylm: the tiny LLaMA-shaped LM (3 training seeds); smollm2-135m: a real "
                               "pretrained LM (one checkpoint, 4-bit weights"
                               + ("; on this shared server only runs measured before" if served else
                                  "; a minute or more a row on 2 cores") + "); digits-*: after 30 epochs "
                               "(3 seeds); minilm: one checkpoint.")
        persisted(c[1].radio, "Pruning", "am_method", options=list(METHODS), format_func=METHOD_NAMES.get,
                  horizontal=True, help="Wanda's activations come from the model's own training data "
                                        "(MiniLM: 16 sentences not used for the measure).")
        persisted(c[2].multiselect, "Sparsity levels", "am_levels", options=list(LEVELS),
                  max_selections=SERVED_LEVELS if served else None,
                  help="Target S, the parameter-weighted mean over the pruned layers"
                       + (f"; at most {SERVED_LEVELS} levels on this shared server." if served else "."))
        top = max_seeds(model)
        s["am_seeds"] = min(int(s.get("am_seeds", top)), top)
        persisted(c[3].number_input, "Seeds", "am_seeds", min_value=1, max_value=top, step=1,
                  help=f"Training seeds to average over (at most {top} for {model}"
                       + ("; on this shared server only seeds already trained)." if served else ")."))
        words = {"search": "searched per arm (the releases' protocol)", "fixed": f"fixed at {epsilon:g} (this page's ε)"}
        persisted(st.radio, "ε (AlphaPruning's spread)", "am_eps", options=list(EPSILON_MODES), format_func=words.get,
                  horizontal=True, help="searched: each arm (seed, sparsity, raw or FARMS) tries ε = "
                  + ", ".join(f"{e:g}" for e in outcome.EPSILONS) + " and keeps the best on tuning data "
                  f"({len(outcome.EPSILONS)}× the pruning); fixed: the ε set above on this page.")
        b = st.columns([2, 3, 3], vertical_alignment="center")
        b[0].button("Apply and measure", key="am_run", type="primary", on_click=_run, args=(epsilon,),
                    disabled=not s["am_levels"], width="stretch")
        b[1].button("Example: the miniature language model", key="am_example", on_click=_example, args=(epsilon,),
                    width="stretch", help="tinylm, Wanda, sparsity 0.5-0.8, every trained seed: read from the "
                                          "experiment's cache when it has run, else computed here.")
        b[2].caption("Measured rows are cached on disk, so a repeated run is instant."
                     + (" A tiny LM row takes 3-5 s on a 2-core CPU; searching ε prunes each AlphaPruning row "
                        f"{len(outcome.EPSILONS)} more times." if not served else ""))
    request = s.get("am_request")
    if request is None:
        return
    try:
        table = memo(_store(), request, MAX_RESULTS, f"pruning and measuring {request[0]}", lambda: _measure(request))
    except FarmsError as e:
        st.error(str(e))
        return
    show(table, request)


def show(table, request: tuple) -> None:
    """The outcome chart, the summary table, a CSV of every row and the equivalent command."""
    model, method, levels, seeds, epsilon = request
    summary = outcome.summarize(table)
    st.plotly_chart(fo.outcome_chart(summary), key="am_chart", theme=None, config={"displaylogo": False})
    n = len(seeds)
    st.caption(("Lines: the mean over " + f"{n} training seeds; bands: min–max over the seeds. "
                if n > 1 else "One seed, so no band. ")
               + "Dotted: the dense model. Hover a point for its spread and achieved sparsity.")
    view = summary[["sparsity", "allocation", "epsilon", "n", "mean", "sd", "min", "max", "achieved", "seconds"]].copy()
    view["allocation"] = view["allocation"].map(outcome.NAMES)
    st.dataframe(view.style.format({"sparsity": "{:g}", "mean": "{:.4f}", "sd": "{:.4f}", "min": "{:.4f}",
                                    "max": "{:.4f}", "achieved": "{:.4f}", "seconds": "{:.1f}"}, na_rep="–"),
                 hide_index=True, width="stretch", key="am_table",
                 column_config={"achieved": "achieved S", "seconds": "compute s", "epsilon": "ε chosen"})
    capped = table[table["capped"] > 0]
    if len(capped):
        st.caption(f"In {len(capped)} of {len(table)} runs the allocation asked for more than all of a layer's "
                   "weights; those layers were pruned entirely (capped at 1, the excess spread over the others).")
    st.download_button("Download every run (CSV)", to_csv(table).encode(), key="am_csv",
                       file_name=f"{model}-{method}-outcome.csv", mime="text/csv")
    eps = epsilon if epsilon == "search" else f"{epsilon:g}"
    st.caption(f"Same table from the command line: `farms-viz measure {model} --method {method} --sparsities "
               f"{','.join(f'{x:g}' for x in levels)} --seeds {','.join(map(str, seeds))} --epsilon {eps}`")
