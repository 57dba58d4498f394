"""Small pure helpers that turn a report's numbers into words: alpha -> label, summaries, flips.

HT-SR reading of the power-law exponent alpha of a layer's ESD (Martin & Mahoney; FARMS, Sec. 2):
alpha < 2 over-trained (very heavy tail), 2 <= alpha <= 6 well-trained, alpha > 6 under-trained.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from farms_viz.pipeline.farms import uses_blocks
from farms_viz.pipeline.layerfilter import filter_names

#: (low, high, label, colour) for the alpha bands, low inclusive.
BANDS = (
    (0.0, 2.0, "over-trained", "#F4D6D6"),
    (2.0, 6.0, "well-trained", "#DDEFD9"),
    (6.0, math.inf, "under-trained", "#ECECEC"),
)
#: where one band ends and the next begins (2 and 6)
BAND_EDGES = tuple(hi for _, hi, _, _ in BANDS[:-1])
NO_FIT = "no fit"
#: where the bands come from, said wherever they are drawn
BANDS_NOTE = ("The 2 / 6 bands are the HT-SR convention read off language models and large "
              "pretrained nets (Martin & Mahoney); they are a convention, not a law.")
CNN_BANDS_NOTE = ("This is mostly a conv net: its α (small kernels, few eigenvalues per slice) is not on the "
                  "scale the 2 / 6 bands were read from, so read its labels as doubtful and compare layers "
                  "with each other instead.")
#: A fit that rests on fewer eigenvalues than this, or a tail of fewer than FEW_TAIL, is a rough
#: reading: MobileNetV2's 144 x 9 depthwise layers have 9 eigenvalues and were labelled
#: over-trained from them. Per fit: a conv layer under the release's rule fits each block alone.
FEW_EIGS = 50
FEW_TAIL = 10


def label(alpha: float) -> str:
    """The HT-SR diagnosis of one alpha: over-trained (<2), well-trained (2-6), under-trained (>6)."""
    if alpha is None or not np.isfinite(alpha):
        return NO_FIT
    for lo, hi, name, _ in BANDS:
        if lo <= alpha < hi or (name == "well-trained" and alpha == hi):
            return name
    return "over-trained" if alpha < 0 else "under-trained"


def labels(alphas) -> list[str]:
    return [label(a) for a in np.asarray(alphas, dtype=np.float64)]


def rough_note(n_eigs: float, n_tail: float, n_fits: float = 1) -> str:
    """Why a fit is a rough reading (few eigenvalues or a short tail per fit), or ''."""
    try:
        per_eigs, per_tail = float(n_eigs) / max(1.0, float(n_fits)), float(n_tail) / max(1.0, float(n_fits))
    except (TypeError, ValueError):
        return ""
    if not (np.isfinite(per_eigs) and per_eigs > 0):
        return ""
    each = " per block" if n_fits and float(n_fits) > 1 else ""
    if per_eigs < FEW_EIGS:
        return f"{per_eigs:.0f} eigenvalues{each}"
    if np.isfinite(per_tail) and per_tail < FEW_TAIL:
        return f"a tail of {per_tail:.0f}{each}"
    return ""


def fits_per_layer(table: pd.DataFrame, blocks) -> np.ndarray:
    """Fits behind each layer's FARMS alpha: its blocks per slice where ``blocks`` (a bool per row:
    the release's conv rule applies), else 1."""
    t = table.reset_index(drop=True)
    nw = pd.to_numeric(t.get("n_windows"), errors="coerce").to_numpy(float) if "n_windows" in t else np.ones(len(t))
    ns = pd.to_numeric(t.get("n_slices"), errors="coerce").to_numpy(float) if "n_slices" in t else np.ones(len(t))
    per = np.where(np.isfinite(nw) & np.isfinite(ns) & (ns >= 1), nw / np.maximum(ns, 1), 1.0)
    return np.where(np.asarray(blocks, dtype=bool), np.maximum(per, 1.0), 1.0)


def rough_fits(table: pd.DataFrame, blocks=None) -> pd.DataFrame:
    """Per layer, why its raw / FARMS fit is a rough reading ('' when not): columns rough_raw,
    rough_farms (see FEW_EIGS, FEW_TAIL); ``blocks`` as in :func:`fits_per_layer`."""
    t = table.reset_index(drop=True)
    n_fits = fits_per_layer(t, np.zeros(len(t), bool) if blocks is None else blocks)

    def col(name):
        return pd.to_numeric(t[name], errors="coerce").to_numpy(float) if name in t else np.full(len(t), np.nan)

    out = {}
    for which, fits in (("raw", np.ones(len(t))), ("farms", n_fits)):
        e, k = col(f"n_eigs_{which}"), col(f"n_tail_{which}")
        a = col(f"alpha_{which}")
        out[f"rough_{which}"] = [rough_note(e[i], k[i], fits[i]) if np.isfinite(a[i]) else ""
                                 for i in range(len(t))]
    return pd.DataFrame(out)


def blocks_mask(table: pd.DataFrame, settings) -> np.ndarray:
    """Per row: FARMS is the release's conv blocks there (one fit per block, see pipeline.layer)."""
    kinds = table["kind"].astype(str) if "kind" in table else [""] * len(table)
    return np.array([uses_blocks(k, settings) for k in kinds], dtype=bool)


def is_conv_net(table: pd.DataFrame) -> bool:
    """Most of the model's analysed layers are convolutions."""
    kinds = table.get("kind")
    return kinds is not None and len(table) > 0 and float(kinds.astype(str).str.startswith("conv").mean()) >= 0.5


def diagnosis_table(table: pd.DataFrame, blocks=None) -> pd.DataFrame:
    """Each layer's diagnosis raw vs FARMS; layers whose label flips come first, then model order.
    ``trust`` says where a fit rests on few eigenvalues (see :func:`rough_fits`)."""
    t = table.reset_index(drop=True)
    out = pd.DataFrame({
        "layer": t["layer"],
        "kind": t.get("kind", pd.Series([""] * len(t))).fillna(""),
        "shape": [f"{int(r)} × {int(c)}" for r, c in zip(t["rows"], t["cols"])],
        "aspect_ratio": t["aspect_ratio"].astype(float),
        "alpha_raw": t["alpha_raw"].astype(float),
        "alpha_farms": t["alpha_farms"].astype(float),
    })
    out["label_raw"] = labels(out["alpha_raw"])
    out["label_farms"] = labels(out["alpha_farms"])
    out["flipped"] = (out["label_raw"] != out["label_farms"]) & (out["label_raw"] != NO_FIT) & (out["label_farms"] != NO_FIT)
    rough = rough_fits(t, blocks)
    out["trust"] = ["; ".join(f"{w}: {n}" for w, n in (("raw", r), ("FARMS", f)) if n)
                    for r, f in zip(rough["rough_raw"], rough["rough_farms"])]
    out["trust"] = ["⚠ few eigenvalues (" + x + ")" if x else "" for x in out["trust"]]
    out["order"] = np.arange(len(out))
    out = out.sort_values(["flipped", "order"], ascending=[False, True], kind="stable")
    return out.drop(columns="order").reset_index(drop=True)


@dataclass(frozen=True)
class Summary:
    """Model-level numbers for the home page."""

    n_layers: int
    n_fitted: int
    n_flipped: int
    mean_raw: float
    std_raw: float
    mean_farms: float
    std_farms: float
    counts_raw: dict
    counts_farms: dict


def summarize(table: pd.DataFrame) -> Summary:
    """Number of layers, diagnosis flips, mean and spread (std) of alpha raw vs FARMS."""
    d = diagnosis_table(table) if len(table) else None
    raw = table["alpha_raw"].astype(float).to_numpy() if len(table) else np.array([])
    farms = table["alpha_farms"].astype(float).to_numpy() if len(table) else np.array([])

    def ms(a):
        a = a[np.isfinite(a)]
        if a.size == 0:
            return math.nan, math.nan
        return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else 0.0

    mr, sr = ms(raw)
    mf, sf = ms(farms)
    names = [b[2] for b in BANDS] + [NO_FIT]
    counts = lambda col: {n: int((d[col] == n).sum()) if d is not None else 0 for n in names}  # noqa: E731
    return Summary(
        n_layers=len(table),
        n_fitted=int(np.sum(np.isfinite(raw) & np.isfinite(farms))),
        n_flipped=int(d["flipped"].sum()) if d is not None else 0,
        mean_raw=mr, std_raw=sr, mean_farms=mf, std_farms=sf,
        counts_raw=counts("label_raw"), counts_farms=counts("label_farms"),
    )


def filter_layers(table: pd.DataFrame, pattern: str = "", kinds=None) -> pd.DataFrame:
    """Rows whose layer name matches the regex ``pattern`` and whose kind is in ``kinds`` (if given).

    The pattern runs in linear time (RE2, see :mod:`farms_viz.pipeline.layerfilter`); FarmsError if invalid.
    """
    out = table
    if pattern:
        out = out[filter_names(out["layer"], pattern)]
    if kinds and "kind" in out:
        out = out[out["kind"].isin(list(kinds))]
    return out


def layer_kinds(table: pd.DataFrame) -> list[str]:
    if "kind" not in table:
        return []
    return sorted(k for k in table["kind"].dropna().unique() if k)


def fmt_number(x, digits: int = 3) -> str:
    """A number for a card or table: ``digits`` significant digits, scientific when tiny or huge, – when missing."""
    if x is None:
        return "–"
    try:
        xf = float(x)
    except (TypeError, ValueError):
        return str(x)
    if not np.isfinite(xf):
        return "–"
    if xf != 0 and (abs(xf) >= 1e4 or abs(xf) < 1e-3):
        return f"{xf:.{digits - 1}e}"
    return f"{xf:.{digits}g}" if abs(xf) >= 100 else f"{xf:.{digits}f}".rstrip("0").rstrip(".") or "0"


def layer_numbers(spec, row: pd.Series | dict, which: str, rules: dict | None = None) -> dict[str, str]:
    """The numbers card of one layer, raw or FARMS: label -> formatted value. ``rules``: this side's
    alpha under each fit rule (``{rule: alpha}``, see analyses.rules), listed after alpha."""
    side = spec.side(which)
    fit, mp, esd = side.fit, side.mp, side.esd
    lam_max = float(esd[-1]) if len(esd) else math.nan
    fro2 = float(np.sum(esd)) if len(esd) else math.nan
    blocks, failed = fit.n_blocks, fit.n_blocks_failed
    rough = rough_note(fit.n_eigs, fit.n_tail, blocks + failed) if np.isfinite(fit.alpha) else ""
    numbers = {
        "alpha": fmt_number(fit.alpha) + (f" (mean of {blocks} block fits"
                                    + (f"; {failed} blocks without a fit left out" if failed else "") + ")"
                                    if blocks > 1 or failed else ""),
    }
    if rough:
        numbers["⚠ trust"] = f"rough: the fit rests on {rough} (< {FEW_EIGS} eigenvalues or a tail < {FEW_TAIL})"
    for rule, a in (rules or {}).items():
        numbers[f"α by {rule}" + (" (in use)" if rule == fit.method else "")] = fmt_number(a)
    numbers.update({
        "diagnosis": label(fit.alpha),
        "xmin": fmt_number(fit.xmin) + (" (block mean)" if blocks > 1 else ""),
        "KS distance D": fmt_number(fit.D),
        "tail size": f"{fit.n_tail} of {fit.n_eigs}",
        "spectral norm λmax": fmt_number(lam_max),
        "stable rank": fmt_number(fro2 / lam_max if lam_max > 0 else math.nan),
        "MP σ (entry std)": fmt_number(mp.sigma),
        "MP bulk edge λ+": fmt_number(mp.lambda_plus),
    })
    if which == "raw":
        numbers["spikes above λ+"] = str(int(mp.n_spikes))
    else:  # the table's n_spikes_farms: spikes counted in every window, averaged
        n = row.get("n_spikes_farms", math.nan) if hasattr(row, "get") else math.nan
        numbers["spikes above λ+ per window"] = fmt_number(n)
    return numbers


def farms_what(spec, n_slices: int = 1) -> str:
    """What the FARMS side of a layer is made of, in a few words."""
    g = spec.grid
    per = f" in each of {n_slices} kernel positions" if n_slices > 1 else ""
    if spec.blocks:
        return f"{g.n_windows} blocks of {g.h} × {g.w}{per}: one fit per block, α averaged"
    if g.n_windows == 1 and n_slices <= 1:
        return f"one window of {g.h} × {g.w}: the whole matrix, so FARMS = raw"
    return f"{g.n_windows} windows of {g.h} × {g.w}{per}, pooled"


def grid_caption(grid, n_slices: int = 1, blocks: bool = False) -> str:
    """A sentence describing where FARMS looks: the window grid, or the release's conv blocks."""
    per = f" per slice × {n_slices} slices" if n_slices and n_slices > 1 else ""
    if blocks:
        return (f"FARMS blocks (the release's conv rule): {grid.n_windows} disjoint blocks of {grid.h} × {grid.w}"
                f"{per} over the {grid.rows} × {grid.cols} matrix; block i is pooled over the kernel positions "
                "and fitted alone, and the layer's α is the mean of the block fits.")
    return (f"FARMS windows: {grid.h} × {grid.w} (aspect ratio {max(grid.h, grid.w) / min(grid.h, grid.w):.2g}), "
            f"row step {grid.row_step}, column step {grid.col_step}, "
            f"{len(grid.row_starts)} × {len(grid.col_starts)} = {grid.n_windows} "
            f"window{'s' if grid.n_windows != 1 else ''}{per} "
            f"over the {grid.rows} × {grid.cols} matrix.")