"""Build a model folder once: under a file lock, into a temporary folder moved into place.

Readers never see half a folder; two processes that want the same folder build it once.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from farms_viz.errors import FarmsError


def build_once(final: Path, marker: str, build: Callable[[Path], object], what: str) -> Path:
    """``final``, built by ``build(tmp_folder)`` unless ``final / marker`` exists (the last file a
    build writes); FarmsError naming ``what`` when the cache folder is not writable."""
    if (final / marker).is_file():
        return final
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        with open(final.parent / f"{final.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if (final / marker).is_file():  # built by someone else while we waited
                return final
            tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
            try:
                build(tmp)
                if final.exists():  # a broken leftover (no marker)
                    shutil.rmtree(final)
                os.rename(tmp, final)
            finally:
                if tmp.exists():
                    shutil.rmtree(tmp, ignore_errors=True)
    except OSError as e:
        raise FarmsError(f"cannot build {what} in {final.parent}: {e.strerror or e} "
                         f"(set FARMS_VIZ_CACHE to a writable folder).") from None
    return final
