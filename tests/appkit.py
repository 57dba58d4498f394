"""Shared helpers for the AppTest tests (streamlit.testing.v1).

Imported as ``from appkit import ...``: pytest's default (prepend) import mode puts tests/ on sys.path.
"""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
#: seconds one script run may take
TIMEOUT = 120


def small_app(script: str = APP, *, ops: int = 3, timeout: float = TIMEOUT, **state) -> AppTest:
    """``script`` under AppTest with small FARMS settings (``s_ops``: 3 x 3 windows, so each analysis
    takes seconds) and every other keyword put into session_state as given."""
    at = AppTest.from_file(script, default_timeout=timeout)
    at.session_state["s_ops"] = ops
    for k, v in state.items():
        at.session_state[k] = v
    return at


def linked_app(script: str = APP, *, s_ops: int | None = None, **query) -> AppTest:
    """``script`` opened from a link: ``query`` as its URL parameters (the sidebar's ``s_ops`` set
    only when given, so small analyses stay fast)."""
    at = AppTest.from_file(script, default_timeout=TIMEOUT)
    if s_ops is not None:
        at.session_state["s_ops"] = s_ops
    for k, v in query.items():
        at.query_params[k] = v
    return at


def warnings(at) -> list[str]:
    """The texts of the page's st.warning boxes."""
    return [w.value for w in at.warning]


def ok(at: AppTest) -> AppTest:
    """``at`` after checking that its last run raised no exception."""
    assert not at.exception, [e.value for e in at.exception]
    return at


def metrics(at) -> dict:
    """The page's st.metric values by label."""
    return {m.label: m.value for m in at.metric}


def charts(at) -> int:
    """How many Plotly charts the page shows."""
    return len(at.get("plotly_chart"))
