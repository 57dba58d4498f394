"""The limits of every value a visitor can set, defined once for the widgets and for the URL.

A widget takes ``**bound.widget()`` (min_value, max_value, step) and a value read from a link goes
through :func:`from_url`, so a link can never set a number the widget would not accept
(``?ops=200`` used to analyse with 200 while the widget showed another number). No Streamlit here.

The Lab's limits also bound what one Lab job costs (measured on 2 cores, see the README's
"Reliability / served mode"): the largest FARMS window is LAB_MAX_WINDOW rows, since 225 windows
of 4000 x 4000 on a 4096 x 4096 matrix would take about half an hour, and the largest sweep size
is 512.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from farms_viz.analyses.lab import DISTRIBUTIONS, MAX_SIDE, SWEEP_MODES
from farms_viz.analyses.matching import MATCH_MODES
from farms_viz.settings import CONV_RULES, FITS, PRESETS

#: the largest FARMS window in the Lab: 4096 x 4096 with 15 x 15 windows of 1024 rows is the most
#: expensive Lab matrix (64 CPU-s, 1.0 GB peak RSS on 2 cores); windows of 2048 would take ~5 min.
LAB_MAX_WINDOW = 1024
#: a URL value longer than this is not read at all (paths, hub ids and layer names are far shorter)
MAX_PARAM_CHARS = 1024
#: how much of a refused value a message quotes
QUOTE_CHARS = 60


@dataclass(frozen=True)
class Bound:
    """A number a visitor sets: from ``lo`` to ``hi`` in steps of ``step``; ``whole`` for integers."""

    lo: float
    hi: float
    step: float
    whole: bool = False

    def widget(self) -> dict:
        """The keywords of ``st.number_input`` / ``st.slider`` for this bound."""
        cast = int if self.whole else float
        return dict(min_value=cast(self.lo), max_value=cast(self.hi), step=cast(self.step))

    def cast(self, value):
        return int(value) if self.whole else float(value)


#: the analysis settings of the sidebar (farms_viz.settings.Settings fields)
SETTINGS: dict[str, Bound] = {
    "xmin_pos": Bound(1.01, 100.0, 0.5),
    "window": Bound(2, 100_000, 50, whole=True),
    "q": Bound(0.05, 20.0, 0.25),
    "ops": Bound(1, 50, 1, whole=True),
}
SETTING_CHOICES: dict[str, tuple] = {"preset": tuple(PRESETS), "fit": FITS, "conv_rule": CONV_RULES}

#: the Lab's matrix maker, sweep and FARMS window
LAB: dict[str, Bound] = {
    "rows": Bound(2, MAX_SIDE, 50, whole=True),
    "cols": Bound(2, MAX_SIDE, 50, whole=True),
    "seed": Bound(0, 10_000, 1, whole=True),
    "nu": Bound(0.5, 100.0, 0.5),
    "mu": Bound(0.5, 10.0, 0.25),
    "strength": Bound(0.0, 20.0, 0.25),
    "rank": Bound(1, 50, 1, whole=True),
    # the sweep's size: 512 keeps the most expensive sweep (fixed entries, 20 seeds, 15 windows per
    # side) at ~60 CPU-s like the largest fixed-short-side one (256); 1024 took over 400 s
    "size": Bound(16, 512, 16, whole=True),
    "seeds": Bound(1, 20, 1, whole=True),
    "win": Bound(0, LAB_MAX_WINDOW, 32, whole=True),
    "per_dim": Bound(1, 15, 1, whole=True),
}
LAB_CHOICES: dict[str, tuple] = {"dist": tuple(DISTRIBUTIONS), "fit": FITS, "mode": tuple(SWEEP_MODES)}
#: the compare page's choices (``?match=order``)
COMPARE_CHOICES: dict[str, tuple] = {"match": MATCH_MODES}


def quote(value: str) -> str:
    """``value`` safe to put in a Markdown sentence: control characters shown as escapes, at most
    QUOTE_CHARS characters, and every Markdown/Streamlit markup character backslash-escaped (so a
    link cannot inject a link, a colour or an icon into the page)."""
    text = str(value)
    short = text[:QUOTE_CHARS]
    short = short.encode("unicode_escape").decode("ascii") if not short.isprintable() else short
    escaped = "".join("\\" + c if (c.isascii() and not c.isalnum() and c != " ") else c for c in short)
    return escaped + ("…" if len(text) > QUOTE_CHARS else "")


def _shown_value(bound: Bound, value) -> str:
    return str(int(value)) if bound.whole else f"{value:g}"


def from_url(name: str, raw: str, bound: Bound, default):
    """``(value, problem)``: the number a link's ``name=raw`` asks for, within ``bound``.

    Not a number, NaN, infinite or (for a whole-number bound) a fraction: the default, with a
    sentence. Outside the bound: the nearest limit, with a sentence. Otherwise ``(value, None)``.
    """
    shown = f"{name}={quote(raw)}"
    try:
        x = float(raw) if len(raw) <= 40 else math.nan
    except (TypeError, ValueError):
        x = math.nan
    if not math.isfinite(x):
        return default, f"The link's {shown} is not a finite number, so the default {_shown_value(bound, default)} is used."
    if bound.whole and x != int(x):
        return default, (f"The link's {shown} is not a whole number, so the default "
                         f"{_shown_value(bound, default)} is used.")
    if x < bound.lo:
        return bound.cast(bound.lo), (f"The link's {shown} is below the smallest allowed value, so "
                                      f"{_shown_value(bound, bound.lo)} is used.")
    if x > bound.hi:
        return bound.cast(bound.hi), (f"The link's {shown} is above the largest allowed value, so "
                                      f"{_shown_value(bound, bound.hi)} is used.")
    return bound.cast(x), None


def choice_from_url(name: str, raw: str, choices, default):
    """``(value, problem)`` for a link's ``name=raw`` that must be one of ``choices``."""
    if raw in choices:
        return raw, None
    return default, (f"The link's {name}={quote(raw)} is not one of {', '.join(map(str, choices))}, "
                     f"so {default} is used.")
