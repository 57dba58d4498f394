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

from farms_viz.analyses.allocate import MAPS, SCHEMES
from farms_viz.analyses.lab import DISTRIBUTIONS, MAX_SIDE, SWEEP_MODES
from farms_viz.analyses.matching import MATCH_MODES
from farms_viz.errors import FarmsError
from farms_viz.pipeline.layerfilter import compile_filter
from farms_viz.pipeline.metrics import METRICS
from farms_viz.settings import BOUNDS, CONV_RULES, FITS, PRESETS
from farms_viz.zoo.digits import ARCHS

#: the largest FARMS window in the Lab: 4096 x 4096 with 15 x 15 windows of 1024 rows is the most
#: expensive Lab matrix (64 CPU-s, 1.0 GB peak RSS on 2 cores); windows of 2048 would take ~5 min.
LAB_MAX_WINDOW = 1024
#: a URL value longer than this is not read at all (paths, hub ids and layer names are far shorter)
MAX_PARAM_CHARS = 1024
#: how much of a refused value a message quotes
QUOTE_CHARS = 60
#: the longest layer filter a link (and the overview's filter field) carries: a filter is a few words,
#: and RE2 compiles 200 characters in well under a millisecond
FILTER_CHARS = 200
#: how a link writes a yes/no value, and the words it accepts for one
FLAG_WORDS = {"1": True, "true": True, "0": False, "false": False}


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
    # the randomized ESD's shuffle seed: the library's own bounds (any 32-bit seed)
    "seed": Bound(*BOUNDS["seed"], 1, whole=True),
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
#: the compare page's choices (``?match=order``, ``?view=series&series=cnn``, ``?from=folder``)
COMPARE_CHOICES: dict[str, tuple] = {"match": MATCH_MODES, "view": ("pair", "series"), "series": ARCHS,
                                     "from": ("zoo", "folder")}
#: the Allocations page's numbers, by URL key (the sliders' and number inputs' own ranges)
ALLOCATIONS: dict[str, Bound] = {
    "sparsity": Bound(0.05, 0.95, 0.05),
    "eps": Bound(0.0, 0.9, 0.05),
    "block": Bound(0, 1000, 1, whole=True),
    "lr": Bound(1e-8, 10.0, 1e-4),
    "lrmin": Bound(0.0, 10.0, 0.1),
    "lrmax": Bound(0.0, 10.0, 0.1),
}
ALLOCATION_CHOICES: dict[str, tuple] = {"scheme": SCHEMES, "map": MAPS}
#: the model overview's views (``?view=bars``) and the metric of its bars and scatter (``?metric=log_norm``:
#: alpha or any of WeightWatcher's metrics, pipeline.metrics.METRICS; the page narrows it to those with values)
OVERVIEW_CHOICES: dict[str, tuple] = {"view": ("blocks", "bars"), "metric": ("alpha", *METRICS)}


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


def flag_from_url(name: str, raw: str, default: bool):
    """``(value, problem)`` for a link's yes/no ``name=raw``: 1, 0, true or false (any case)."""
    word = raw.strip().lower()
    if word in FLAG_WORDS:
        return FLAG_WORDS[word], None
    return default, (f"The link's {name}={quote(raw)} is not 1, 0, true or false, so "
                     f"{'1' if default else '0'} is used.")


def filter_from_url(name: str, raw: str, default: str = ""):
    """``(value, problem)`` for a link's layer filter: at most FILTER_CHARS characters and a pattern
    the overview's RE2 filter compiles (the same check as typing it); otherwise no filter."""
    if len(raw) > FILTER_CHARS:
        return default, (f"The link's {name} is {len(raw)} characters long, more than the {FILTER_CHARS} a "
                         "layer filter may have, so no filter is used.")
    try:
        compile_filter(raw)
    except FarmsError:
        return default, (f"The link's {name}={quote(raw)} is not a regular expression the filter accepts "
                         "(RE2: no back-references or look-around), so no filter is used.")
    return raw, None


def subset_from_url(name: str, raw: str, choices, default=(), empty: str = "none"):
    """``(values, problem)`` for a link's comma-separated ``name=a,b`` whose items must be in
    ``choices``: the known items, in the link's order; unknown ones named in one sentence (``empty``
    says what no item at all means on the page)."""
    items = list(dict.fromkeys(s for s in raw.split(",") if s))
    known = tuple(s for s in items if s in choices)
    unknown = [s for s in items if s not in choices]
    if not unknown:
        return known, None
    value = known or tuple(default)
    return value, (f"The link's {name}={quote(raw)} names {quote(', '.join(unknown))}, not among "
                   f"{', '.join(map(str, choices)) or 'the choices here'}, so "
                   f"{quote(', '.join(value)) if value else empty} is used.")


def text_from_url(name: str, raw: str, default: str = ""):
    """``(value, problem)`` for a link's free text (a folder): no control characters, at most
    MAX_PARAM_CHARS characters; whether the server may open it is decided where it is opened."""
    if len(raw) > MAX_PARAM_CHARS:
        return default, (f"The link's {name} is {len(raw)} characters long, more than any path this app "
                         f"opens ({MAX_PARAM_CHARS}), so it is left empty.")
    if any(ord(c) < 32 or ord(c) == 127 for c in raw):
        return default, (f"The link's {name}={quote(raw)} contains control characters, which no path has, "
                         "so it is left empty.")
    return raw, None


# ------------------------------------------------------------------ the pages' link parameters

#: rule kinds besides a Bound and a tuple of choices
FLAG, FILTER, TEXT = "flag", "filter", "text"


@dataclass(frozen=True)
class Subset:
    """A comma-separated list whose items are in ``choices`` (None: the page gives them at run time);
    ``empty``: what an empty list means on the page."""

    choices: tuple | None = None
    empty: str = "none"


@dataclass(frozen=True)
class Param:
    """One view control in the URL: key ``url``, session key ``key``, ``default`` (left out of the URL)
    and its ``rule``: a :class:`Bound`, a tuple of choices, FLAG, FILTER, TEXT or a :class:`Subset`."""

    url: str
    key: str
    default: object
    rule: object


def read(name: str, raw: str, rule, default):
    """``(value, problem)``: a link's ``name=raw`` under ``rule`` (see :class:`Param`); every link
    value of every page passes here."""
    raw = str(raw)
    if isinstance(rule, Bound):
        return from_url(name, raw, rule, default)
    if isinstance(rule, Subset):
        return subset_from_url(name, raw, rule.choices or (), default, rule.empty)
    if rule == FLAG:
        return flag_from_url(name, raw, default)
    if rule == FILTER:
        return filter_from_url(name, raw, default)
    if rule == TEXT:
        return text_from_url(name, raw, default)
    return choice_from_url(name, raw, rule, default)


def url_text(value) -> str:
    """A value as a link writes it: 1/0, a float in 12 significant digits (0.75, not 0.7500000000000001),
    a list comma-separated."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return f"{value:.12g}"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return str(value)


#: every page's view controls in the URL (the sidebar settings, model, layer, Lab and Compare's
#: a / b / match have their own code; see the README's table of link parameters)
LINKS: dict[str, tuple[Param, ...]] = {
    "allocations": (
        Param("scheme", "al_scheme", "alphapruning", ALLOCATION_CHOICES["scheme"]),
        Param("sparsity", "al_sparsity", 0.7, ALLOCATIONS["sparsity"]),
        Param("eps", "al_epsilon", 0.3, ALLOCATIONS["eps"]),
        Param("blockwise", "al_block_wise", False, FLAG),
        Param("block", "al_block_size", 0, ALLOCATIONS["block"]),
        Param("blocksonly", "al_blocks_only", True, FLAG),
        Param("lr", "al_lr", 0.001, ALLOCATIONS["lr"]),
        Param("map", "al_map", "linear", ALLOCATION_CHOICES["map"]),
        Param("lrmin", "al_lr_min", 0.5, ALLOCATIONS["lrmin"]),
        Param("lrmax", "al_lr_max", 1.5, ALLOCATIONS["lrmax"]),
        Param("keepfirst", "al_keep_first", False, FLAG),
        Param("keeplast", "al_keep_last", False, FLAG),
    ),
    "compare": (
        Param("view", "cmp_view", "pair", COMPARE_CHOICES["view"]),
        Param("from", "cmp_series_kind", "zoo", COMPARE_CHOICES["from"]),
        Param("series", "cmp_series_arch", "mlp", COMPARE_CHOICES["series"]),
        Param("folder", "cmp_series_folder", "", TEXT),
        Param("metric", "cmp_metric", "alpha", OVERVIEW_CHOICES["metric"]),
    ),
    "overview": (
        Param("filter", "ov_pattern", "", FILTER),
        Param("kinds", "ov_kinds", (), Subset(empty="every kind")),
        Param("view", "ov_view", "blocks", OVERVIEW_CHOICES["view"]),
        Param("metric", "ov_metric", "alpha", OVERVIEW_CHOICES["metric"]),
    ),
    "browser": (
        Param("logx", "br_logx", True, FLAG),
    ),
}
