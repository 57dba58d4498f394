"""Writing tables as CSV with text cells that a spreadsheet will not run (one function for every CSV).

A layer name is text from the model file: ``=cmd|' /C calc'!A0`` as a name became a formula when
the CSV was opened in a spreadsheet. OWASP's rule (CSV injection): a text cell that starts with
= + - @, a tab or a carriage return gets a leading single quote, which spreadsheets show as text.
Numbers are not text and stay numbers (a negative alpha is still -0.5), and so does a text cell
that is a plain number such as ``-1.5``.
"""

from __future__ import annotations

import pandas as pd

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
