"""The sidebar's analysis settings: their session state, the link's values, the widgets.

Session keys ``s_<field>`` hold the settings (one per :data:`SETTING_FIELDS`); widgets use
``w_<key>`` and copy into those keys (see :func:`persisted`), so values survive page switches.
"""

from __future__ import annotations

import streamlit as st

from farms_viz.app import server as appserver
from farms_viz.app import serving
from farms_viz.app.bounds import SETTING_CHOICES, SETTINGS, choice_from_url, from_url
from farms_viz.errors import FarmsError
from farms_viz.settings import CONV_RULES, FITS, PRESETS, SETTING_FIELDS, Settings

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
URL_FIELDS = ("fit", "xmin_pos", "window", "q", "ops", "conv_rule", "seed")
CONV_RULE_LABELS = {"release": "release · C × C blocks", "grid": "grid · window grid"}


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


def init_settings() -> None:
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


def apply_preset(name: str) -> None:
    """Switch to a preset: its name and every setting it names (a callback; widgets follow next run)."""
    st.session_state["s_preset"] = name
    for f, v in PRESETS[name].items():
        st.session_state["s_" + f] = v
        st.session_state["w_s_" + f] = v


def _apply_preset() -> None:
    apply_preset(st.session_state["w_s_preset"])


def sidebar_settings(locked: str | None = None) -> Settings:
    """The analysis settings from the sidebar (plain-language help on each). ``locked``: why the
    settings cannot change what is shown (published metrics): the widgets are disabled and say so."""
    init_settings()
    sb = st.sidebar
    off = locked is not None
    with sb:
        st.header("Analysis settings")
        if off:
            st.info(locked, icon=":material/lock:")
        persisted(st.selectbox, "Preset", "s_preset", options=list(PRESETS), on_change=_apply_preset, disabled=off,
                   format_func={"llm": "llm · transformers", "cnn": "cnn · conv nets"}.get,
                   help="The paper's settings for language models or for image classifiers; "
                        "choosing one resets the options below.")
        persisted(st.selectbox, "Power-law fit rule", "s_fit", options=list(FITS), format_func=FIT_LABELS.get, disabled=off,
                   help="How the start of the tail (xmin) is chosen before alpha is estimated. xmin_peak "
                        "follows the FARMS release exactly, including its lower bound (candidates below "
                        "log10(0.95 × peak) are skipped, so alpha can depend on the weights' scale); "
                        "ks equals WeightWatcher's fit.")
        st.caption(FIT_NOTES[st.session_state["s_fit"]])
        persisted(st.number_input, "xmin_pos", "s_xmin_pos", **SETTINGS["xmin_pos"].widget(),
                   disabled=off or st.session_state["s_fit"] != "xmin_mid",
                   help="Only for xmin_mid: the tail is the largest N / xmin_pos eigenvalues (2 = top half).")
        persisted(st.number_input, "FARMS window rows", "s_window", **SETTINGS["window"].widget(), disabled=off,
                   help="Rows of each FARMS submatrix (capped by the matrix's short side). "
                        "Bigger windows see more of the matrix; smaller ones give more samples.")
        persisted(st.number_input, "Window aspect ratio q", "s_q", **SETTINGS["q"].widget(), disabled=off,
                   help="Window columns = rows × q. FARMS keeps this fixed for every layer, so alpha no "
                        "longer depends on each matrix's own shape (q = 1: square windows).")
        persisted(st.number_input, "Windows per dimension (ops)", "s_ops", **SETTINGS["ops"].widget(), disabled=off,
                   help="How many overlapping windows FARMS slides along each side; the total is up to ops².")
        persisted(st.selectbox, "Conv layers (FARMS)", "s_conv_rule", options=list(CONV_RULES),
                  format_func=CONV_RULE_LABELS.get, disabled=off,
                  help="How FARMS windows a conv layer. release (default, the paper's CV numbers): each "
                       "kernel position's out × in slice, long side down, is cut into C × C blocks (C the "
                       "short side); block i is pooled over all kernel positions, fitted, and the block "
                       "alphas are averaged. grid: the window grid above on every slice, all pooled.")
        persisted(st.checkbox, "Randomized ESD (correlation traps)", "s_randomize", disabled=off,
                  help="Also the ESD of the element-wise shuffled matrix (WeightWatcher's randomize=True): its "
                       "eigenvalues beyond the MP bulk edge are correlation traps, caused by a few large entries. "
                       "Costs one more eigendecomposition per layer.")
        persisted(st.number_input, "Shuffle seed", "s_seed", **SETTINGS["seed"].widget(),
                  disabled=off or not st.session_state["s_randomize"],
                  help="The seed of the shuffle: the same seed gives the same randomized ESD.")
        devices = ["cpu"] + (["cuda"] if _cuda() else [])
        if st.session_state["s_device"] not in devices:
            st.session_state["s_device"] = "cpu"
            st.session_state.pop("w_s_device", None)
        persisted(st.selectbox, "Device", "s_device", options=devices, disabled=off,
                   help="Where the eigenvalues are computed (cuda is listed only when a GPU is visible).")
        persisted(st.checkbox, "Include embeddings", "s_include_embeddings", disabled=off,
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


