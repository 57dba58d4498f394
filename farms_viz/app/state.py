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

from farms_viz.analyses.rules import rule_table
from farms_viz.analyses.story import most_moved_layer
from farms_viz.analyses.traps import LayerTraps, layer_trap_entries
from farms_viz.app import server as appserver
from farms_viz.app import serving
from farms_viz.app.bounds import quote
from farms_viz.app.server import save_upload  # noqa: F401 (the pages' one import)
from farms_viz.app.sidebar import (
    URL_FIELDS,
    apply_preset,
    init_settings,
    persisted,  # noqa: F401 (the pages reach it through this module)
    sidebar_settings,
)
from farms_viz.app.sources import (  # noqa: F401 (the pages reach these through this module)
    DEFAULT_MODEL,
    SOURCE_KINDS,
    SourceSpec,
    admit,
    content_id,
    in_user_words,
    source_kinds,
    spec_from_param,
    target,
    zoo_entries,
)
from farms_viz.errors import FarmsError
from farms_viz.pipeline.analyze import Report, analyze
from farms_viz.settings import Settings
from farms_viz.zoo.registry import published_settings

HOME = "app.py"
OVERVIEW = "pages/1_Model_overview.py"
BROWSER = "pages/2_Layer_browser.py"
ALLOCATIONS = "pages/3_Allocations.py"
LAB = "pages/5_Lab.py"
MAX_REPORTS = 6


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
    try:
        return memo(_store(), cache_key(spec, settings), MAX_REPORTS, f"analysing {quote(spec.title)}",
                    lambda: _compute(spec, settings))
    except FarmsError as e:  # the library names the server's copy of an upload and gives CLI advice
        raise FarmsError(in_user_words(str(e), spec)) from None


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

#: The tab icon, served by the app itself: a ":material/...:" page icon makes the browser
#: fetch the SVG from fonts.gstatic.com (Streamlit's favicon route), which an offline lab
#: machine cannot reach and a privacy-minded user does not want.
FAVICON = str(Path(__file__).resolve().parents[1] / "data" / "favicon.png")


def through_navigation() -> None:
    """Rerun once through app.py's ``st.navigation`` when Streamlit ran a page without it.

    On a fresh server Streamlit's first run treats the ``pages/`` folder as a v1 multipage app: a
    page URL opened directly (``/Layer_browser``) runs that page alone and the sidebar lists the
    main page as "app". The rerun runs app.py, whose navigation keeps the same page (the same
    url_path, so the same page hash) and names the main page Home.
    """
    from streamlit.runtime.pages_manager import PagesManager  # no public switch for the v1 mode

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


def page_config(title: str) -> None:
    """Tab title, icon and wide layout: the same on every page."""
    through_navigation()
    st.set_page_config(page_title=f"{title} · farms-viz", page_icon=FAVICON, layout="wide")


def page_setup(title: str) -> None:
    """A page that analyses the chosen model: page config plus the sidebar settings' state; the
    link's refused or corrected values, each in one sentence, at the top of the page."""
    page_config(title)
    init_settings()
    current_spec()
    appserver.show_notices()


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


def use_setting(name: str, value) -> None:
    """A button's callback: set one sidebar setting (the next run analyses with it)."""
    st.session_state["s_" + name] = value


use_preset = apply_preset


def use_zoo_model(name: str) -> None:
    """A button's callback on Home: pick the zoo model ``name`` (the picker shows it on the next run)."""
    st.session_state["pick_kind"] = "zoo"
    st.session_state["pick_zoo"] = name


def locked_reason(spec: SourceSpec) -> str | None:
    """Why the sidebar cannot change what ``spec`` shows (published metrics), or None."""
    published = published_settings(spec.value) if spec.kind == "zoo" else None
    if published is not None:
        return (f"{spec.value} holds published α only (no weights), so these settings cannot change its numbers. "
                f"They were computed with: {published.describe()}.")
    return None


def load_report(requested: SourceSpec | None = None) -> Report | None:
    """Render the sidebar, analyse ``requested`` (or the current source) and return the report.

    A FarmsError is shown with ``st.error`` and the previously analysed source is kept.
    """
    spec = requested or current_spec()
    settings = sidebar_settings(locked_reason(spec))
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
    first = most_moved_layer(report.table, names) or names[0]
    asked = st.query_params.get("layer")
    if asked is not None and st.session_state.get("layer") is None:
        st.warning(f"The link's layer {quote(asked)} is not a layer of {quote(report.name)} with spectra; "
                   f"showing the layer whose α FARMS moves most, {quote(first)}.", icon=":material/link_off:")
    return first


def rules_cached(report: Report):
    """The report's alphas under every fit rule (analyses.rules.rule_table), computed once per report."""
    key = (report.name, report.settings.key(), id(report))
    store = _rules_store()
    hit = cached(store, key)
    if hit is not None and hit[0] is report:
        return hit[1]
    table = rule_table(report)
    store[key] = (report, table)
    while len(store) > MAX_REPORTS:
        store.popitem(last=False)
    return table


@st.cache_resource(show_spinner=False)
def _traps_store() -> OrderedDict:
    """Trap entries by (report key, layer)."""
    return OrderedDict()


#: layers whose trap entries are kept (each a few dozen positions)
MAX_TRAP_LAYERS = 64


def trap_entries_cached(report: Report, layer: str) -> LayerTraps:
    """The entries behind ``layer``'s raw correlation traps (analyses.traps), searched once per
    (report, layer) in a slot of the job budget: the layer's matrix is read again."""
    spec = st.session_state.get("source") or current_spec()
    key = (cache_key(spec, report.settings), layer)
    try:
        return memo(_traps_store(), key, MAX_TRAP_LAYERS, f"finding the trap entries of {quote(layer)}",
                    lambda: layer_trap_entries(target(spec), layer, report.settings))
    except FarmsError as e:  # the file went away since the analysis: say so, keep the page
        return LayerTraps(None, f"The entries behind them could not be searched: {in_user_words(str(e), spec)}")


@st.cache_resource(show_spinner=False)
def _rules_store() -> OrderedDict:
    """Rule tables by report (the report is kept beside its table: an id is only unique while alive)."""
    return OrderedDict()


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

