"""Streamlit glue for a server many visitors share: the heavy-job queue, per-session uploads, link notices.

- :func:`job` holds one slot of the process-wide :class:`~farms_viz.app.budget.JobBudget` around a heavy
  computation, shows "waiting for N jobs ahead" while it queues, and gives up when its session
  has gone (tab closed) or asked for another run; :func:`step` is the check between a job's steps.
- :func:`upload_folder` is the session's private :class:`~farms_viz.app.uploads.UploadFolder`, deleted
  by Streamlit when the session ends (a session-scoped ``cache_resource`` with ``on_release``).
- :func:`notice` / :func:`show_notices`: one sentence per refused or corrected link value, shown
  once on the page (``st.warning``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
from contextlib import contextmanager
from pathlib import Path

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from farms_viz.app.budget import Cancelled, JobBudget
from farms_viz.app.uploads import UploadFolder
from farms_viz.errors import FarmsError

NOTICES = "_link_notices"


# ------------------------------------------------------------------ notices

def notice(sentence: str) -> None:
    """Queue ``sentence`` for :func:`show_notices` (once per run, however often it is raised)."""
    queued = st.session_state.setdefault(NOTICES, [])
    if sentence not in queued:
        queued.append(sentence)


def show_notices() -> None:
    """Show the queued sentences as one warning each, then forget them."""
    for sentence in st.session_state.pop(NOTICES, []):
        st.warning(sentence, icon=":material/link_off:")


# ------------------------------------------------------------------ heavy jobs

@st.cache_resource(show_spinner=False)
def job_budget() -> JobBudget:
    """The server process's one job budget (``$FARMS_VIZ_JOBS`` slots, see budget.py)."""
    return JobBudget()


def session_gone() -> bool:
    """True when this run's browser session is no longer connected (the tab was closed)."""
    ctx = get_script_run_ctx(suppress_warning=True)
    if ctx is None or not st.runtime.exists():
        return False
    return not st.runtime.get_instance().is_active_session(ctx.session_id)


def step() -> None:
    """Between two steps of a job: stop it if its session has gone (Streamlit's own stop and rerun
    requests are honoured by the progress bar update that comes with each step)."""
    if session_gone():
        raise Cancelled("the session ended")


def queue_text(ahead: int, slots: int) -> str:
    """The queue message: "waiting for N jobs ahead of yours" and the server's limit."""
    jobs = "job" if ahead == 1 else "jobs"
    at_once = "one heavy job at a time" if slots == 1 else f"{slots} heavy jobs at a time"
    return f"The server is busy: waiting for {ahead} {jobs} ahead of yours (it runs {at_once} for all its visitors)."


@contextmanager
def job(what: str):
    """Hold a job slot for the ``with`` body; the queue is shown while waiting. A job whose session
    has gone ends with :class:`Cancelled`, which stops this script run quietly."""
    b = job_budget()
    place = st.empty()

    def on_wait(ahead: int) -> None:
        # every poll writes the message again: each write is a point where Streamlit stops or
        # reruns the script when the visitor left or changed something, so a waiting job never
        # keeps its place in the queue for a visitor who is gone
        place.info(queue_text(ahead, b.slots) + f" Yours: {what}.", icon=":material/hourglass_top:")

    try:
        with b.slot(on_wait=on_wait, cancelled=session_gone):
            place.empty()
            yield
    except Cancelled:
        st.stop()


# ------------------------------------------------------------------ uploads

def _trim_heap() -> None:
    """Give freed heap memory back to the system (glibc keeps a large upload's pages otherwise)."""
    try:
        name = ctypes.util.find_library("c")
        if name:
            ctypes.CDLL(name).malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _release_uploads(folder: UploadFolder) -> None:
    folder.close()
    _trim_heap()


@st.cache_resource(scope="session", on_release=_release_uploads, show_spinner=False)
def upload_folder() -> UploadFolder:
    """This session's private upload folder; Streamlit deletes it when the session disconnects.

    The upload's bytes in Streamlit's own memory stay for ``server.disconnectedSessionTTL`` (120 s)
    in case the tab reconnects, then go with the session (benchmarks/bench_upload.py: a 300 MB
    upload, RSS 375 -> 678 MB, 664 MB 10 s after the tab closed, 378 MB after the TTL)."""
    return UploadFolder()


def save_upload(slot: str, uploaded) -> Path:
    """The path of ``uploaded`` (an ``st.file_uploader`` file) in this session's folder, written
    once per upload; the slot's previous file is deleted. Over the upload limit: FarmsError."""
    limit_mb = st.get_option("server.maxUploadSize")
    return upload_folder().save(slot, getattr(uploaded, "file_id", uploaded.name), uploaded.name, uploaded,
                                uploaded.size, limit_mb)


__all__ = ["FarmsError", "Cancelled", "notice", "show_notices", "job", "step", "job_budget",
           "upload_folder", "save_upload", "session_gone", "queue_text"]
