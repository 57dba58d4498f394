"""Everything a user can name, to a :class:`~farms_viz.io.sources.Source`: zoo names first, then
files, folders, hub ids, modules and dicts (``farms_viz.io.sources``)."""

from __future__ import annotations

import os
from pathlib import Path

from farms_viz.errors import FarmsError
from farms_viz.io import sources
from farms_viz.io.refs import Source
from farms_viz.zoo import registry as zoo


def open_source(source) -> Source:
    """A zoo name (``farms-viz zoo``), a path to a weights file or model folder, a hub id
    ``org/name``, an ``nn.Module``, a dict of name -> tensor/array, or a :class:`Source`."""
    if isinstance(source, str) and "\0" not in source and zoo.has_entry(source):
        return zoo.open_zoo(source)
    try:
        return sources.open_source(source)
    except FarmsError:
        if isinstance(source, str) and _bare_name(source):
            raise FarmsError(zoo.unknown_name_message(source)) from None
        raise


def _bare_name(text: str) -> bool:
    """A word with no folder and no suffix that names no file: meant as a zoo name."""
    if "\0" in text or "/" in text or os.sep in text or Path(text).suffix:
        return False
    try:
        return not Path(text).exists()
    except (OSError, ValueError):
        return False
