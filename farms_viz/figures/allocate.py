"""Figures of layer-wise allocations (TempBalance lr, AlphaPruning sparsity), raw vs FARMS.

Pure functions: an :class:`~farms_viz.analyses.allocate.Allocation` and its alpha table in, ``go.Figure``
out; same colours and layout as :mod:`farms_viz.figures.layer` (raw orange, FARMS blue).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from farms_viz.analyses.allocate import Allocation, check_table, group_by_block
from farms_viz.analyses.blocks import block_ids, matrix_role
from farms_viz.figures.style import COLORS, FARMS_COLOR, INK, NAMES, RAW_COLOR, WIDE_PX, base_layout, make_figure

LABELS = {"ratio": "sparsity (fraction pruned)", "lr": "learning rate"}
SCHEME_NAMES = {"alphapruning": "AlphaPruning", "tempbalance": "TempBalance"}
GROUP_DASH = {"attention": "solid", "mlp": "dot"}
GROUP_SYMBOL = {"attention": "circle", "mlp": "square"}


def _value_format(value: str) -> str:
    return ".3f" if value == "ratio" else ".3g"


def _reference(alloc: Allocation) -> tuple[float, str]:
    s = alloc.settings
    if alloc.scheme == "alphapruning":
        return s["sparsity"], f"target S = {s['sparsity']:g}"
    return s["lr"], f"base lr = {s['lr']:g}"


def _block_ticks(layers: list[str], blocks: list) -> tuple[dict, list]:
    """x-axis ticks at the first layer of each block (at most ~16 labels) and shaded odd blocks."""
    starts = [i for i, b in enumerate(blocks) if b is not None and (i == 0 or blocks[i - 1] != b)]
    if len(starts) < 2:
        n = len(layers)
        step = max(1, int(np.ceil(n / 16)))
        return dict(tickmode="array", tickvals=list(range(0, n, step)), ticktext=[str(i) for i in range(0, n, step)],
                    title=dict(text="layer (model order)")), []
    every = max(1, int(np.ceil(len(starts) / 16)))
    vals = [i for k, i in enumerate(starts) if k % every == 0]
    shapes = []
    for k, i in enumerate(starts):
        if k % 2:
            end = starts[k + 1] if k + 1 < len(starts) else len(layers)
            shapes.append(dict(type="rect", xref="x", yref="paper", x0=i - 0.5, x1=end - 0.5, y0=0, y1=1,
                               fillcolor="#F3F5F8", line_width=0, layer="below"))
    return dict(tickmode="array", tickvals=vals, ticktext=[str(blocks[i]) for i in vals],
                title=dict(text="transformer block (its layers in model order; shaded: odd blocks)")), shapes


def allocation_chart(alloc: Allocation, table: pd.DataFrame, title: str | None = None) -> go.Figure:
    """Per layer in model order: the allocation from raw and from FARMS alphas (top) and FARMS - raw (bottom).

    ``customdata[0]`` is the layer name; the dotted line is the target sparsity or the base lr.
    """
    t = check_table(table)
    value = alloc.value
    c_raw, c_farms = alloc.columns()
    layers = t["layer"].astype(str).tolist()
    x = np.arange(len(layers))
    raw, farms = alloc.table[c_raw].to_numpy(float), alloc.table[c_farms].to_numpy(float)
    delta = farms - raw
    cd = np.stack([np.array(layers, dtype=object), t["alpha_raw"].to_numpy(float), t["alpha_farms"].to_numpy(float),
                   raw, farms, delta], axis=1)
    f = _value_format(value)
    hover = ("<b>%{customdata[0]}</b><br>α raw %{customdata[1]:.2f} · α FARMS %{customdata[2]:.2f}"
             f"<br>{value} raw %{{customdata[3]:{f}}} · FARMS %{{customdata[4]:{f}}}"
             f"<br>FARMS − raw %{{customdata[5]:+{f}}}<extra></extra>")
    marker = 5 if len(x) <= 80 else 3
    traces = [go.Scatter(x=x, y=vals, mode="lines+markers", name=f"from α {NAMES[w]}", customdata=cd,
                         hovertemplate=hover, line=dict(color=COLORS[w], width=1.6), marker=dict(size=marker),
                         xaxis="x", yaxis="y")
              for w, vals in (("raw", raw), ("farms", farms))]
    up = delta >= 0
    for mask, name, color in ((up, "FARMS higher", FARMS_COLOR), (~up, "raw higher", RAW_COLOR)):
        traces.append(go.Bar(x=x[mask], y=delta[mask], name=f"FARMS − raw ({name})", customdata=cd[mask],
                             hovertemplate=hover, marker=dict(color=color, line=dict(width=0)),
                             xaxis="x2", yaxis="y2"))
    ref, ref_text = _reference(alloc)
    xaxis, shapes = _block_ticks(layers, block_ids(layers))
    traces.insert(2, go.Scatter(x=[-0.8, len(x) - 0.2], y=[ref, ref], mode="lines", name=ref_text, hoverinfo="skip",
                                line=dict(color=INK, dash="dot", width=1.2), xaxis="x", yaxis="y"))
    notes = []
    top = np.concatenate([raw, farms])
    lo, hi = float(np.nanmin(top)), float(np.nanmax(top))
    pad = max((hi - lo) * 0.08, abs(hi) * 0.01, 1e-12)
    x_common = dict(range=[-0.8, len(x) - 0.2], showgrid=False, zeroline=False)
    return make_figure(traces, base_layout(
        title or f"{SCHEME_NAMES[alloc.scheme]}: {LABELS[value]} per layer, from raw vs FARMS α", height=560, width=WIDE_PX,
        shapes=shapes, annotations=notes, barmode="relative", bargap=0.15,
        xaxis=dict(**x_common, anchor="y", showticklabels=False, tickmode=xaxis["tickmode"],
                   tickvals=xaxis["tickvals"]),
        xaxis2=dict(**x_common, anchor="y2", matches="x", showline=True, **xaxis),
        yaxis=dict(domain=[0.36, 1.0], range=[lo - pad, hi + pad], title=dict(text=LABELS[value]),
                   tickformat=".2f" if value == "ratio" else ".2~g"),
        yaxis2=dict(domain=[0.0, 0.27], title=dict(text="FARMS − raw"), zeroline=True, zerolinecolor="#9AA5B1",
                    tickformat="+.2f" if value == "ratio" else "+.1~e"),
    ), width=WIDE_PX)


def _ref_shape_and_legend(alloc: Allocation) -> tuple[dict, go.Scatter]:
    """A dotted horizontal line at the target sparsity / base lr, and its legend entry."""
    ref, ref_text = _reference(alloc)
    style = dict(color=INK, dash="dot", width=1.2)
    return (dict(type="line", xref="paper", yref="y", x0=0, x1=1, y0=ref, y1=ref, line=style, layer="below"),
            go.Scatter(x=[None], y=[None], mode="lines", line=style, name=ref_text, hoverinfo="skip"))


def block_chart(summary: pd.DataFrame, alloc: Allocation, title: str | None = None) -> go.Figure:
    """Per transformer block: the parameter-weighted mean allocation from raw and from FARMS (dot plot)."""
    value = alloc.value
    c_raw, c_farms = alloc.columns()
    blocks = summary["block"].astype(str).tolist()
    f = _value_format(value)
    traces = []
    for w, col in (("raw", c_raw), ("farms", c_farms)):
        traces.append(go.Scatter(
            x=blocks, y=summary[col].to_numpy(float), name=f"from α {NAMES[w]}", mode="lines+markers",
            line=dict(color=COLORS[w], width=2), marker=dict(color=COLORS[w], size=8),
            customdata=summary["delta"].to_numpy(float),
            hovertemplate=f"block %{{x}}<br>{NAMES[w]}: %{{y:{f}}}<br>FARMS − raw %{{customdata:+{f}}}<extra></extra>"))
    shape, legend = _ref_shape_and_legend(alloc)
    return make_figure(traces + [legend], base_layout(
        title or f"Per block: parameter-weighted mean {LABELS[value]}", height=400, shapes=[shape], width=WIDE_PX,
        xaxis=dict(type="category", title=dict(text="transformer block"), showline=True),
        yaxis=dict(title=dict(text=LABELS[value])),
    ), width=WIDE_PX)


def group_chart(alloc: Allocation, table: pd.DataFrame, title: str | None = None) -> go.Figure:
    """Per block, attention vs MLP matrices (parameter-weighted means), raw and FARMS: where pruning moves."""
    g = group_by_block(alloc, table)
    value = alloc.value
    c_raw, c_farms = alloc.columns()
    f = _value_format(value)
    traces = []
    for w, col in (("raw", c_raw), ("farms", c_farms)):
        for grp in ("attention", "mlp"):
            d = g[g["group"] == grp]
            if d.empty:
                continue
            traces.append(go.Scatter(
                x=d["block"].astype(str), y=d[col].to_numpy(float), mode="lines+markers",
                name=f"{'attention' if grp == 'attention' else 'MLP'} · {NAMES[w]}",
                line=dict(color=COLORS[w], dash=GROUP_DASH[grp], width=2),
                marker=dict(symbol=GROUP_SYMBOL[grp], size=7, color=COLORS[w]),
                hovertemplate=f"block %{{x}} {grp} · {NAMES[w]}: %{{y:{f}}}<extra></extra>"))
    shape, legend = _ref_shape_and_legend(alloc)
    return make_figure(traces + [legend], base_layout(
        title or f"Attention vs MLP matrices per block: mean {LABELS[value]}", height=420, shapes=[shape], width=WIDE_PX,
        xaxis=dict(type="category", title=dict(text="transformer block"), showline=True),
        yaxis=dict(title=dict(text=LABELS[value])),
    ), width=WIDE_PX)


def delta_heatmap(alloc: Allocation, table: pd.DataFrame, title: str | None = None) -> go.Figure:
    """FARMS - raw for every matrix (rows: its role in the block, e.g. ``self_attn.q_proj``) and block (columns).

    Blue: FARMS allocates more than raw; orange: less. Colour scale symmetric about 0.
    """
    t = check_table(table)
    c_raw, c_farms = alloc.columns()
    layers = t["layer"].astype(str).tolist()
    df = pd.DataFrame({"block": block_ids(layers), "role": [matrix_role(n) for n in layers], "layer": layers,
                       "delta": alloc.table[c_farms].to_numpy(float) - alloc.table[c_raw].to_numpy(float)})
    df = df.dropna(subset=["block"])
    roles = list(dict.fromkeys(df["role"]))
    blocks = list(dict.fromkeys(df["block"]))
    z = df.pivot_table(index="role", columns="block", values="delta", aggfunc="mean", sort=False)
    z = z.reindex(index=roles, columns=blocks)
    names = df.pivot_table(index="role", columns="block", values="layer", aggfunc="first", sort=False)
    names = names.reindex(index=roles, columns=blocks).fillna("")
    m = float(np.nanmax(np.abs(z.to_numpy()))) if z.size and np.isfinite(z.to_numpy()).any() else 1.0
    m = m or 1.0
    f = _value_format(alloc.value)
    scale = [[0.0, RAW_COLOR], [0.5, "#FFFFFF"], [1.0, FARMS_COLOR]]
    trace = go.Heatmap(
        z=z.to_numpy(float), x=[str(b) for b in blocks], y=roles, zmin=-m, zmax=m, colorscale=scale,
        customdata=names.to_numpy(), xgap=1, ygap=1,
        colorbar=dict(title=dict(text="FARMS − raw", side="right"), thickness=12, len=0.9, tickformat="+.2f" if alloc.value == "ratio" else "+.2~e"),
        hovertemplate=f"<b>%{{customdata}}</b><br>FARMS − raw %{{z:+{f}}}<extra></extra>")
    return make_figure([trace], base_layout(
        title or f"FARMS − raw {LABELS[alloc.value]} per matrix and block (blue: FARMS higher, orange: raw higher)",
        height=max(300, 130 + 34 * len(roles)), legend_top=False, width=WIDE_PX,
        xaxis=dict(type="category", title=dict(text="transformer block"), showgrid=False, tickangle=0,
                   nticks=17),
        yaxis=dict(type="category", autorange="reversed", showgrid=False),
    ), width=WIDE_PX)

