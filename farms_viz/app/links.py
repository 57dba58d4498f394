"""Streamlit glue of the pages' view controls in the URL (bounds.LINKS): read once, mirrored on every run.

A page calls :func:`restore` before its widgets: on the session's first visit each control's session
key takes the link's value (checked by :func:`farms_viz.app.bounds.read`, the widgets' own bounds) or
its default, and every refused or corrected value is one sentence at the top of the page. After
its widgets the page calls :func:`sync`: the values that differ from their defaults go into the
URL, the others leave it, so the address bar always reopens the view shown.
"""

from __future__ import annotations

import streamlit as st

from farms_viz.app import server as appserver
from farms_viz.app.bounds import LINKS, Param, Subset, read, url_text


def params(page: str, choices: dict | None = None) -> tuple[Param, ...]:
    """``page``'s link parameters, a Subset's choices filled from ``choices`` (by URL key)."""
    out = []
    for p in LINKS[page]:
        if isinstance(p.rule, Subset) and choices and p.url in choices:
            p = Param(p.url, p.key, p.default, Subset(tuple(choices[p.url]), p.rule.empty))
        elif choices and p.url in choices:  # a choice the page narrows (served mode: no folders)
            p = Param(p.url, p.key, p.default, tuple(choices[p.url]))
        out.append(p)
    return tuple(out)


def restore(page: str, choices: dict | None = None) -> dict:
    """Fill ``page``'s session keys on a first visit (the link's values, else the defaults), keep a
    kept value within today's ``choices`` (another model has other layer kinds), show the link's
    problems; return the values by URL key."""
    qp = st.query_params
    state = st.session_state
    for p in params(page, choices):
        if p.key not in state:
            value = p.default
            if p.url in qp:
                value, problem = read(p.url, qp[p.url], p.rule, p.default)
                if problem:
                    appserver.notice(problem)
            state[p.key] = list(value) if isinstance(p.rule, Subset) else value
        elif isinstance(p.rule, Subset) and p.rule.choices is not None:
            state[p.key] = [v for v in state[p.key] if v in p.rule.choices]
        elif isinstance(p.rule, tuple) and state[p.key] not in p.rule:
            state[p.key] = p.default
    appserver.show_notices()
    return {p.url: state[p.key] for p in LINKS[page]}


def sync(page: str) -> None:
    """Mirror ``page``'s values that differ from their defaults in the URL; drop the others."""
    qp = st.query_params
    for p in LINKS[page]:
        value = st.session_state.get(p.key, p.default)
        same = (list(value) == list(p.default)) if isinstance(p.rule, Subset) else value == p.default
        if not same:
            text = url_text(value)
            if qp.get(p.url) != text:
                qp[p.url] = text
        elif p.url in qp:
            del qp[p.url]


def keep_choice(key: str) -> None:
    """on_change of a segmented control whose value lives in ``key``: a click that deselects keeps it."""
    value = st.session_state["w_" + key]
    if value is not None:
        st.session_state[key] = value
