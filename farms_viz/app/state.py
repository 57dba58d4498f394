"""Streamlit glue shared by the app's pages: cached analysis, sidebar settings, model picker, URL state.

The only module besides the pages that imports Streamlit. Session state keys:
``source`` (the current, successfully analysed source spec), ``s_<field>`` (settings),
``layer`` (the layer the browser shows). Widgets use ``w_<key>`` and copy into those keys,
so the values survive page switches (Streamlit drops widget state of pages not shown).
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import streamlit as st

from farms_viz.app import server as appserver
from farms_viz.app import serving
from farms_viz.app.bounds import SETTING_CHOICES, SETTINGS, choice_from_url, from_url, quote
from farms_viz.app.server import save_upload  # noqa: F401 (the pages' one import)
from farms_viz.app.sources import (  # noqa: F401 (the pages reach these through this module)
    DEFAULT_MODEL,
    SOURCE_KINDS,
    SourceSpec,
    admit,
    content_id,
    source_kinds,
    spec_from_param,
    target,
    zoo_entries,
)
from farms_viz.errors import FarmsError
from farms_viz.pipeline.analyze import Report, analyze
from farms_viz.settings import CONV_RULES, FITS, PRESETS, SETTING_FIELDS, Settings

HOME = "app.py"
OVERVIEW = "pages/1_Model_overview.py"
BROWSER = "pages/2_Layer_browser.py"
MAX_REPORTS = 6
#: short labels (a sidebar selectbox shows ~30 characters) and, under it, what the rule is
FIT_LABELS = {"xmin_peak": "xmin_peak · FARMS release", "xmin_mid": "xmin_mid · TempBalance",
              "ks": "ks · WeightWatcher"}
FIT_NOTES = {
    "xmin_peak": "As the FARMS / AlphaPruning release, its lower bound included: xmin is searched between "
                 "log10(0.95 × peak) and 1.5 × peak of the log-histogram.",
    "xmin_mid": "As TempBalance: the tail is the top 1/xmin_pos of the eigenvalues.",
    "ks": "As WeightWatcher 0.7.7: xmin minimising the KS distance over all eigenvalues > 1e-5.",
}
#: Settings that travel in the URL when they differ from the preset's.
URL_FIELDS = ("fit", "xmin_pos", "window", "q", "ops", "conv_rule")
CONV_RULE_LABELS = {"release": "release · C × C blocks", "grid": "grid · window grid"}


# ------------------------------------------------------------------ cached analysis

@st.cache_resource(show_spinner=False)
def _store() -> OrderedDict:
    """Reports by (kind, value, content id, settings key), least recently used first."""
    return OrderedDict()


def cache_key(spec: SourceSpec, settings: Settings) -> tuple:
    """The store key of ``spec`` under ``settings``; FarmsError if this server may not open it."""
    admit(spec)
    return (spec.kind, spec.value, content_id(spec), settings.key())


def cached(store: OrderedDict, key):
    """``store[key]`` marked as just used, or None (safe while other sessions change the store)."""
    try:
        value = store[key]
        store.move_to_end(key)
    except KeyError:
        return None
    return value


def memo(store: OrderedDict, key, limit: int, what: str, compute):
    """``store[key]``, or ``compute()`` run in a slot of the server's job budget (queued behind other
    visitors' jobs, described to them as ``what``), stored and the least recently used entries beyond
    ``limit`` dropped. Looked up again after the wait: another visitor may have computed it meanwhile."""
    value = cached(store, key)
    if value is not None:
        return value
    with appserver.job(what):
        value = cached(store, key) or compute()
    store[key] = value
    while len(store) > limit:
        store.popitem(last=False)
    return value


def analyze_cached(spec: SourceSpec, settings: Settings) -> Report:
    """The report of ``spec`` under ``settings``: computed once (with a progress bar), then cached.

    Computing holds a slot of the server's job budget and stops between layers if the visitor has gone.
    """
    return memo(_store(), cache_key(spec, settings), MAX_REPORTS, f"analysing {quote(spec.title)}",
                lambda: _compute(spec, settings))


def _compute(spec: SourceSpec, settings: Settings) -> Report:
    bar = st.progress(0.0, text=f"Opening {spec.title} …")

    def progress(done: int, total: int, layer: str) -> None:
        appserver.step()
        if total and done < total:
            bar.progress(done / total, text=f"Analysing {spec.title}: layer {done + 1} of {total} — {layer}")
        else:
            bar.progress(1.0, text="Done.")

    try:
        address = str(st.session_state.get("s_ray_address") or "").strip() if serving.ray_allowed() else ""
        return analyze(target(spec), settings=settings, progress=progress,
                       **({"executor": "ray", "address": address} if address else {}))
    finally:
        bar.empty()


# ------------------------------------------------------------------ session state

def _copy(src: str, dst: str) -> None:
    st.session_state[dst] = st.session_state[src]


def persisted(widget, label: str, key: str, on_change=None, **kw):
    """A widget whose value lives in ``st.session_state[key]`` across pages."""
    wkey = "w_" + key
    # set every run: a page switch gives the widget a new identity that would start from its default
    st.session_state[wkey] = st.session_state[key]
    if on_change is None:
        return widget(label, key=wkey, on_change=_copy, args=(wkey, key), **kw)
    return widget(label, key=wkey, on_change=on_change, **kw)


def setting_from_url(name: str, raw: str, default):
    """``(value, problem)``: a link's setting checked against the bounds its widget uses."""
    if name in SETTINGS:
        return from_url(name, raw, SETTINGS[name], default)
    return choice_from_url(name, raw, SETTING_CHOICES[name], default)


def _init_settings() -> None:
    """The settings' session state on a session's first page: the link's values where they are
    valid, each refused or clamped value noted in one sentence (shown by load_report)."""
    qp = st.query_params
    if "s_preset" not in st.session_state:
        preset = "llm"
        if "preset" in qp:
            preset, problem = setting_from_url("preset", qp["preset"], "llm")
            if problem:
                appserver.notice(problem)
        st.session_state["s_preset"] = preset
    base = Settings.preset(st.session_state["s_preset"]).as_dict()
    for f in SETTING_FIELDS:
        k = "s_" + f
        if k in st.session_state:
            continue
        v = base[f]
        if f in URL_FIELDS and f in qp:
            v, problem = setting_from_url(f, qp[f], v)
            if problem:
                appserver.notice(problem)
        st.session_state[k] = v


def _apply_preset() -> None:
    name = st.session_state["w_s_preset"]
    st.session_state["s_preset"] = name
    for f, v in PRESETS[name].items():
        st.session_state["s_" + f] = v
        st.session_state["w_s_" + f] = v


#: The tab icon, served by the app itself: a ":material/...:" page icon makes the browser
#: fetch the SVG from fonts.gstatic.com (Streamlit's favicon route), which an offline lab
#: machine cannot reach and a privacy-minded user does not want.
FAVICON = str(Path(__file__).resolve().parents[1] / "data" / "favicon.png")


def page_config(title: str) -> None:
    """Tab title, icon and wide layout: the same on every page."""
    st.set_page_config(page_title=f"{title} · farms-viz", page_icon=FAVICON, layout="wide")


def page_setup(title: str) -> None:
    """A page that analyses the chosen model: page config plus the sidebar settings' state; the
    link's refused or corrected values, each in one sentence, at the top of the page."""
    page_config(title)
    _init_settings()
    current_spec()
    appserver.show_notices()


def sidebar_settings() -> Settings:
    """The analysis settings from the sidebar (plain-language help on each)."""
    _init_settings()
    sb = st.sidebar
    with sb:
        st.header("Analysis settings")
        persisted(st.selectbox, "Preset", "s_preset", options=list(PRESETS), on_change=_apply_preset,
                   format_func={"llm": "llm · transformers", "cnn": "cnn · conv nets"}.get,
                   help="The paper's settings for language models or for image classifiers; "
                        "choosing one resets the options below.")
        persisted(st.selectbox, "Power-law fit rule", "s_fit", options=list(FITS), format_func=FIT_LABELS.get,
                   help="How the start of the tail (xmin) is chosen before alpha is estimated. xmin_peak "
                        "follows the FARMS release exactly, including its lower bound (candidates below "
                        "log10(0.95 × peak) are skipped, so alpha can depend on the weights' scale); "
                        "ks equals WeightWatcher's fit.")
        st.caption(FIT_NOTES[st.session_state["s_fit"]])
        persisted(st.number_input, "xmin_pos", "s_xmin_pos", **SETTINGS["xmin_pos"].widget(),
                   disabled=st.session_state["s_fit"] != "xmin_mid",
                   help="Only for xmin_mid: the tail is the largest N / xmin_pos eigenvalues (2 = top half).")
        persisted(st.number_input, "FARMS window rows", "s_window", **SETTINGS["window"].widget(),
                   help="Rows of each FARMS submatrix (capped by the matrix's short side). "
                        "Bigger windows see more of the matrix; smaller ones give more samples.")
        persisted(st.number_input, "Window aspect ratio q", "s_q", **SETTINGS["q"].widget(),
                   help="Window columns = rows × q. FARMS keeps this fixed for every layer, so alpha no "
                        "longer depends on each matrix's own shape (q = 1: square windows).")
        persisted(st.number_input, "Windows per dimension (ops)", "s_ops", **SETTINGS["ops"].widget(),
                   help="How many overlapping windows FARMS slides along each side; the total is up to ops².")
        persisted(st.selectbox, "Conv layers (FARMS)", "s_conv_rule", options=list(CONV_RULES),
                  format_func=CONV_RULE_LABELS.get,
                  help="How FARMS windows a conv layer. release (default, the paper's CV numbers): each "
                       "kernel position's out × in slice, long side down, is cut into C × C blocks (C the "
                       "short side); block i is pooled over all kernel positions, fitted, and the block "
                       "alphas are averaged. grid: the window grid above on every slice, all pooled.")
        devices = ["cpu"] + (["cuda"] if _cuda() else [])
        if st.session_state["s_device"] not in devices:
            st.session_state["s_device"] = "cpu"
            st.session_state.pop("w_s_device", None)
        persisted(st.selectbox, "Device", "s_device", options=devices,
                   help="Where the eigenvalues are computed (cuda is listed only when a GPU is visible).")
        persisted(st.checkbox, "Include embeddings", "s_include_embeddings",
                   help="Also analyse token/position embedding matrices (skipped by default, as in the paper).")
        st.session_state.setdefault("s_ray_address", "")
        if serving.ray_allowed():  # served mode: a visitor must not make the server connect anywhere
            persisted(st.text_input, "Ray address", "s_ray_address", placeholder="empty: analyse here",
                      help="For big models: a running Ray cluster (e.g. 10.0.0.5:6379); each layer becomes a "
                           "Ray task that reads its tensor where it runs (needs pip install 'farms-viz[ray]'). "
                           "Empty: analyse in this process. Same numbers either way.")
    try:
        return Settings.preset(st.session_state["s_preset"],
                               **{f: st.session_state["s_" + f] for f in SETTING_FIELDS})
    except FarmsError as e:
        st.sidebar.error(str(e))
        return Settings.preset(st.session_state["s_preset"])


def _cuda() -> bool:
    try:
        import torch  # noqa: PLC0415
        return bool(torch.cuda.is_available())
    except Exception:  # noqa: BLE001
        return False


def current_spec() -> SourceSpec:
    """The source the pages show: session state, else the URL's ``model``, else the default.

    A ``model`` this server may not open (served mode: a path or hub id; any mode: a NUL byte, a
    3000-character value) is noted in one sentence and the default model is shown instead.
    """
    if "source" in st.session_state:
        return st.session_state["source"]
    model = st.query_params.get("model")
    default = SourceSpec("zoo", DEFAULT_MODEL)
    if not model:
        return default
    memo = st.session_state.get("_link_model")
    if memo is not None and memo[0] == model:  # decided (and said) once per link value
        return memo[1]
    try:
        spec = spec_from_param(model)
        admit(spec)
    except FarmsError as e:
        appserver.notice(f"{e} Showing {DEFAULT_MODEL} instead.")
        spec = default
    st.session_state["_link_model"] = (model, spec)
    return spec


def _sync_url(spec: SourceSpec, settings: Settings) -> None:
    qp = st.query_params
    param = spec.to_param()
    if param:
        if qp.get("model") != param:
            qp["model"] = param
    elif "model" in qp:
        del qp["model"]
    base = Settings.preset(st.session_state.get("s_preset", "llm"))
    want = {}
    if st.session_state.get("s_preset", "llm") != "llm":
        want["preset"] = st.session_state["s_preset"]
    for f in URL_FIELDS:
        if getattr(settings, f) != getattr(base, f):
            want[f] = str(getattr(settings, f))
    for f in ("preset",) + URL_FIELDS:
        if f in want:
            if qp.get(f) != want[f]:
                qp[f] = want[f]
        elif f in qp:
            del qp[f]


def load_report(requested: SourceSpec | None = None) -> Report | None:
    """Render the sidebar, analyse ``requested`` (or the current source) and return the report.

    A FarmsError is shown with ``st.error`` and the previously analysed source is kept.
    """
    settings = sidebar_settings()
    spec = requested or current_spec()
    appserver.show_notices()
    try:
        report = analyze_cached(spec, settings)
    except FarmsError as e:
        st.error(str(e))
        prev = st.session_state.get("source")
        if prev is None or prev == spec:
            return None
        try:
            report = analyze_cached(prev, settings)
        except FarmsError as e2:
            st.error(str(e2))
            return None
        st.caption(f"Still showing the previous model, **{prev.title}**.")
        spec = prev
    if st.session_state.get("source") != spec:
        st.session_state.pop("layer", None)
    st.session_state["source"] = spec
    _sync_url(spec, settings)
    return report


# ------------------------------------------------------------------ layers

def spectra_layers(report: Report) -> list[str]:
    """Layers with spectra, in model (table) order."""
    return [n for n in report.table["layer"] if n in report.spectra]


def current_layer(report: Report) -> str | None:
    names = spectra_layers(report)
    if not names:
        return None
    for cand in (st.session_state.get("layer"), st.query_params.get("layer")):
        if cand in names:
            return cand
    asked = st.query_params.get("layer")
    if asked is not None and st.session_state.get("layer") is None:
        st.warning(f"The link's layer {quote(asked)} is not a layer of {quote(report.name)} with spectra; "
                   f"showing the first one, {quote(names[0])}.", icon=":material/link_off:")
    return names[0]


def set_layer(name: str) -> None:
    st.session_state["layer"] = name
    if st.query_params.get("layer") != name:
        st.query_params["layer"] = name


def selected_layer(event) -> str | None:
    """The layer name of the first clicked point of a plotly selection event (customdata[0])."""
    try:
        points = event.selection.points if hasattr(event, "selection") else event["selection"]["points"]
    except (KeyError, TypeError, AttributeError):
        return None
    for p in points or []:
        cd = p.get("customdata") if isinstance(p, dict) else None
        if cd:
            return str(cd[0])
        if isinstance(p, dict) and isinstance(p.get("y"), str):
            return p["y"]
    return None


def open_layer(name: str) -> None:
    """Go to the layer browser showing ``name``."""
    set_layer(name)
    params = {"layer": name}
    spec = st.session_state.get("source")
    if spec is not None and spec.to_param():
        params["model"] = spec.to_param()
    st.switch_page(BROWSER, query_params=params)

