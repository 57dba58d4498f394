"""Compare checkpoints: two reports matched layer by layer, and a series of reports across training steps.

Pure tables (pandas), no Streamlit or Plotly. Layers are matched by name, by name without a prefix
or suffix one side adds, or by shape and order (:mod:`farms_viz.analyses.matching`); a layer on one
side only, or whose matrix shape differs, is kept with a ``status`` instead of being dropped.
Delta alpha is B - A, raw and FARMS. HT-SR labels (over-trained < 2 <= well-trained <= 6 <
under-trained) come from :mod:`farms_viz.analyses.diagnosis`.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from farms_viz.analyses.diagnosis import NO_FIT, labels
from farms_viz.analyses.matching import match_layers
from farms_viz.errors import FarmsError
from farms_viz.pipeline.analyze import analyze
from farms_viz.zoo.digits import ARCHS, EPOCHS

#: the columns every comparison starts with, in this order (the README's table; more follow them)
CORE_COLUMNS = ["layer", "alpha_raw_a", "alpha_raw_b", "alpha_farms_a", "alpha_farms_b",
                "delta_raw", "delta_farms", "status"]
EXTRA_COLUMNS = ["kind", "shape_a", "shape_b", "label_raw_a", "label_raw_b", "label_farms_a", "label_farms_b",
                 "changed_raw", "changed_farms", "layer_b", "matched_by"]
COLUMNS = CORE_COLUMNS + EXTRA_COLUMNS
OK, ONLY_A, ONLY_B, SHAPE = "ok", "only in A", "only in B", "shape differs"
#: file names a checkpoint folder may hold (a subfolder counts too: a Hugging Face checkpoint-N folder)
WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".ckpt")


def _table(x) -> pd.DataFrame:
    """A report's table, or a table as is."""
    return x.table if hasattr(x, "table") else x


def _shape(row) -> str:
    try:
        r, c = float(row["rows"]), float(row["cols"])
    except (KeyError, TypeError, ValueError):
        return ""
    return f"{int(r)} × {int(c)}" if np.isfinite(r) and np.isfinite(c) else ""


def _by_layer(t: pd.DataFrame) -> dict[str, pd.Series]:
    """Rows by layer name, first occurrence wins, in table order."""
    out: dict[str, pd.Series] = {}
    for _, row in t.iterrows():
        out.setdefault(str(row["layer"]), row)
    return out


def _shape_key(row):
    """What ``order`` matching calls the same shape: kind, rows x cols and the number of slices; None unknown."""
    shape = _shape(row)
    if not shape:
        return None
    slices = row.get("n_slices")
    slices = float(slices) if isinstance(slices, (int, float, np.number)) and np.isfinite(slices) else None
    return str(row.get("kind", "") or ""), shape, slices


def _label(x, default: str) -> str:
    name = getattr(x, "name", None)
    return str(name) if isinstance(name, str) and name else default


def _side_status(row) -> str:
    s = row.get("status", OK) if row is not None else OK
    return OK if s is None or (isinstance(s, float) and np.isnan(s)) or s == "" else str(s)


def compare(a, b, *, match: str = "auto", progress=None, cache: bool = True, **options) -> pd.DataFrame:
    """Analyse checkpoints ``a`` and ``b`` with the same settings (each exactly as :func:`analyze`
    with ``options`` would) and match them layer by layer (:func:`compare_tables`)."""
    return compare_tables(*(analyze(x, progress=progress, cache=cache, **options) for x in (a, b)), match=match)


def compare_tables(a, b, match: str = "auto", names: tuple[str, str] | None = None,
                   metric: str = "alpha") -> pd.DataFrame:
    """Match two reports (or tables) layer by layer: a row per layer, A's order, B-only appended.

    ``match`` (:data:`farms_viz.analyses.matching.MATCH_MODES`): ``auto`` by name, else by name
    without a prefix/suffix one side adds; ``name`` exact names only; ``order`` the i-th layer of a
    shape in A with the i-th of that shape in B. ``layer`` is A's name (B's for a B-only row),
    ``layer_b`` B's name where it differs, ``matched_by`` how the row's pair was made; the sentence
    saying how layers were matched is in ``attrs["matching"]`` (and :func:`compare_summary`).
    FarmsError with one sentence when no layer pairs up (``names`` name A and B in it; default
    the reports' names).

    ``status``: ``ok``; ``only in A`` / ``only in B``; ``shape differs`` (alphas and deltas are
    still given: FARMS alpha is comparable across shapes, raw alpha is biased by them); else the
    layer status of either side, prefixed ``A: `` / ``B: ``. ``delta_* = alpha_*_b - alpha_*_a``
    (NaN unless both are finite). ``changed_raw`` / ``changed_farms``: the HT-SR label differs
    between A and B (both fitted). ``metric``: another metric of the reports (log_norm, entropy ...)
    carried as well, as ``<metric>_<raw|farms>_<a|b>`` and ``delta_<metric>_<raw|farms>`` (the labels
    stay alpha's).
    """
    ta, tb = _table(a), _table(b)
    extra = metric_columns(metric)
    ra, rb = _by_layer(ta), _by_layer(tb)
    names = names or (_label(a, "A"), _label(b, "B"))
    m = match_layers(list(ra), list(rb), {n: _shape_key(r) for n, r in ra.items()},
                     {n: _shape_key(r) for n, r in rb.items()}, match, names)
    b_of = dict(m.pairs)
    paired = set(b_of.values())
    entries = [(n, n, b_of.get(n)) for n in ra] + [(None, None, n) for n in rb if n not in paired]
    rows, taken = [], set(ra)
    for name, name_a, name_b in entries:
        if name is None:  # a B-only row: its own name, unless an A row has it already
            name = name_b
            while name in taken:
                name += " (B)"
            taken.add(name)
        xa, xb = ra.get(name_a) if name_a else None, rb.get(name_b) if name_b else None
        row = {"layer": name, "layer_b": name_b if name_b is not None and name_b != name else "",
               "matched_by": m.row_how(name_a, name_b) if name_a and name_b else ""}
        for side, x in (("a", xa), ("b", xb)):
            for which in ("raw", "farms"):
                v = x.get(f"alpha_{which}", np.nan) if x is not None else np.nan
                row[f"alpha_{which}_{side}"] = float(v) if v is not None else np.nan
                if extra:
                    v = pd.to_numeric(x.get(f"{metric}_{which}", np.nan), errors="coerce") if x is not None else np.nan
                    row[f"{metric}_{which}_{side}"] = float(v)
            row[f"shape_{side}"] = _shape(x) if x is not None else ""
        x_any = xa if xa is not None else xb
        row["kind"] = str(x_any.get("kind", "") or "") if x_any is not None else ""
        if xb is None:
            status = ONLY_A
        elif xa is None:
            status = ONLY_B
        elif row["shape_a"] != row["shape_b"]:
            status = SHAPE
        else:
            parts = [f"{s}: {st}" for s, st in (("A", _side_status(xa)), ("B", _side_status(xb))) if st != OK]
            status = "; ".join(parts) if parts else OK
        row["status"] = status
        rows.append(row)
    out = pd.DataFrame(rows, columns=[c for c in COLUMNS if not c.startswith(("delta", "label_", "changed"))]
                       + extra[:4])
    both = ~out["status"].isin([ONLY_A, ONLY_B])
    for which in ("raw", "farms"):
        a_, b_ = out[f"alpha_{which}_a"].astype(float), out[f"alpha_{which}_b"].astype(float)
        out[f"delta_{which}"] = np.where(both, b_ - a_, np.nan)
        out[f"label_{which}_a"] = labels(a_)
        out[f"label_{which}_b"] = labels(b_)
        la, lb = out[f"label_{which}_a"], out[f"label_{which}_b"]
        out[f"changed_{which}"] = both & (la != lb) & (la != NO_FIT) & (lb != NO_FIT)
        if extra:
            out[f"delta_{metric}_{which}"] = np.where(both, out[f"{metric}_{which}_b"] - out[f"{metric}_{which}_a"],
                                                      np.nan)
    out = out[COLUMNS + extra].reset_index(drop=True)
    out.attrs["matching"] = m.describe()
    return out


def side_names(cmp: pd.DataFrame) -> dict[str, tuple[str | None, str | None]]:
    """Each row's ``layer`` -> (its name in A, its name in B), None on the side that lacks it."""
    return {layer: (None if st == ONLY_B else layer, None if st == ONLY_A else (lb or layer))
            for layer, lb, st in zip(cmp["layer"], cmp["layer_b"], cmp["status"])}


def unmatched(cmp: pd.DataFrame) -> pd.DataFrame:
    """The rows whose status is not ``ok`` (one side only, shape differs, or a layer status)."""
    return cmp[cmp["status"] != OK].reset_index(drop=True)


def diagnosis_changes(cmp: pd.DataFrame) -> pd.DataFrame:
    """Layers whose HT-SR label changes from A to B, raw or FARMS: layer, the labels, which changed."""
    ch = cmp[cmp["changed_raw"] | cmp["changed_farms"]]
    return ch[["layer", "label_raw_a", "label_raw_b", "label_farms_a", "label_farms_b",
               "changed_raw", "changed_farms"]].reset_index(drop=True)


def change_text(row) -> str:
    """One line saying how a layer's diagnosis moves, e.g. ``raw: well-trained → over-trained``."""
    parts = [f"{name}: {row[f'label_{which}_a']} → {row[f'label_{which}_b']}"
             for which, name in (("raw", "raw"), ("farms", "FARMS")) if bool(row[f"changed_{which}"])]
    return "; ".join(parts)


def compare_summary(cmp: pd.DataFrame) -> dict:
    """Counts and mean deltas: matched, only_a, only_b, shape_differs, changed_raw/farms, mean_delta_*,
    and ``matching``: how layers were matched, in a sentence."""
    st = cmp["status"]
    matched = int((~st.isin([ONLY_A, ONLY_B])).sum())
    out = {"layers": len(cmp), "matched": matched,
           "matching": cmp.attrs.get("matching") or f"{matched} of {len(cmp)} layers matched",
           "only_a": int((st == ONLY_A).sum()), "only_b": int((st == ONLY_B).sum()),
           "shape_differs": int((st == SHAPE).sum()),
           "changed_raw": int(cmp["changed_raw"].sum()), "changed_farms": int(cmp["changed_farms"].sum())}
    for which in ("raw", "farms"):
        d = cmp[f"delta_{which}"].astype(float)
        d = d[np.isfinite(d)]
        out[f"mean_delta_{which}"] = float(d.mean()) if len(d) else float("nan")
    return out


# ------------------------------------------------------------------ series

def metric_columns(metric: str) -> list[str]:
    """The columns :func:`compare_tables` adds for ``metric`` (none for alpha, which it always has)."""
    if metric == "alpha":
        return []
    return ([f"{metric}_{w}_{s}" for w in ("raw", "farms") for s in ("a", "b")]
            + [f"delta_{metric}_{w}" for w in ("raw", "farms")])


def value_column(metric: str, which: str, side: str | None = None) -> str:
    """Where a comparison (``side`` a / b) or a series (no side) keeps ``metric``'s raw or FARMS value."""
    return f"{metric}_{which}" + (f"_{side}" if side else "")


def delta_column(metric: str, which: str) -> str:
    return f"delta_{which}" if metric == "alpha" else f"delta_{metric}_{which}"


def series_long(items, metric: str = "alpha") -> pd.DataFrame:
    """A long table of several checkpoints: step, step_index, layer, layer_index, alpha_raw, alpha_farms, status.

    ``items`` is a list of ``(step label, report or table)`` in training order. Layers are in
    order of first appearance (the first checkpoint's model order, later-only layers appended).
    ``metric``: another metric carried as ``<metric>_raw`` / ``<metric>_farms`` too.
    """
    extra = [] if metric == "alpha" else [f"{metric}_raw", f"{metric}_farms"]
    rows, order = [], {}
    for i, (label, rep) in enumerate(items):
        t = _table(rep)
        for _, r in t.iterrows():
            name = str(r["layer"])
            order.setdefault(name, len(order))
            rows.append({"step": str(label), "step_index": i, "layer": name, "layer_index": order[name],
                         "alpha_raw": float(r["alpha_raw"]), "alpha_farms": float(r["alpha_farms"]),
                         "status": _side_status(r),
                         **{c: float(pd.to_numeric(r.get(c, np.nan), errors="coerce")) for c in extra}})
    cols = ["step", "step_index", "layer", "layer_index", "alpha_raw", "alpha_farms", "status", *extra]
    return pd.DataFrame(rows, columns=cols)


def series_wide(long: pd.DataFrame, column: str = "alpha_farms") -> pd.DataFrame:
    """``column`` as layers (rows, model order) x steps (columns, training order); NaN where a layer is absent."""
    if long.empty:
        return pd.DataFrame()
    steps = long.drop_duplicates("step_index").sort_values("step_index")["step"].tolist()
    layers = long.drop_duplicates("layer").sort_values("layer_index")["layer"].tolist()
    w = long.pivot_table(index="layer", columns="step", values=column, aggfunc="first", dropna=False)
    return w.reindex(index=layers, columns=steps)


def series_mean(long: pd.DataFrame, metric: str = "alpha") -> pd.DataFrame:
    """Per step: mean and std over layers of alpha (or ``metric``) raw and FARMS (finite values only)
    and the layer count."""
    out = []
    for (i, step), g in long.groupby(["step_index", "step"], sort=True):
        row = {"step": step, "step_index": i, "n_layers": len(g)}
        for which in ("raw", "farms"):
            a = g[f"{metric}_{which}"].astype(float)
            a = a[np.isfinite(a)]
            row[f"mean_{which}"] = float(a.mean()) if len(a) else np.nan
            row[f"std_{which}"] = float(a.std(ddof=0)) if len(a) else np.nan
        out.append(row)
    cols = ["step", "step_index", "n_layers", "mean_raw", "std_raw", "mean_farms", "std_farms"]
    return pd.DataFrame(out, columns=cols)


_STEP_KEYS = re.compile(r"(?:global[_-]?step|step|iter(?:ation)?|checkpoint|ckpt)[-_=]?(\d+)", re.I)
_EPOCH_KEY = re.compile(r"epoch[-_=]?(\d+)", re.I)
_ANY_NUMBER = re.compile(r"(\d+)")


def step_number(name: str) -> int | None:
    """The training step in a checkpoint name: after ``step``/``iter``/``checkpoint``/``ckpt``, else
    after ``epoch``, else the last number; None when the name has no digits.

    ``checkpoint-1000`` -> 1000, ``model-epoch=3-step=1200.ckpt`` -> 1200, ``digits-mlp-epoch03`` -> 3,
    ``run7_500.pt`` -> 500.
    """
    stem = Path(name).name
    for suf in WEIGHT_SUFFIXES:
        if stem.lower().endswith(suf):
            stem = stem[: -len(suf)]
            break
    for rx in (_STEP_KEYS, _EPOCH_KEY):
        m = rx.findall(stem)
        if m:
            return int(m[-1])
    m = _ANY_NUMBER.findall(stem)
    return int(m[-1]) if m else None


def checkpoint_files(folder) -> list[tuple[str, Path]]:
    """The checkpoints in ``folder`` sorted by step number in the name: ``(label, path)`` pairs.

    A checkpoint is a weights file (.safetensors, .pt, .pth, .bin, .ckpt) or a subfolder (a Hugging
    Face ``checkpoint-N`` folder). Names without a number come last, by name. The label is
    ``step N`` (``epoch N`` when the number came from ``epoch``), or the name.
    """
    p = Path(folder).expanduser()
    if not p.is_dir():
        raise FarmsError(f"{p} is not a folder; give a folder that holds one checkpoint per step.")
    found = []
    for f in p.iterdir():
        if f.name.startswith("."):
            continue
        if f.is_dir() or (f.is_file() and f.name.lower().endswith(WEIGHT_SUFFIXES) and "index" not in f.name):
            found.append(f)
    if not found:
        raise FarmsError(f"{p} holds no checkpoints (weights files {', '.join(WEIGHT_SUFFIXES)} or checkpoint folders).")
    keyed = sorted(found, key=lambda f: (step_number(f.name) is None, step_number(f.name) or 0, f.name))
    out, seen = [], set()
    for f in keyed:
        n = step_number(f.name)
        unit = "epoch" if n is not None and not _STEP_KEYS.search(f.name) and _EPOCH_KEY.search(f.name) else "step"
        label = f"{unit} {n}" if n is not None else f.name
        if label in seen:  # two files with one number: keep them apart
            label = f"{label} ({f.name})"
        seen.add(label)
        out.append((label, f))
    return out


def zoo_series(arch: str) -> list[tuple[str, str]]:
    """The zoo's digits training run of ``arch`` (``mlp`` or ``cnn``): ``(epoch label, zoo name)`` pairs."""
    if arch not in ARCHS:
        raise FarmsError(f"there is no digits series {arch!r}; choose one of {', '.join(ARCHS)}.")
    return [(f"epoch {e}", f"digits-{arch}@{e}") for e in EPOCHS]
