"""Reading the alpha table an allocation starts from, and writing an allocation (CSV or JSON)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from farms_viz.analyses.allocate import REQUIRED, Allocation, check_table
from farms_viz.errors import FarmsError
from farms_viz.io.tables import to_csv
from farms_viz.pipeline.analyze import analyze
from farms_viz.zoo import registry as zoo


def read_table(report: str, progress=None) -> pd.DataFrame:
    """A per-layer table from a CSV/JSON written by ``farms-viz analyze`` (or any CSV with ``layer,
    rows, cols, alpha_raw, alpha_farms``), or from a zoo name (analysed with the default settings)."""
    p = Path(report).expanduser()
    if p.is_file():
        try:
            t = pd.read_json(p, orient="records") if p.suffix.lower() == ".json" else pd.read_csv(p)
        except (OSError, ValueError) as e:
            raise FarmsError(f"{p} cannot be read as a {'JSON' if p.suffix.lower() == '.json' else 'CSV'} "
                             f"table ({e}).") from None
        return check_table(t)
    if zoo.has_entry(report):
        return check_table(analyze(report, progress=progress).table)
    if p.exists():
        raise FarmsError(f"{p} is not a file; give a CSV or JSON table from 'farms-viz analyze'.")
    raise FarmsError(f"{report!r} is neither a table file nor a zoo model (a CSV with {', '.join(REQUIRED)}, "
                     "or e.g. llama-7b-published).")


def to_json(alloc: Allocation) -> str:
    """``{"scheme", "settings", "raw": {layer: value}, "farms": {layer: value}}``, indented."""
    return json.dumps(alloc.as_dict(), indent=1)


def write(alloc: Allocation, path: str) -> None:
    """Write ``alloc.table`` as ``.csv`` (layer, *_raw, *_farms) or the JSON of :func:`to_json`."""
    s = str(path)
    if not (s.endswith(".csv") or s.endswith(".json")):
        raise FarmsError(f"--out must end in .csv or .json (got {path}).")
    try:
        if s.endswith(".json"):
            Path(s).write_text(to_json(alloc) + "\n")
        else:
            to_csv(alloc.table, s)
    except OSError as e:
        raise FarmsError(f"{path} cannot be written: {e.strerror or e}.") from None
