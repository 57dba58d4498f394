"""The disk cache of measured pruning outcomes (``analyses.outcome``): one JSON file per row under
``$FARMS_VIZ_CACHE/outcome/<code version>/``, keyed by the dense model's content (every tensor of its
state dict), the method, the per-layer sparsities actually applied and the calibration size. The
code version is a hash of the modules that decide the numbers, without comments and docstrings, so
editing prose keeps the rows and editing code drops them.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import tempfile
from functools import lru_cache
from pathlib import Path

import torch

from farms_viz.io.cache import cache_root

#: files whose code decides a cached row's number (a change invalidates the rows)
_CODE = ("analyses/prune.py", "analyses/masks.py", "analyses/calibrate.py", "analyses/sparsegpt.py",
         "zoo/evaluate.py", "zoo/causal_lm.py", "zoo/text.py", "zoo/smollm2.py", "zoo/tinylm.py", "zoo/digits.py", "zoo/minilm.py")
VERSION = "1"


def code_text(source: str) -> str:
    """The code of a module without its comments and docstrings (``ast.dump``): what decides numbers."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree)


@lru_cache(maxsize=1)
def code_version() -> str:
    """A hash of the pruning and evaluation code (docstrings and comments aside) and :data:`VERSION`."""
    h = hashlib.sha256(VERSION.encode())
    package = Path(__file__).resolve().parents[1]
    for rel in _CODE:
        h.update(rel.encode())
        h.update(code_text((package / rel).read_text()).encode())
    return h.hexdigest()[:16]


def model_id(model: torch.nn.Module) -> str:
    """A hash of every tensor of the model's state dict (names, shapes, dtypes, bytes)."""
    h = hashlib.blake2b(digest_size=20)
    for k, v in model.state_dict().items():
        t = v.detach().cpu().contiguous()
        h.update(f"{k}|{tuple(t.shape)}|{t.dtype}".encode())
        if t.numel():
            h.update(memoryview(t.view(-1).view(torch.uint8).numpy()))
    return h.hexdigest()


def row_key(mid: str, method: str, ratios: dict[str, float] | None, calibration: int | None) -> str:
    """The cache key of one measure: model content, method, applied sparsities (None: dense), code."""
    r = None if ratios is None else sorted((k, float(v).hex()) for k, v in ratios.items())
    text = json.dumps([code_version(), mid, method, r, calibration])
    return hashlib.blake2b(text.encode(), digest_size=20).hexdigest()


def _path(key: str) -> Path:
    return cache_root() / "outcome" / code_version() / key[:2] / f"{key}.json"


def cache_get(key: str) -> dict | None:
    """The cached record of ``key`` or None (a damaged entry is a miss)."""
    try:
        rec = json.loads(_path(key).read_text())
        return rec if rec.get("key") == key else None
    except (OSError, ValueError, AttributeError):
        return None


def cache_put(key: str, record: dict) -> None:
    """Write atomically; a cache that cannot be written is skipped."""
    p = _path(key)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=p.parent, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump({**record, "key": key}, f)
        os.replace(tmp, p)
    except OSError:
        pass
