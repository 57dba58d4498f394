"""Numbers as tables to export: a layer's eigenvalues (both sides) and numbers card, the Lab's sweep.

Pure: a layer's ``LayerSpectra`` (and its report row) in, a ``DataFrame`` out; write them with
:func:`farms_viz.io.tables.table_bytes`, as the report table is written.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from farms_viz.analyses.diagnosis import layer_numbers
from farms_viz.analyses.lab import SweepResult
from farms_viz.pipeline.schema import SIDES, LayerSpectra


def esd_table(spec: LayerSpectra) -> pd.DataFrame:
    """Every eigenvalue of the layer's ESDs: columns ``side`` (``raw`` / ``farms``) and
    ``eigenvalue``; raw first, each side in ascending order as analysed (the FARMS side holds the
    pooled eigenvalues of all windows, zeros included, as the fits saw them)."""
    esds = [np.asarray(spec.side(which).esd, dtype=np.float64).ravel() for which in SIDES]
    return pd.DataFrame({
        "side": np.repeat(np.array(SIDES, dtype=object), [e.size for e in esds]),
        "eigenvalue": np.concatenate(esds) if esds else np.array([], dtype=np.float64),
    })


def layer_numbers_table(spec: LayerSpectra, row: pd.Series | dict, rule_alphas: dict | None = None) -> pd.DataFrame:
    """The layer browser's numbers card for both sides: columns ``quantity``, ``raw``, ``farms``
    (the values as the card shows them; a quantity only one side has is empty on the other).
    ``rule_alphas``: ``{side: {rule: alpha}}``, the card's alpha under each fit rule, as the page passes it."""
    cards = {which: layer_numbers(spec, row, which, (rule_alphas or {}).get(which)) for which in SIDES}
    names = list(dict.fromkeys(k for which in SIDES for k in cards[which]))
    return pd.DataFrame({"quantity": names, **{which: [cards[which].get(k, "") for k in names] for which in SIDES}})


def sweep_table(res: SweepResult) -> pd.DataFrame:
    """The Lab sweep's numbers, one row per matrix: ``aspect_ratio``, ``rows``, ``cols``, ``seed``,
    ``window`` (the FARMS window's rows, the same at every aspect ratio), ``alpha_raw``,
    ``alpha_farms``; aspect ratios in sweep order, seeds within each."""
    n_seeds = len(res.seeds)
    rows = np.array([r for r, _ in res.shapes], dtype=np.int64)
    cols = np.array([c for _, c in res.shapes], dtype=np.int64)
    return pd.DataFrame({
        "aspect_ratio": np.repeat(np.asarray(res.aspect_ratios, dtype=np.float64), n_seeds),
        "rows": np.repeat(rows, n_seeds),
        "cols": np.repeat(cols, n_seeds),
        "seed": np.tile(np.asarray(res.seeds, dtype=np.int64), len(res.shapes)),
        "window": np.full(len(res.shapes) * n_seeds, res.window, dtype=np.int64),
        "alpha_raw": np.asarray(res.alpha_raw, dtype=np.float64).ravel(),
        "alpha_farms": np.asarray(res.alpha_farms, dtype=np.float64).ravel(),
    })
