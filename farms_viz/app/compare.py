"""Streamlit glue of the compare page: a source picker per side and the cached analysis of many reports.

Reports come from :func:`farms_viz.app.state.analyze_cached` (the app's one cached analysis, with its
progress bar); this module keeps its own larger LRU of them too, so a series of checkpoints plus
A and B never pushes each other out of the app's smaller store. Session keys: ``cmp_<side>_<field>``
(side ``a`` / ``b``) for the pickers, ``cmp_match`` (how layers pair up; ``?match=`` in the URL
when not ``auto``), ``cmp_view``, ``cmp_series_*`` for the series.
"""

from __future__ import annotations

from collections import OrderedDict

import streamlit as st

from farms_viz.app import server as appserver
from farms_viz.app import state as app
from farms_viz.app.bounds import COMPARE_CHOICES, choice_from_url
from farms_viz.errors import FarmsError
from farms_viz.pipeline.analyze import Report
from farms_viz.settings import Settings

MAX_COMPARE_REPORTS = 16
DEFAULTS = {"a": "minilm-init", "b": "minilm", "match": "auto"}
MATCH_LABELS = {"auto": "names (a prefix or suffix one side adds is stripped)", "name": "exact names",
                "order": "shape and order"}
KINDS = ("zoo", "path", "upload")


@st.cache_resource(show_spinner=False)
def _store() -> OrderedDict:
    return OrderedDict()


def analyze_cached(spec: app.SourceSpec, settings: Settings) -> Report:
    """The report of ``spec`` under ``settings``: the app's cached analysis, kept in a larger LRU here."""
    store = _store()
    key = app.cache_key(spec, settings)
    report = app.cached(store, key)
    if report is not None:
        return report
    report = app.analyze_cached(spec, settings)
    store[key] = report
    while len(store) > MAX_COMPARE_REPORTS:
        store.popitem(last=False)
    return report


def _init(side: str, names: list[str]) -> None:
    qp_value = st.query_params.get(side)
    default = DEFAULTS[side] if DEFAULTS[side] in names else names[0]
    kind, zoo, path = "zoo", default, ""
    if qp_value and f"cmp_{side}_kind" not in st.session_state:
        try:
            spec = app.spec_from_param(qp_value)
            app.admit(spec)
        except FarmsError as e:
            appserver.notice(f"Checkpoint {side.upper()}: {e} Showing {default} instead.")
            spec = app.SourceSpec("zoo", default)
        if spec.kind == "zoo":
            zoo = spec.value
        elif spec.kind == "path":
            kind, path = "path", spec.value
    for field, v in (("kind", kind), ("zoo", zoo), ("path", path)):
        st.session_state.setdefault(f"cmp_{side}_{field}", v)


def source_picker(side: str) -> app.SourceSpec | None:
    """Pick checkpoint ``side`` (``a`` or ``b``) from the zoo, a local path or an upload; None until given."""
    entries = app.zoo_entries()
    names = [n for n, _ in entries]
    summaries = dict(entries)
    _init(side, names)
    letter = side.upper()
    kinds = [k for k in KINDS if k in app.source_kinds()]  # served mode: no paths
    if st.session_state[f"cmp_{side}_kind"] not in kinds:
        st.session_state[f"cmp_{side}_kind"] = "zoo"
    kind = app.persisted(st.radio, f"Checkpoint {letter} from", f"cmp_{side}_kind", options=kinds,
                         format_func=app.SOURCE_KINDS.get, horizontal=True)
    if kind == "zoo":
        name = app.persisted(st.selectbox, f"Model {letter}", f"cmp_{side}_zoo", options=names,
                             format_func=lambda n: f"{n} — {summaries.get(n, '')}",
                             help="Models that ship with farms-viz and work offline.")
        return app.SourceSpec("zoo", name)
    if kind == "path":
        path = app.persisted(st.text_input, f"Path of {letter}", f"cmp_{side}_path",
                             placeholder="model.safetensors  or  a Hugging Face folder  or  weights.pt",
                             help="A .safetensors file, a Hugging Face model folder or a .pt/.bin state dict. "
                                  "Press Enter to analyse.")
        return app.SourceSpec("path", path.strip()) if path.strip() else None
    limit = st.get_option("server.maxUploadSize")
    up = st.file_uploader(f"Weights file {letter} (.safetensors, .pt, .bin; up to {limit} MB)",
                          type=["safetensors", "pt", "pth", "bin"], key=f"w_cmp_{side}_upload")
    if up is None:
        return None
    try:
        return app.SourceSpec("upload", str(app.save_upload(f"cmp_{side}", up)), label=up.name)
    except FarmsError as e:
        st.error(str(e))
        return None


def match_picker() -> str:
    """How layers of A and B pair up (one of MATCH_MODES): the link's ``match`` on a first visit
    (a value not in the list is noted in one sentence and ``auto`` used), then the widget's."""
    if "cmp_match" not in st.session_state:
        value, problem = DEFAULTS["match"], None
        if "match" in st.query_params:
            value, problem = choice_from_url("match", st.query_params["match"], COMPARE_CHOICES["match"],
                                             DEFAULTS["match"])
        if problem:
            appserver.notice(problem)
        st.session_state["cmp_match"] = value
    return app.persisted(st.radio, "Match layers by", "cmp_match", options=list(COMPARE_CHOICES["match"]),
                         format_func=MATCH_LABELS.get, horizontal=True,
                         help="Names: exact names first; if they do not pair every layer, the names without a "
                              "prefix or suffix one side adds (model., bert., .weight_orig). Exact names: no "
                              "stripping. Shape and order: names ignored, the i-th layer of a shape in A with the "
                              "i-th layer of that shape in B.")


def sync_url(a: app.SourceSpec | None, b: app.SourceSpec | None, match: str = "auto") -> None:
    """Put A and B into the URL (``?a=...&b=...``) where they can be shared (not uploads), and
    ``match`` when it is not ``auto``."""
    want = {side: spec.to_param() if spec is not None else None for side, spec in (("a", a), ("b", b))}
    want["match"] = match if match != DEFAULTS["match"] else None
    qp = st.query_params
    for name, param in want.items():
        if param:
            if qp.get(name) != param:
                qp[name] = param
        elif name in qp:
            del qp[name]


def analyze_pair(a: app.SourceSpec, b: app.SourceSpec, settings: Settings) -> tuple[Report | None, Report | None]:
    """Both reports (cached); a side that fails shows its sentence with ``st.error`` and is None."""
    out = []
    for letter, spec in (("A", a), ("B", b)):
        try:
            out.append(analyze_cached(spec, settings))
        except FarmsError as e:
            st.error(f"Checkpoint {letter} ({spec.title}): {e}")
            out.append(None)
    return out[0], out[1]


def analyse_series(items: list[tuple[str, app.SourceSpec]], settings: Settings) -> list[tuple[str, Report]]:
    """The reports of a series in order (cached), with an overall progress bar; failures are shown and skipped."""
    store = _store()
    try:
        todo = sum(app.cache_key(s, settings) not in store for _, s in items)
    except FarmsError:  # a refused source: its own sentence comes from analyze_cached() below
        todo = len(items)
    bar = st.progress(0.0, text=f"Analysing {len(items)} checkpoints …") if todo else None
    out = []
    try:
        for i, (label, spec) in enumerate(items):
            if bar is not None:
                bar.progress(i / len(items), text=f"Checkpoint {i + 1} of {len(items)}: {label} ({spec.title})")
            try:
                out.append((label, analyze_cached(spec, settings)))
            except FarmsError as e:
                st.error(f"{label} ({spec.title}): {e}")
    finally:
        if bar is not None:
            bar.empty()
    return out


def settings_text(settings: Settings) -> str:
    """The preset and the settings in words (``Settings.describe``)."""
    return f"preset {st.session_state.get('s_preset', 'llm')} · {settings.describe()}"
