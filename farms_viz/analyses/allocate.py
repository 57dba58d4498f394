"""Layer-wise allocations from alphas: TempBalance learning rates and AlphaPruning sparsities.

Numerics only (no Streamlit, no Plotly). Every table-level call computes the allocation twice,
from ``alpha_raw`` and from ``alpha_farms``, so the effect of the aspect-ratio bias is visible.

- **TempBalance** (Zhou et al., NeurIPS 2023): a layer with a larger alpha is less trained and
  gets a larger learning rate. Maps, for the n layers that take part:

  * ``linear``: ``np.interp(a, [min a, max a], [lr_min_ratio * lr, lr_max_ratio * lr])``
  * ``sqrt``:   ``n * lr * sqrt(a) / sum(sqrt(a))``
  * ``log2``:   ``n * lr * log2(a) / sum(log2(a))`` (needs every alpha > 1)
  * ``step``:   ``lr * (lr_min_ratio + (lr_max_ratio - lr_min_ratio) * rank / n)``, rank 0..n-1
    in ascending alpha (tied alphas share their average rank)

  The first and/or last layer can be left at the base rate, as TempBalance does; they are then
  left out of the map (n counts only the layers that take part).

- **AlphaPruning** (Lu et al., NeurIPS 2024): a layer with a larger alpha is less trained and is
  pruned more. ``r_i = (a_i - min) / (max - min) * (s2 - s1) + s1`` with ``s1 = 1 - epsilon``,
  ``s2 = 1 + epsilon``, then scaled by ``S * sum(p) / sum(p * r)`` so the parameter-weighted mean
  sparsity is exactly S (p = parameters per layer). Block-wise: alpha averaged over the layers of
  each transformer block first.

Conventions (documented, tested):

- Equal alphas (max == min): the linear maps use the middle of their range, so the allocation is
  uniform (AlphaPruning: every layer at S; TempBalance linear: the mid rate), never 0/0.
- Missing alphas (NaN: layers with a status): AlphaPruning gives them the target S and scales
  the others to mean S among themselves, so the overall weighted mean stays exactly S;
  TempBalance gives them the base lr. They never enter min, max or sums.
- Sparsities above 1 cannot be applied. Two rules (``cap``), the capped layers reported by both:

  * ``redistribute`` (farms-viz's default): capped at 1 and the excess redistributed over the
    uncapped layers by one common factor (the order by alpha is kept), so the weighted mean stays
    exactly S;
  * ``release``: the FARMS release's (``ww_sparsity``, LLM_Pruning/lib/prune.py 417-425): a ratio
    above 1 becomes 0.998, or 0.99999 when S is exactly 0.7, and nothing is redistributed, so the
    mean falls below S. (The AlphaPruning release does not cap; an earlier issue described the
    FARMS rule as a plain 0.998: the code also has the 0.7 case, and the code is followed.)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
import pandas as pd

from farms_viz.analyses.blocks import block_ids, block_mean_alphas, has_blocks, in_blocks, matrix_group
from farms_viz.errors import FarmsError
from farms_viz.pipeline.schema import SIDES

SCHEMES = ("alphapruning", "tempbalance")
MAPS = ("linear", "sqrt", "log2", "step")
CAPS = ("redistribute", "release")
REQUIRED = ("layer", "rows", "cols", "alpha_raw", "alpha_farms")
WHICH = SIDES


# ------------------------------------------------------------------ TempBalance

def tempbalance_lrs(alphas, lr: float, map: str = "linear", lr_min_ratio: float = 0.5,
                    lr_max_ratio: float = 1.5, keep_first: bool = False, keep_last: bool = False) -> np.ndarray:
    """Per-layer learning rates from alphas (model order); see the module docstring for the maps.

    Layers with NaN alpha, and the first/last layer when ``keep_first``/``keep_last``, get ``lr``.
    """
    a = np.asarray(alphas, dtype=np.float64)
    if not (np.isfinite(lr) and lr > 0):
        raise FarmsError(f"the base learning rate must be a positive number (got {lr}).")
    if map not in MAPS:
        raise FarmsError(f"unknown TempBalance map {map!r}; use one of {', '.join(MAPS)}.")
    if not (0 <= lr_min_ratio <= lr_max_ratio):
        raise FarmsError(f"need 0 <= lr_min_ratio <= lr_max_ratio (got {lr_min_ratio}, {lr_max_ratio}).")
    out = np.full(a.shape, float(lr))
    use = np.isfinite(a)
    if keep_first and a.size:
        use[0] = False
    if keep_last and a.size:
        use[-1] = False
    x = a[use]
    n = x.size
    if n == 0:
        return out
    lo_lr, hi_lr = lr_min_ratio * lr, lr_max_ratio * lr
    if map == "linear":
        lo, hi = float(x.min()), float(x.max())
        vals = np.full(n, (lo_lr + hi_lr) / 2) if hi <= lo else np.interp(x, [lo, hi], [lo_lr, hi_lr])
    elif map == "step":
        vals = lr * (lr_min_ratio + (lr_max_ratio - lr_min_ratio) * _average_rank(x) / n)
    else:
        f = np.sqrt if map == "sqrt" else np.log2
        if map == "sqrt" and (x < 0).any():
            raise FarmsError("the sqrt map needs alphas >= 0.")
        if map == "log2" and (x <= 1).any():
            raise FarmsError("the log2 map needs every alpha > 1 (log2 of alpha <= 1 is not a positive weight).")
        w = f(x)
        vals = np.full(n, float(lr)) if w.sum() <= 0 else n * lr * w / w.sum()
    out[use] = vals
    return out


def _average_rank(x: np.ndarray) -> np.ndarray:
    """0-based ranks in ascending order; ties get the mean of the ranks they span."""
    order = np.argsort(x, kind="stable")
    ranks = np.empty(x.size)
    ranks[order] = np.arange(x.size, dtype=np.float64)
    _, inv = np.unique(x, return_inverse=True)
    sums = np.bincount(inv, weights=ranks)
    counts = np.bincount(inv)
    return (sums / counts)[inv]


# ------------------------------------------------------------------ AlphaPruning

def release_cap(sparsity: float) -> float:
    """The FARMS release's value for a ratio above 1: 0.99999 at S == 0.7, else 0.998."""
    return 0.99999 if sparsity == 0.7 else 0.998


def alphapruning_ratios(alphas, params, sparsity: float, epsilon: float, cap: str = "redistribute"
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Per-layer sparsities (fraction of weights removed) and a mask of those capped.

    ``r = (a - min)/(max - min) (s2 - s1) + s1``, ``s1, s2 = 1 -+ epsilon``, times
    ``S sum(p) / sum(p r)``; NaN alphas get S; ratios above 1 by the ``cap`` rule (module docstring).
    """
    if cap not in CAPS:
        raise FarmsError(f"unknown cap rule {cap!r}; use one of {', '.join(CAPS)}.")
    a = np.asarray(alphas, dtype=np.float64)
    p = np.asarray(params, dtype=np.float64)
    if a.shape != p.shape:
        raise FarmsError("alphas and parameter counts must have the same length.")
    if not (0 <= sparsity <= 1):
        raise FarmsError(f"the sparsity must be between 0 and 1 (got {sparsity}).")
    if not (0 <= epsilon <= 1):
        raise FarmsError(f"epsilon must be between 0 and 1 (got {epsilon}); s1 = 1 - epsilon must not be negative.")
    if (~np.isfinite(p)).any() or (p <= 0).any():
        raise FarmsError("every layer needs a positive parameter count (rows x cols).")
    out = np.full(a.shape, float(sparsity))
    capped = np.zeros(a.shape, dtype=bool)
    use = np.isfinite(a)
    if not use.any():
        return out, capped
    x, pw = a[use], p[use]
    lo, hi = float(x.min()), float(x.max())
    s1, s2 = 1.0 - epsilon, 1.0 + epsilon
    r = np.ones_like(x) if hi <= lo else (x - lo) / (hi - lo) * (s2 - s1) + s1
    if cap == "release":
        scaled = r * (sparsity * pw.sum() / (pw * r).sum()) if (pw * r).sum() > 0 else np.full(r.shape, sparsity)
        over = scaled > 1.0
        vals, hit = np.where(over, release_cap(sparsity), scaled), over
    else:
        vals, hit = _scale_to_mean(r, pw, sparsity)
    out[use], capped[use] = vals, hit
    return out, capped


def _scale_to_mean(r: np.ndarray, p: np.ndarray, target: float) -> tuple[np.ndarray, np.ndarray]:
    """``min(1, c r)`` with the one c that makes the p-weighted mean equal ``target`` (water-filling)."""
    total = target * p.sum()
    if total <= 0 or not (r > 0).any():
        return np.full(r.shape, float(target)), np.zeros(r.shape, dtype=bool)
    c = total / (p * r).sum()
    if (c * r <= 1.0).all():  # the AlphaPruning formula as released: nothing to cap
        return c * r, np.zeros(r.shape, dtype=bool)
    cap = c * r > 1.0
    for _ in range(r.size + 1):  # grow the capped set until the common factor caps no one else
        free = ~cap
        denom = (p[free] * r[free]).sum()
        c = (total - p[cap].sum()) / denom if denom > 0 else np.inf
        new = cap | (c * r > 1.0)
        if (new == cap).all():
            break
        cap = new
    vals = np.where(cap, 1.0, np.minimum(c * r, 1.0) if np.isfinite(c) else 1.0)
    return vals, cap


# ------------------------------------------------------------------ tables

@dataclass
class Allocation:
    """One scheme applied to raw and FARMS alphas.

    ``table``: ``layer`` and ``ratio_raw``/``ratio_farms`` (AlphaPruning) or ``lr_raw``/``lr_farms``
    (TempBalance), in input order. ``capped``: layers capped at sparsity 1, per ``raw``/``farms``.
    ``missing``: layers without an alpha (given S or the base lr). ``settings``: the call's options.
    ``left_out``: layers outside transformer blocks that ``blocks_only`` leaves dense.
    """

    scheme: str
    table: pd.DataFrame
    settings: dict
    capped: dict = field(default_factory=lambda: {"raw": [], "farms": []})
    missing: dict = field(default_factory=lambda: {"raw": [], "farms": []})
    #: layers left dense and out of the allocation (``blocks_only``), in input order
    left_out: list = field(default_factory=list)

    @property
    def value(self) -> str:
        return "ratio" if self.scheme == "alphapruning" else "lr"

    def columns(self) -> tuple[str, str]:
        return f"{self.value}_raw", f"{self.value}_farms"

    def as_dict(self) -> dict:
        """``{"scheme", "settings", "raw": {layer: value}, "farms": {layer: value}}`` for scripts."""
        out = {"scheme": self.scheme, "settings": dict(self.settings)}
        for w, col in zip(WHICH, self.columns()):
            out[w] = {str(k): float(v) for k, v in zip(self.table["layer"], self.table[col])}
        return out


def check_table(table: pd.DataFrame) -> pd.DataFrame:
    """The table with the columns allocations need, numbers as float; one FarmsError otherwise."""
    missing = [c for c in REQUIRED if c not in table.columns]
    if missing:
        raise FarmsError(f"the table lacks the column{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                         f"(an allocation needs {', '.join(REQUIRED)}).")
    if table.empty:
        raise FarmsError("the table has no layers.")
    t = table.reset_index(drop=True)
    if t["layer"].duplicated().any():
        raise FarmsError(f"the layer name {t['layer'][t['layer'].duplicated()].iloc[0]!r} appears twice.")
    for c in ("rows", "cols", "alpha_raw", "alpha_farms"):
        t[c] = pd.to_numeric(t[c], errors="coerce").astype(float)
    if t[["rows", "cols"]].isna().any().any() or (t[["rows", "cols"]] <= 0).any().any():
        raise FarmsError("every layer needs positive rows and cols.")
    return t


def param_counts(table: pd.DataFrame) -> np.ndarray:
    """Parameters per layer: rows x cols (x conv kernel positions, ``n_slices``, when given)."""
    p = table["rows"].to_numpy(float) * table["cols"].to_numpy(float)
    if "n_slices" in table.columns:
        k = pd.to_numeric(table["n_slices"], errors="coerce").to_numpy(float)
        p = p * np.where(np.isfinite(k) & (k >= 1), k, 1.0)
    return p


def alphapruning(table: pd.DataFrame, sparsity: float, epsilon: float, block_wise: bool = False,
                 block_size: int | None = None, blocks_only: bool = False, cap: str = "redistribute") -> Allocation:
    """AlphaPruning sparsities from raw and from FARMS alphas (``block_size`` implies block-wise;
    ``cap``: the rule for ratios above 1, :data:`CAPS`).

    ``blocks_only``: as the AlphaPruning release, only the layers inside numbered transformer
    blocks (see :func:`in_blocks`) are allocated; the others (embeddings, pooler, head) stay
    dense, out of the table and of the mean, and are listed in ``left_out``. A model without
    such blocks is allocated whole.
    """
    t = check_table(table)
    left_out: list = []
    if blocks_only and has_blocks(t["layer"]):
        inside = in_blocks(t["layer"])
        left_out = t["layer"][~inside].tolist()
        t = t[inside].reset_index(drop=True)
    block_wise = block_wise or block_size is not None
    blocks = block_ids(t["layer"], block_size) if block_wise else None
    p = param_counts(t)
    cols, capped, missing = {}, {}, {}
    for w in WHICH:
        a = t[f"alpha_{w}"].to_numpy(float)
        missing[w] = t["layer"][~np.isfinite(a)].tolist()
        if blocks is not None:
            a = block_mean_alphas(a, blocks)
        r, hit = alphapruning_ratios(a, p, sparsity, epsilon, cap)
        cols[f"ratio_{w}"] = r
        capped[w] = t["layer"][hit].tolist()
    settings = dict(sparsity=float(sparsity), epsilon=float(epsilon), block_wise=bool(block_wise),
                    block_size=None if block_size is None else int(block_size), blocks_only=bool(blocks_only),
                    cap=cap)
    return Allocation("alphapruning", pd.DataFrame({"layer": t["layer"], **cols}), settings, capped, missing,
                      left_out)


def tempbalance(table: pd.DataFrame, lr: float, map: str = "linear", lr_min_ratio: float = 0.5,
                lr_max_ratio: float = 1.5, keep_first: bool = False, keep_last: bool = False) -> Allocation:
    """TempBalance learning rates from raw and from FARMS alphas."""
    t = check_table(table)
    cols, missing = {}, {}
    for w in WHICH:
        a = t[f"alpha_{w}"].to_numpy(float)
        missing[w] = t["layer"][~np.isfinite(a)].tolist()
        cols[f"lr_{w}"] = tempbalance_lrs(a, lr, map, lr_min_ratio, lr_max_ratio, keep_first, keep_last)
    settings = dict(lr=float(lr), map=map, lr_min_ratio=float(lr_min_ratio), lr_max_ratio=float(lr_max_ratio),
                    keep_first=bool(keep_first), keep_last=bool(keep_last))
    return Allocation("tempbalance", pd.DataFrame({"layer": t["layer"], **cols}), settings, {"raw": [], "farms": []},
                      missing)


def allocate(table: pd.DataFrame, scheme: str, **options) -> Allocation:
    """``alphapruning(table, **options)`` or ``tempbalance(table, **options)`` by name."""
    if scheme == "alphapruning":
        return alphapruning(table, **options)
    if scheme == "tempbalance":
        return tempbalance(table, **options)
    raise FarmsError(f"unknown scheme {scheme!r}; use alphapruning or tempbalance.")


def allocated_rows(alloc: Allocation, table: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``table`` for the layers in ``alloc.table``, in its order (``blocks_only`` leaves some out)."""
    return check_table(table).set_index("layer").loc[list(alloc.table["layer"])].reset_index()


def allocated_params(alloc: Allocation, table: pd.DataFrame) -> np.ndarray:
    """Parameters of the layers in ``alloc.table``, in its order."""
    return param_counts(allocated_rows(alloc, table))


def weighted_mean(values, params) -> float:
    """The parameter-weighted mean ``sum(p v) / sum(p)`` (the model's overall sparsity)."""
    v, p = np.asarray(values, float), np.asarray(params, float)
    return float((v * p).sum() / p.sum())


def movers(alloc: Allocation, table: pd.DataFrame, top: int = 15) -> pd.DataFrame:
    """The ``top`` layers whose value changes most from raw to FARMS (|FARMS - raw|, largest first)."""
    t = check_table(table)
    c_raw, c_farms = alloc.columns()
    out = pd.DataFrame({"layer": t["layer"], "block": block_ids(t["layer"]),
                        "alpha_raw": t["alpha_raw"], "alpha_farms": t["alpha_farms"],
                        c_raw: alloc.table[c_raw].to_numpy(), c_farms: alloc.table[c_farms].to_numpy()})
    out["delta"] = out[c_farms] - out[c_raw]
    order = out["delta"].abs().sort_values(ascending=False, kind="stable").index
    return out.loc[order].head(top).reset_index(drop=True)


def block_summary(alloc: Allocation, table: pd.DataFrame, block_size: int | None = None) -> pd.DataFrame:
    """Per block (model order): the parameter-weighted mean value raw and FARMS, and FARMS - raw.

    Layers outside any block are left out. For TempBalance the mean is weighted the same way.
    """
    t = check_table(table)
    c_raw, c_farms = alloc.columns()
    df = pd.DataFrame({"block": block_ids(t["layer"], block_size), "p": param_counts(t),
                       "raw": alloc.table[c_raw].to_numpy(), "farms": alloc.table[c_farms].to_numpy()})
    df = df.dropna(subset=["block"])
    rows = []
    for b, g in df.groupby("block", sort=False):
        rows.append({"block": b, c_raw: weighted_mean(g["raw"], g["p"]), c_farms: weighted_mean(g["farms"], g["p"])})
    out = pd.DataFrame(rows, columns=["block", c_raw, c_farms])
    out["delta"] = out[c_farms] - out[c_raw]
    return out


def group_by_block(alloc: Allocation, table: pd.DataFrame) -> pd.DataFrame:
    """Per block and matrix group (``attention``/``mlp``): the parameter-weighted mean raw and FARMS."""
    t = check_table(table)
    c_raw, c_farms = alloc.columns()
    df = pd.DataFrame({"block": block_ids(t["layer"]), "group": [matrix_group(n) for n in t["layer"]],
                       "p": param_counts(t), "raw": alloc.table[c_raw].to_numpy(),
                       "farms": alloc.table[c_farms].to_numpy()}).dropna(subset=["block"])
    rows = [{"block": b, "group": g, c_raw: weighted_mean(d["raw"], d["p"]),
             c_farms: weighted_mean(d["farms"], d["p"])} for (b, g), d in df.groupby(["block", "group"], sort=False)]
    out = pd.DataFrame(rows, columns=["block", "group", c_raw, c_farms])
    out["delta"] = out[c_farms] - out[c_raw]
    return out


# ------------------------------------------------------------------ torch optimizer groups

def param_groups(model, lr_map: Mapping[str, float], base_lr: float, strict: bool = True) -> list[dict]:
    """Optimizer parameter groups for ``model`` from an LR allocation ``{layer name: lr}``.

    Each listed module (``model.named_modules()`` name; a trailing ``.weight`` is ignored) gets a
    group ``{"params": its own parameters (weight and bias), "lr": lr, "name": layer}``; all other
    parameters share one last group at ``base_lr``. With ``strict``, names that are not modules of
    ``model`` raise a FarmsError (a map from another model would otherwise apply silently nowhere).
    """
    if hasattr(lr_map, "items"):
        items = list(lr_map.items())
    else:
        raise FarmsError("lr_map must be a mapping {layer name: learning rate}.")
    modules = dict(model.named_modules())
    groups, taken = [], set()
    unknown = []
    for name, lr in items:
        key = re.sub(r"\.weight$", "", str(name))
        mod = modules.get(key)
        if mod is None:
            unknown.append(key)
            continue
        params = [p for p in mod.parameters(recurse=False) if p.requires_grad and id(p) not in taken]
        if not params:
            continue
        taken.update(id(p) for p in params)
        groups.append({"params": params, "lr": float(lr), "name": key})
    if unknown and strict:
        raise FarmsError(f"{len(unknown)} layer name{'s' if len(unknown) > 1 else ''} of the allocation "
                         f"{'are' if len(unknown) > 1 else 'is'} not a module of this model (e.g. {unknown[0]!r}); "
                         "pass strict=False to ignore them.")
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in taken]
    if rest:
        groups.append({"params": rest, "lr": float(base_lr), "name": "(other parameters)"})
    return groups
