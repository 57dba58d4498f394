"""Disk cache of per-layer results, keyed by tensor content + settings + the numerics' source.

An entry is one ``.npz`` (no pickle: arrays plus a JSON record), written to a temporary
file and moved into place with ``os.replace``, so readers never see half an entry. A
corrupt or foreign entry (truncated zip, bad CRC, wrong key, or a record that does not rebuild a
result: see ``farms_viz.pipeline.layer``) is a miss: it is deleted and recomputed.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from farms_viz.settings import Settings

VERSION = "1"
#: The source files whose numbers an entry holds (relative to the package): changing one of them
#: invalidates the cache.
_NUMERICS = ("core/*.py", "pipeline/*.py", "io/cache.py", "settings.py")


def cache_root() -> Path:
    """``$FARMS_VIZ_CACHE`` or ``~/.cache/farms-viz``."""
    return Path(os.environ.get("FARMS_VIZ_CACHE") or Path.home() / ".cache" / "farms-viz")


@lru_cache(maxsize=1)
def code_version() -> str:
    """A hash of the numerics' source: changing how numbers are computed invalidates the cache."""
    h = hashlib.sha256(VERSION.encode())
    package = Path(__file__).resolve().parents[1]
    for pattern in _NUMERICS:
        for path in sorted(package.glob(pattern)):
            h.update(path.relative_to(package).as_posix().encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


def tensor_key(t: torch.Tensor, kind: str | None, settings: Settings) -> str:
    """Key of one layer's result: its bytes, dtype, shape, kind, the settings and the code version."""
    h = hashlib.blake2b(digest_size=20)
    h.update(f"{code_version()}|{t.dtype}|{tuple(t.shape)}|{kind}|{settings.key()}".encode())
    c = t.detach().contiguous().cpu()
    if c.numel():
        h.update(memoryview(c.view(-1).view(torch.uint8).numpy()))
    return h.hexdigest()


class LayerCache:
    """Entries under ``root/layers/<code version>/``."""

    def __init__(self, root: Path | None = None):
        self.dir = (root or cache_root()) / "layers" / code_version()

    def _path(self, key: str) -> Path:
        return self.dir / key[:2] / f"{key}.npz"

    def get(self, key: str) -> tuple[dict, dict[str, np.ndarray]] | None:
        """(record, arrays) or None; a corrupt entry is removed."""
        p = self._path(key)
        if not p.exists():
            return None
        try:
            # our own handle: np.load leaks its file when a truncated archive fails to open
            with open(p, "rb") as fh, np.load(fh, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
            record = json.loads(bytes(arrays.pop("_record")).decode())
            if record.get("key") != key:
                raise ValueError("key mismatch")
            return record, arrays
        except Exception:  # any damage: drop it and recompute
            self.drop(key)
            return None

    def drop(self, key: str) -> None:
        """Remove an entry (one found damaged: its record does not rebuild a result)."""
        try:
            self._path(key).unlink()
        except OSError:
            pass

    def put(self, key: str, record: dict, arrays: dict[str, np.ndarray]) -> None:
        """Write atomically; a cache that cannot be written is skipped silently."""
        p = self._path(key)
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            payload = dict(arrays)
            payload["_record"] = np.frombuffer(json.dumps({**record, "key": key}).encode(), dtype=np.uint8)
            fd, tmp = tempfile.mkstemp(dir=p.parent, suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as f:
                    np.savez(f, **payload)
                os.replace(tmp, p)
            except BaseException:
                os.unlink(tmp)
                raise
        except OSError:
            pass
