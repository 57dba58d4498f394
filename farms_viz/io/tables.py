"""Writing tables as CSV with text cells that a spreadsheet will not run (one function for every CSV).

A layer name is text from the model file: ``=cmd|' /C calc'!A0`` as a name became a formula when
the CSV was opened in a spreadsheet. OWASP's rule (CSV injection): a text cell that starts with
= + - @, a tab or a carriage return gets a leading single quote, which spreadsheets show as text.
Numbers are not text and stay numbers (a negative alpha is still -0.5), and so does a text cell
that is a plain number such as ``-1.5``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from farms_viz.errors import FarmsError

#: First characters that make a spreadsheet read a cell as a formula (OWASP, CSV injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def safe_cell(value):
    """``value`` with a leading ``'`` when it is text that a spreadsheet would read as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES) and not _is_number(value):
        return "'" + value
    return value


def csv_safe(table: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``table`` with every text cell (and column name) passed through :func:`safe_cell`."""
    out = table.copy()
    for col in out.columns:
        if not (pd.api.types.is_numeric_dtype(out[col]) or pd.api.types.is_datetime64_any_dtype(out[col])):
            out[col] = out[col].map(safe_cell)
    out.columns = [safe_cell(c) for c in out.columns]
    return out


def to_csv(table: pd.DataFrame, path=None, **kwargs) -> str | None:
    """``table.to_csv(path, index=False)`` after :func:`csv_safe`; the text when ``path`` is None."""
    return csv_safe(table).to_csv(path, index=False, **kwargs)


#: The formats :func:`table_bytes` writes, and the MIME type of each (for download buttons).
TABLE_FORMATS = {"csv": "text/csv", "json": "application/json"}


def _json_value(value):
    """A cell as JSON: NaN, None and infinities are ``null``; numpy scalars become Python numbers."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    if hasattr(value, "item"):  # numpy scalar
        return _json_value(value.item())
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return value


def table_bytes(table: pd.DataFrame, fmt: str) -> bytes:
    """The file of ``table`` as ``csv`` (formula-safe, :func:`to_csv`) or ``json`` (a list of
    records, one per row, every column), UTF-8: what ``farms-viz analyze --out`` and the app's
    download buttons write, byte for byte.

    JSON numbers are written with Python's shortest round-trip repr, so reading the file back
    gives every float exactly. pandas' ``to_json`` (used before) keeps 10 decimals: 1.2345678901e-7
    came back as 1.235e-7, and 525 numbers of minilm's table changed (up to 3e-9 relative). NaN
    and infinities are ``null``.
    """
    if fmt not in TABLE_FORMATS:
        raise FarmsError(f"Unknown table format {fmt!r}; choose one of {', '.join(TABLE_FORMATS)}.")
    if fmt == "csv":
        return to_csv(table).encode("utf-8")
    records = [{str(k): _json_value(v) for k, v in zip(table.columns, row)}
               for row in table.itertuples(index=False, name=None)]
    return (json.dumps(records, indent=1, allow_nan=False) + "\n").encode("utf-8")


def write_table(table: pd.DataFrame, path) -> None:
    """Write ``table`` to ``path`` as :func:`table_bytes` in the format its suffix names (``.json``, else CSV)."""
    Path(path).write_bytes(table_bytes(table, "json" if str(path).endswith(".json") else "csv"))
