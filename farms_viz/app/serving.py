"""Served mode: what a visitor of a shared farms-viz server may make it open.

``FARMS_VIZ_SERVED=1`` in the server's environment turns it on (README, "Reliability / served
mode"). Then visitors pick zoo models and upload files, and nothing else: no path on the server
(``?model=/etc/shadow`` is refused before the path is looked at, so the answer says nothing about
whether it exists), no Hugging Face hub id (that would make the server download any repository a
visitor names, of any size, into its cache) and no Ray address (that would make it connect to any
host and port). Local use (the variable unset) keeps all of them.

:func:`admit` is the one gate every source passes before anything touches it; it also refuses
values no source can have (a NUL byte, control characters, over MAX_PARAM_CHARS characters) in
either mode. No Streamlit here.
"""

from __future__ import annotations

import os

from farms_viz.app.bounds import MAX_PARAM_CHARS, quote
from farms_viz.errors import FarmsError

SERVED_ENV = "FARMS_VIZ_SERVED"
#: the source kinds a visitor may use in served mode
SERVED_KINDS = ("zoo", "upload")
_TRUE = ("1", "true", "yes", "on")


def served() -> bool:
    """True when ``$FARMS_VIZ_SERVED`` is 1 / true / yes / on (read on every call, so a test or a
    restart can change it)."""
    return os.environ.get(SERVED_ENV, "").strip().lower() in _TRUE


def check_text(what: str, value: str) -> None:
    """FarmsError unless ``value`` could name a source: no NUL or other control characters, at most
    MAX_PARAM_CHARS characters."""
    if len(value) > MAX_PARAM_CHARS:
        raise FarmsError(f"The {what} is {len(value)} characters long, more than any model name or path "
                         f"this app opens ({MAX_PARAM_CHARS}); nothing was opened.")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise FarmsError(f"The {what} {quote(value)} contains control characters (such as a NUL byte), "
                         "which no model name or path has; nothing was opened.")


def admit(kind: str, value: str, zoo_names=()) -> None:
    """FarmsError with one sentence unless a visitor may open source ``kind``/``value`` here.

    Called before any file is looked at: in served mode a path is refused without a stat.
    """
    check_text("model name" if kind == "zoo" else "path" if kind in ("path", "upload") else "model id", value)
    if not served():
        return
    if kind == "path":
        raise FarmsError("This server is shared (served mode), so it opens only its zoo models and "
                         "uploaded files, not paths on the server; pick a zoo model or upload the file.")
    if kind == "hub":
        raise FarmsError("This server is shared (served mode), so it does not download models from the "
                         "Hugging Face hub; pick a zoo model or upload the weights file.")
    if kind not in SERVED_KINDS:
        raise FarmsError(f"Unknown source kind {quote(kind)}.")
    if kind == "zoo" and zoo_names and value not in zoo_names:
        raise FarmsError(f"{quote(value)} is not a model of this server's zoo.")


def ray_allowed() -> bool:
    """Whether a visitor may name a Ray cluster address (never in served mode)."""
    return not served()
