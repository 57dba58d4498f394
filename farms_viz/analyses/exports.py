"""One layer's numbers as tables to export: its eigenvalues (both sides) and its numbers card.

Pure: a layer's ``LayerSpectra`` (and its report row) in, a ``DataFrame`` out; write them with
:func:`farms_viz.io.tables.table_bytes`, as the report table is written.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from farms_viz.analyses.diagnosis import layer_numbers
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


def layer_numbers_table(spec: LayerSpectra, row: pd.Series | dict) -> pd.DataFrame:
    """The layer browser's numbers card for both sides: columns ``quantity``, ``raw``, ``farms``
    (the values as the card shows them; a quantity only one side has is empty on the other)."""
    cards = {which: layer_numbers(spec, row, which) for which in SIDES}
    names = list(dict.fromkeys(k for which in SIDES for k in cards[which]))
    return pd.DataFrame({"quantity": names, **{which: [cards[which].get(k, "") for k in names] for which in SIDES}})
