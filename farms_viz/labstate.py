"""Streamlit glue of the aspect-ratio lab: its state (session + URL), presets and cached runs.

Session keys are ``lab_<name>`` (widgets ``w_lab_<name>``, see :func:`appstate.persisted`);
every value that differs from its default is mirrored in the URL under ``<name>``, so a
teacher can share the exact lab view as a link.
"""

from __future__ import annotations

from collections import OrderedDict

import streamlit as st

from . import lab
from .appstate import persisted
from .config import FITS
from .errors import FarmsError

VIEWS = {"matrix": "One matrix", "sweep": "α vs aspect ratio (sweep)"}
DEFAULTS: dict = dict(view="matrix", rows=1000, cols=1000, dist="gaussian", nu=3.0, mu=1.5, strength=2.0,
                      rank=3, seed=0, win=0, per_dim=lab.PER_DIM, fit=lab.FIT, log=False,
                      mode="short", size=256, seeds=5)
CHOICES = {"view": VIEWS, "dist": lab.DISTRIBUTIONS, "fit": FITS, "mode": lab.SWEEP_MODES}
PRESETS: dict[str, dict] = {
    "Pure noise, tall matrix": dict(rows=2000, cols=250),
    "Heavy-tailed": dict(rows=1000, cols=500, dist="pareto", mu=1.5, log=True),
    "Planted signal": dict(rows=1000, cols=500, dist="planted", strength=2.0, rank=3),
    "Bias sweep": dict(view="sweep"),
}
PRESET_ICONS = {"Pure noise, tall matrix": ":material/grain:", "Heavy-tailed": ":material/show_chart:",
                "Planted signal": ":material/scatter_plot:", "Bias sweep": ":material/ssid_chart:"}
MAX_SWEEPS = 8


def _cast(name: str, raw: str):
    default = DEFAULTS[name]
    if isinstance(default, bool):
        return raw.lower() in ("1", "true", "yes", "on")
    value = type(default)(raw)
    if name in CHOICES and value not in CHOICES[name]:
        raise ValueError(raw)
    return value


def init() -> None:
    """Fill the lab's session state from the URL (first visit) or the defaults."""
    qp = st.query_params
    for name, default in DEFAULTS.items():
        key = "lab_" + name
        if key in st.session_state:
            continue
        value = default
        if name in qp:
            try:
                value = _cast(name, qp[name])
            except ValueError:
                pass
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
                          seed=get("seed"))


def settings_for(rows: int, cols: int):
    return lab.lab_settings(rows, cols, get("win") or None, get("per_dim"), get("fit"))


@st.cache_data(max_entries=24, show_spinner=False)
def _run(spec: lab.MatrixSpec, window: int | None, per_dim: int, fit: str) -> lab.LabResult:
    return lab.run_matrix(spec, lab.lab_settings(spec.rows, spec.cols, window, per_dim, fit))


@st.cache_data(max_entries=4, show_spinner=False)
def _run_upload(data: bytes, name: str, window: int | None, per_dim: int, fit: str) -> lab.LabResult:
    w = lab.load_npy(data, name)
    return lab.run_matrix(None, lab.lab_settings(*w.shape, window, per_dim, fit), w=w, name=name)


def matrix_result(spec: lab.MatrixSpec) -> lab.LabResult:
    """The analysis of ``spec``'s matrix under the lab's settings (cached)."""
    return _run(spec, get("win") or None, get("per_dim"), get("fit"))


def upload_result(name: str, data: bytes) -> lab.LabResult:
    return _run_upload(data, name, get("win") or None, get("per_dim"), get("fit"))


@st.cache_resource(show_spinner=False)
def _sweeps() -> OrderedDict:
    return OrderedDict()


def sweep_result(spec: lab.MatrixSpec) -> lab.SweepResult:
    """The bias sweep of ``spec``'s distribution under the lab's sweep settings, with a progress bar."""
    args = (spec.dist, spec.nu, spec.mu, spec.strength, spec.rank, spec.seed, get("mode"), get("size"),
            get("seeds"), get("per_dim"), get("fit"))
    store = _sweeps()
    if args in store:
        store.move_to_end(args)
        return store[args]
    bar = st.progress(0.0, text="Starting the sweep …")

    def progress(done: int, total: int, what: str) -> None:
        bar.progress(done / total if total else 1.0,
                     text=f"Sweep: matrix {done + 1} of {total} — {what}" if done < total else "Done.")

    try:
        result = lab.sweep(spec, mode=get("mode"), size=get("size"), n_seeds=get("seeds"),
                           per_dim=get("per_dim"), fit=get("fit"), progress=progress)
    finally:
        bar.empty()
    store[args] = result
    while len(store) > MAX_SWEEPS:
        store.popitem(last=False)
    return result


__all__ = ["FarmsError", "init", "get", "apply_preset", "sync_url", "widget", "matrix_spec", "matrix_result",
           "upload_result", "sweep_result", "settings_for", "PRESETS", "PRESET_ICONS", "VIEWS", "DEFAULTS"]
