"""The model a visitor picked (zoo, path, upload, hub id), as a spec that fits in a URL.

No Streamlit here: pages and the compare glue turn widgets into a :class:`SourceSpec`;
:func:`target` is what ``analyze`` gets, :func:`admit` what served mode allows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from farms_viz.app import serving
from farms_viz.app.bounds import quote
from farms_viz.errors import FarmsError
from farms_viz.io.sources import fingerprint
from farms_viz.zoo import registry as zoo

DEFAULT_MODEL = "minilm"
#: a Hugging Face model id, owner/name (the hub's own character rules, 96 characters a part)
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.\-]{0,95}$")
SOURCE_KINDS = {"zoo": "Model zoo", "path": "Local path", "upload": "Upload", "hub": "Hugging Face hub"}


@dataclass(frozen=True)
class SourceSpec:
    """What the user picked: ``kind`` in SOURCE_KINDS, ``value`` a zoo name, path or hub id."""

    kind: str
    value: str
    label: str = ""

    @property
    def title(self) -> str:
        return self.label or self.value

    def to_param(self) -> str | None:
        """The ``model`` query parameter (uploads cannot be shared by URL)."""
        if self.kind == "zoo" or self.kind == "path":
            return self.value
        if self.kind == "hub":
            return "hub:" + self.value
        return None


def zoo_entries() -> list[tuple[str, str]]:
    """(name, summary) of the offline zoo."""
    return [(e.name, e.summary) for e in zoo.list_entries()]


def source_kinds() -> dict[str, str]:
    """The source kinds a visitor may pick here: all of SOURCE_KINDS, or in served mode only
    serving.SERVED_KINDS (zoo and upload)."""
    if serving.served():
        return {k: v for k, v in SOURCE_KINDS.items() if k in serving.SERVED_KINDS}
    return dict(SOURCE_KINDS)


def admit(spec: SourceSpec) -> None:
    """FarmsError with one sentence unless this server may open ``spec`` (see serving.admit); called
    before anything looks at the source, so a refused path is never touched."""
    names = {n for n, _ in zoo_entries()} if spec.kind == "zoo" and serving.served() else ()  # checked only there
    serving.admit(spec.kind, spec.value, names)


def spec_from_param(value: str) -> SourceSpec:
    """The source a link's ``model`` (or compare ``a`` / ``b``) names. FarmsError for a value no
    source can have (NUL or control characters, over bounds.MAX_PARAM_CHARS characters)."""
    serving.check_text("link's model", value)
    if value.startswith("hub:"):
        return SourceSpec("hub", value[4:])
    if value in {n for n, _ in zoo_entries()}:
        return SourceSpec("zoo", value)
    return SourceSpec("path", value)


def target(spec: SourceSpec):
    """What to hand to ``analyze``. FarmsError for a hub id that is not ``owner/name`` (before the
    library reads it as a zoo name or a path and answers in command-line words) and for a file
    that is no longer there."""
    if spec.kind == "zoo":
        return spec.value
    if spec.kind == "upload" and not Path(spec.value).exists():
        raise FarmsError(f"The uploaded {quote(spec.title)} is no longer on the server (the session's upload folder "
                         "was cleared); upload it again.")
    if spec.kind == "path":
        p = Path(spec.value).expanduser()
        if not p.exists():
            if "/" not in spec.value and not p.suffix:  # a word, as a link's ?model=minilmm: meant a zoo name
                raise FarmsError(zoo.unknown_name_message(spec.value))
            raise FarmsError(f"{p} does not exist; check the path.")
        return str(p)
    if spec.kind == "hub" and not HUB_ID.match(spec.value):
        zoo_kind = SOURCE_KINDS["zoo"]
        where = (f"{quote(spec.value)} ships with farms-viz: choose Source {zoo_kind} and pick it in the Model list."
                 if spec.value in {n for n, _ in zoo_entries()} else
                 f"For a model that ships with farms-viz, choose Source {zoo_kind} and pick it in the Model list.")
        raise FarmsError(f"The Hugging Face model id {quote(spec.value)} is not of the form owner/name (such as "
                         f"sentence-transformers/all-MiniLM-L6-v2). {where}")
    return spec.value


#: characters Markdown or Streamlit (``:red[...]``, ``:material/...:``) act on in an st.error sentence
_MARKUP = frozenset("\\`*_[]<>#~|$:!{}")


def in_user_words(message: str, spec: SourceSpec) -> str:
    """``message`` in the words of the page: an upload named by the file the visitor uploaded, not by
    the server's copy (its path in the session's upload folder, or that copy's file name), and
    the zoo's command-line advice (``farms-viz zoo``) replaced by the web control that lists the
    models."""
    if spec.kind == "upload" and spec.label:
        saved = Path(spec.value)
        name = "".join("\\" + c if c in _MARKUP else c for c in spec.label)
        for copy in sorted({str(saved.resolve()), str(saved), saved.name}, key=len, reverse=True):
            message = message.replace(copy, name)
        message = message.replace(str(saved.parent), "the upload folder")
    return message.replace(zoo.ZOO_HINT, f"on Home, choose Source {SOURCE_KINDS['zoo']} to pick one from the list")


def content_id(spec: SourceSpec) -> str:
    """A cheap id that changes when a local file or folder changes (see io.sources.fingerprint)."""
    if spec.kind not in ("path", "upload"):
        return ""
    return fingerprint(Path(spec.value))
