"""The model a visitor picked (zoo, path, upload, hub id), as a spec that fits in a URL.

No Streamlit here: pages and the compare glue turn widgets into a :class:`SourceSpec`;
:func:`target` is what ``analyze`` gets, :func:`admit` what served mode allows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from farms_viz.app import serving
from farms_viz.errors import FarmsError
from farms_viz.io.sources import fingerprint
from farms_viz.zoo import registry as zoo

DEFAULT_MODEL = "minilm"
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
    """What to hand to ``analyze``."""
    if spec.kind == "zoo":
        return spec.value
    if spec.kind in ("path", "upload"):
        p = Path(spec.value).expanduser()
        if not p.exists():
            raise FarmsError(f"{p} does not exist; check the path.")
        return str(p)
    return spec.value


def content_id(spec: SourceSpec) -> str:
    """A cheap id that changes when a local file or folder changes (see io.sources.fingerprint)."""
    if spec.kind not in ("path", "upload"):
        return ""
    return fingerprint(Path(spec.value))
