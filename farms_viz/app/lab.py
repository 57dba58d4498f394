"""Streamlit glue of the aspect-ratio lab: its state (session + URL), presets and cached runs.

Session keys are ``lab_<name>`` (widgets ``w_lab_<name>``, see :func:`appstate.persisted`);
every value that differs from its default is mirrored in the URL under ``<name>``, so a
teacher can share the exact lab view as a link.
"""

from __future__ import annotations

from collections import OrderedDict

import streamlit as st

from farms_viz.analyses import lab
from farms_viz.app import server as appserver
from farms_viz.app.bounds import FLAG, LAB, LAB_CHOICES, quote, read
from farms_viz.app.state import memo, persisted
from farms_viz.errors import FarmsError

VIEWS = {"matrix": "One matrix", "sweep": "α vs aspect ratio (sweep)"}
DEFAULTS: dict = dict(view="matrix", rows=1000, cols=1000, dist="gaussian", nu=3.0, mu=1.5, strength=2.0,
                      rank=3, seed=0, q4=False, win=0, per_dim=lab.PER_DIM, fit=lab.FIT, log=False,
                      mode="short", size=256, seeds=5)
CHOICES = {"view": tuple(VIEWS), **LAB_CHOICES}
PRESETS: dict[str, dict] = {
    "Pure noise, tall matrix": dict(rows=2000, cols=250),
    "Heavy-tailed": dict(rows=1000, cols=500, dist="pareto", mu=1.5, log=True),
    "Planted signal": dict(rows=1000, cols=500, dist="planted", strength=2.0, rank=3),
    "Bias sweep": dict(view="sweep"),
}
PRESET_ICONS = {"Pure noise, tall matrix": ":material/grain:", "Heavy-tailed": ":material/show_chart:",
                "Planted signal": ":material/scatter_plot:", "Bias sweep": ":material/ssid_chart:"}
MAX_SWEEPS = 8
MAX_RESULTS = 24


def from_link(name: str, raw: str):
    """``(value, problem)``: the link's ``name=raw`` checked against the bounds the lab's widget uses."""
    default = DEFAULTS[name]
    rule = FLAG if isinstance(default, bool) else LAB[name] if name in LAB else CHOICES[name]
    return read(name, raw, rule, default)


def init() -> None:
    """Fill the lab's session state from the URL (first visit) or the defaults; each refused or
    clamped link value is noted in one sentence (see show_notices)."""
    qp = st.query_params
    for name, default in DEFAULTS.items():
        key = "lab_" + name
        if key in st.session_state:
            continue
        value = default
        if name in qp:
            value, problem = from_link(name, qp[name])
            if problem:
                appserver.notice(problem)
        st.session_state[key] = value


def get(name: str):
    return st.session_state["lab_" + name]


def apply_preset(name: str) -> None:
    """Every lab value to its default, then the preset's values (one click gives one exact view)."""
    for k, v in {**DEFAULTS, **PRESETS[name]}.items():
        st.session_state["lab_" + k] = v


def sync_url() -> None:
    """Mirror the values that differ from the defaults in the URL; drop the others."""
    qp = st.query_params
    for name, default in DEFAULTS.items():
        value = st.session_state["lab_" + name]
        if value != default:
            text = ("1" if value else "0") if isinstance(value, bool) else f"{value:g}" if isinstance(value, float) \
                else str(value)
            if qp.get(name) != text:
                qp[name] = text
        elif name in qp:
            del qp[name]


def keep_choice(name: str) -> None:
    """on_change of a segmented control: copy its value, but a click that deselects keeps the old one."""
    value = st.session_state["w_lab_" + name]
    if value is not None:
        st.session_state["lab_" + name] = value


def widget(kind, label: str, name: str, **kw):
    """A lab widget whose value lives in ``lab_<name>``."""
    return persisted(kind, label, "lab_" + name, **kw)


def matrix_spec() -> lab.MatrixSpec:
    return lab.MatrixSpec(rows=get("rows"), cols=get("cols"), dist=get("dist"), nu=get("nu"), mu=get("mu"),
                          strength=get("strength"), rank=min(get("rank"), get("rows"), get("cols")),
                          seed=get("seed"), q4_1=get("q4"))


def settings_for(rows: int, cols: int):
    return lab.lab_settings(rows, cols, get("win") or None, get("per_dim"), get("fit"))


@st.cache_resource(show_spinner=False)
def _results() -> OrderedDict:
    """Lab results by (matrix spec or upload digest, window, per_dim, fit), least recently used first."""
    return OrderedDict()


def matrix_result(spec: lab.MatrixSpec) -> lab.LabResult:
    """The analysis of ``spec``'s matrix under the lab's settings: cached, else computed in a
    slot of the server's job budget (queued behind other visitors' jobs)."""
    window, per_dim, fit = get("win") or None, get("per_dim"), get("fit")
    return memo(_results(), (spec, window, per_dim, fit), MAX_RESULTS, f"a {spec.rows} × {spec.cols} matrix",
                lambda: lab.run_matrix(spec, lab.lab_settings(spec.rows, spec.cols, window, per_dim, fit)))


def upload_result(upload) -> lab.LabResult:
    """The analysis of an uploaded .npy (an ``st.file_uploader`` file): keyed by Streamlit's id of that
    upload (hashing the bytes on every rerun cost ~0.1-0.3 s for a 128 MB matrix), so the bytes
    themselves are read only while the matrix is made, never kept in a cache."""
    window, per_dim, fit = get("win") or None, get("per_dim"), get("fit")

    def compute() -> lab.LabResult:
        w = lab.load_npy(upload.getvalue(), upload.name)
        return lab.run_matrix(None, lab.lab_settings(*w.shape, window, per_dim, fit), w=w, name=upload.name)

    key = ("upload", getattr(upload, "file_id", upload.name), upload.name, window, per_dim, fit)
    return memo(_results(), key, MAX_RESULTS, f"the uploaded matrix {quote(upload.name)}", compute)


@st.cache_resource(show_spinner=False)
def _sweeps() -> OrderedDict:
    return OrderedDict()


def sweep_result(spec: lab.MatrixSpec) -> lab.SweepResult:
    """The bias sweep of ``spec``'s distribution under the lab's sweep settings, with a progress bar."""
    args = (spec.dist, spec.nu, spec.mu, spec.strength, spec.rank, spec.seed, get("mode"), get("size"),
            get("seeds"), get("per_dim"), get("fit"))
    return memo(_sweeps(), args, MAX_SWEEPS, "a bias sweep", lambda: _compute_sweep(spec))


def _compute_sweep(spec: lab.MatrixSpec) -> lab.SweepResult:
    bar = st.progress(0.0, text="Starting the sweep …")

    def progress(done: int, total: int, what: str) -> None:
        appserver.step()  # the visitor has gone: no more matrices
        bar.progress(done / total if total else 1.0,
                     text=f"Sweep: matrix {done + 1} of {total} — {what}" if done < total else "Done.")

    try:
        return lab.sweep(spec, mode=get("mode"), size=get("size"), n_seeds=get("seeds"),
                         per_dim=get("per_dim"), fit=get("fit"), progress=progress)
    finally:
        bar.empty()


def entries_words(spec: lab.MatrixSpec) -> str:
    """The matrix maker's entries in a few words: ``pareto μ 1.5``, ``planted θ 2, rank 3``."""
    param = {"student_t": f" ν {spec.nu:g}", "pareto": f" μ {spec.mu:g}",
             "planted": f" θ {spec.strength:g}, rank {spec.rank}"}.get(spec.dist, "")
    return spec.dist + param


def matrix_context(spec: lab.MatrixSpec, rows: int, cols: int, upload_name: str | None = None):
    """``(lines, file parts)`` of the matrix view's figures: what the matrix is, and the fit rule, for the
    title's context lines (two short ones: a lab chart is ~175 px wide at 1024 px) and the PNG's file name."""
    what = upload_name or f"{entries_words(spec)}, seed {spec.seed}"
    seed = None if upload_name else f"seed{spec.seed}"
    return (what, f"fit {get('fit')}"), ("lab", upload_name or spec.dist, f"{rows}x{cols}", seed, get("fit"))


def sweep_context(res: lab.SweepResult):
    """``(lines, file parts)`` of the sweep's figure and CSV: the fit rule and the FARMS windows."""
    line = f"fit {get('fit')} · FARMS windows {res.window} × {res.window}, up to {res.per_dim} per side"
    return (line,), ("lab-sweep", entries_words(res.dist), res.mode, res.size, f"seeds{len(res.seeds)}", get("fit"))


__all__ = ["FarmsError", "init", "get", "apply_preset", "sync_url", "widget", "matrix_spec", "matrix_result",
           "upload_result", "sweep_result", "settings_for", "matrix_context", "sweep_context", "PRESETS", "PRESET_ICONS", "VIEWS", "DEFAULTS"]
