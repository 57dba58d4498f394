"""Fidelity: farms-viz's alphas against the FARMS release and WeightWatcher 0.7.7, both run unmodified.

For one zoo model (or any source farms-viz opens) this runs, on the CPU:

(a) the release's estimator with ``use_sliding_window=False`` (raw) and ``True`` (FARMS) and the
    preset's settings (llm: xmin_peak, window 2000, q 1, ops 15; cnn: xmin_mid, 100, 1, 9;
    ``filter_zeros=False``, ``conv_norm=0.5``), imported from ``--release DIR``, on an
    ``nn.Module`` holding the model's Linear and Conv2d weights under their names, so the release
    code runs as published: ``LLM_Pruning/lib/esd_utils_farms.py``'s ``net_esd_estimator_farms``,
    except FARMS on Conv2d, where that copy fails (line 112 calls ``.cpu()`` on a numpy array) and
    ``Image_Classification/tempbalance_farms.py``'s estimator (same conv code; xmin_mid is called
    ``median`` there) is run instead;
(b) WeightWatcher 0.7.7's ``WeightWatcher(model=...).analyze()`` with its defaults (the standard
    alpha: pool=True, fit='PL', fix_fingers=False, pl_package='ww', conv2d_norm=True);
(c) ``farms_viz.analyze`` with the same settings (``conv_rule="release"`` where farms-viz has it),
    and once more with ``fit="ks"`` for the comparison with WeightWatcher;

then prints the alphas side by side and how many agree within 1% (relative to the reference).

Setup (outside the repository): from the FARMS release (github.com/HUST-AI-HYZ/FARMS),
LLM_Pruning/lib/{esd_utils_farms,sampling}.py into DIR/LLM_Pruning/lib/ with empty __init__.py
files in DIR/LLM_Pruning/ and DIR/LLM_Pruning/lib/, and Image_Classification/{tempbalance_farms,
sampling}.py into DIR/Image_Classification/; WeightWatcher beside the venv:
``.venv/bin/pip install --target WW_DIR weightwatcher==0.7.7 -c requirements.txt``. Then

    PYTHONPATH=WW_DIR .venv/bin/python benchmarks/fidelity.py minilm
    PYTHONPATH=WW_DIR .venv/bin/python benchmarks/fidelity.py minilm --window 128 --ops 10
    PYTHONPATH=WW_DIR .venv/bin/python benchmarks/fidelity.py mobilenet-v2 --preset cnn

Another farms-viz (e.g. an earlier commit, ``git archive REV farms_viz | tar -x -C D``) is
measured by putting D first on PYTHONPATH; the summary names the farms_viz it imported.
"""

from __future__ import annotations

import os

# WeightWatcher converts weights to float16 when CUDA is available (RMT_Util.py 202): measure on the CPU.
os.environ["CUDA_VISIBLE_DEVICES"] = ""

import argparse
import contextlib
import importlib
import inspect
import io
import logging
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn

TOL = 0.01  # "within 1%": |alpha - reference| <= TOL * |reference|
DEFAULT_RELEASE = Path("/work/farms_release")


# ---------------------------------------------------------------- the model as an nn.Module

def _open_source(name: str):
    # farms_viz.open_source since the package layout of issue 15; farms_viz.sources before it
    for mod in ("farms_viz", "farms_viz.sources"):
        try:
            return importlib.import_module(mod).open_source(name)
        except (ImportError, AttributeError):
            continue
    raise SystemExit("cannot find farms_viz's open_source (farms_viz.open_source or farms_viz.sources)")


def load_weights(source_name: str) -> dict[str, tuple[str, torch.Tensor]]:
    """The source's Linear and Conv2d weights in the file's order: layer -> (kind, float32 tensor)."""
    src = _open_source(source_name)
    out = {}
    for ref in src.tensors():
        shape = tuple(ref.shape)
        if len(shape) == 2 and ref.kind not in ("embedding", None):
            kind = "linear"
        elif len(shape) == 4:
            kind = "depthwise" if shape[1] == 1 else "conv2d"
        else:
            continue
        out[ref.layer] = (kind, ref.load().detach().to(torch.float32).clone())
    if not out:
        raise SystemExit(f"{source_name} has no Linear or Conv2d weights")
    return out


def as_module(weights: dict[str, tuple[str, torch.Tensor]]) -> nn.Module:
    """An nn.Module holding ``weights`` under their names (dots make nested modules).

    Containers are plain ``nn.Module`` objects (WeightWatcher types layers by class name, so
    nothing else may look like a layer); leaves are ``nn.Linear`` / ``nn.Conv2d`` with no bias.
    """
    root = nn.Module()
    for name, (kind, w) in weights.items():
        if kind == "linear":
            m = nn.Linear(w.shape[1], w.shape[0], bias=False, device="meta")
        else:
            m = nn.Conv2d(w.shape[1], w.shape[0], kernel_size=tuple(w.shape[2:]), bias=False, device="meta")
        m.weight = nn.Parameter(w, requires_grad=False)
        parent = root
        *path, leaf = name.split(".")
        for part in path:
            if not hasattr(parent, part):
                parent.add_module(part, nn.Module())
            parent = getattr(parent, part)
        parent.add_module(leaf, m)
    return root


# ---------------------------------------------------------------- the three estimators

def _llm_release(net: nn.Module, release: Path, sliding: bool, s) -> dict[str, float]:
    if str(release) not in sys.path:
        sys.path.insert(0, str(release))
    from LLM_Pruning.lib.esd_utils_farms import net_esd_estimator_farms

    with contextlib.redirect_stdout(io.StringIO()):
        r = net_esd_estimator_farms(
            net=net, fix_fingers=s.fit, xmin_pos=s.xmin_pos, conv_norm=s.conv_norm, filter_zeros=False,
            use_sliding_window=sliding, num_row_samples=s.window, Q_ratio=s.q,
            sampling_ops_per_dim=s.ops)
    return dict(zip(r["longname"], map(float, r["alpha"])))


def _ic_release(net: nn.Module, release: Path, sliding: bool, s) -> dict[str, float]:
    """Image_Classification/tempbalance_farms.py's estimator; it calls xmin_mid 'median'."""
    folder = str(release / "Image_Classification")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    from tempbalance_farms import Tempbalance_FARMS

    fit = "median" if s.fit == "xmin_mid" else s.fit
    with contextlib.redirect_stdout(io.StringIO()):
        tb = Tempbalance_FARMS(net, pl_fitting=fit, xmin_pos=s.xmin_pos, conv_norm=s.conv_norm,
                               filter_zeros=False, use_sliding_window=sliding, num_row_samples=s.window,
                               Q_ratio=s.q, sampling_ops_per_dim=s.ops)
        r = tb.net_esd_estimator(use_sliding_window=sliding)
    return dict(zip(r["longname"], map(float, r["alpha"])))


#: Why FARMS conv layers come from the image-classification copy of the release.
CONV_NOTE = ("FARMS on Conv2d from Image_Classification/tempbalance_farms.py: the LLM copy stops on "
             "Conv2d with use_sliding_window=True (esd_utils_farms.py:112 calls .cpu() on a numpy "
             "array); both copies cut and fit conv blocks with the same code")


def run_release(weights, release: Path, sliding: bool, s) -> dict[str, float]:
    """The release's estimator, its prints swallowed: layer -> alpha.

    Raw, and FARMS on Linear layers: LLM_Pruning/lib/esd_utils_farms.py. FARMS on Conv2d:
    Image_Classification/tempbalance_farms.py (see CONV_NOTE).
    """
    if not sliding:
        return _llm_release(as_module(weights), release, False, s)
    linear = {n: v for n, v in weights.items() if v[0] == "linear"}
    conv = {n: v for n, v in weights.items() if v[0] != "linear"}
    out = _llm_release(as_module(linear), release, True, s) if linear else {}
    if conv:
        out.update(_ic_release(as_module(conv), release, True, s))
    return {n: out[n] for n in weights if n in out}


def run_ww(net: nn.Module) -> tuple[dict[str, float], str]:
    """WeightWatcher 0.7.7's default analyze(): layer -> alpha, and the version imported."""
    logging.getLogger("weightwatcher").setLevel(logging.ERROR)  # before the import, which logs
    import weightwatcher as ww

    with contextlib.redirect_stdout(io.StringIO()):  # its small-sample fit prints "SMALL N PL FIT"
        details = ww.WeightWatcher(model=net, log_level=logging.ERROR).analyze()
    return dict(zip(details["longname"], details["alpha"].astype(float))), ww.__version__


def run_farms_viz(source_name: str, settings, **changes):
    import farms_viz

    kw = {k: getattr(settings, k) for k in ("fit", "xmin_pos", "window", "q", "ops")}
    kw.update(changes)
    if "conv_rule" in inspect.signature(farms_viz.analyze).parameters:
        kw["conv_rule"] = "release"
    report = farms_viz.analyze(source_name, cache=False, **kw)
    t = report.table.set_index("layer")
    return t["alpha_raw"].astype(float).to_dict(), t["alpha_farms"].astype(float).to_dict(), kw


# ---------------------------------------------------------------- comparison and printing

def rel(a: float | None, ref: float | None) -> float:
    if a is None or ref is None or not (math.isfinite(a) and math.isfinite(ref)):
        return math.inf
    return abs(a - ref) / abs(ref) if ref != 0 else (0.0 if a == 0 else math.inf)


def agreement(ours: dict, ref: dict, names: list[str]) -> tuple[int, int, float, str]:
    """(within TOL, compared, max relative difference, its layer) over the layers the reference reports."""
    names = [n for n in names if n in ref]
    diffs = [(rel(ours.get(n), ref[n]), n) for n in names]
    ok = sum(d <= TOL for d, _ in diffs)
    worst = max(diffs, default=(math.nan, ""))
    return ok, len(names), worst[0], worst[1]


def _f(x) -> str:
    return "       -" if x is None or not math.isfinite(x) else f"{x:8.4f}"


def _d(a, ref) -> str:
    d = rel(a, ref)
    if a is None and ref is None:
        return "       "
    return "    inf*" if not math.isfinite(d) else f"{100 * d:6.2f}%{'*' if d > TOL else ' '}"


def print_table(layers, rel_raw, fv_raw, rel_farms, fv_farms, ww_alpha, fv_ks) -> None:
    width = max(len(n) for n, _, _ in layers)
    print(f"\n{'layer':<{width}} {'kind':<9} {'shape':<18}"
          f" {'rel raw':>8} {'fv raw':>8} {'diff':>7}  {'rel FARMS':>9} {'fv FARMS':>8} {'diff':>7}"
          f"  {'WW':>8} {'fv ks':>8} {'diff':>7}")
    for n, kind, shape in layers:
        print(f"{n:<{width}} {kind:<9} {'x'.join(map(str, shape)):<18}"
              f" {_f(rel_raw.get(n))} {_f(fv_raw.get(n))} {_d(fv_raw.get(n), rel_raw.get(n))}"
              f"  {_f(rel_farms.get(n)):>9} {_f(fv_farms.get(n))} {_d(fv_farms.get(n), rel_farms.get(n))}"
              f"  {_f(ww_alpha.get(n))} {_f(fv_ks.get(n))} {_d(fv_ks.get(n), ww_alpha.get(n))}")
    print("(* more than 1% off the reference; '-' no number: the reference or farms-viz skips the layer)")


def by_kind(layers, ours, ref) -> str:
    parts = []
    for kind in dict.fromkeys(k for _, k, _ in layers):
        names = [n for n, k, _ in layers if k == kind]
        ok, n, _, _ = agreement(ours, ref, names)
        if n:
            parts.append(f"{kind} {ok}/{n}")
    return ", ".join(parts)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="zoo name (farms-viz zoo) or anything farms_viz.analyze opens")
    p.add_argument("--preset", default="llm", choices=("llm", "cnn"))
    p.add_argument("--fit", help="override the preset's fit rule (xmin_peak, xmin_mid)")
    p.add_argument("--window", type=int)
    p.add_argument("--q", type=float)
    p.add_argument("--ops", type=int)
    p.add_argument("--release", type=Path, default=DEFAULT_RELEASE,
                   help="folder holding LLM_Pruning/lib/esd_utils_farms.py (default %(default)s)")
    p.add_argument("--no-ww", action="store_true", help="skip WeightWatcher and the ks comparison")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default %(default)s)")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    if not (a.release / "LLM_Pruning" / "lib" / "esd_utils_farms.py").is_file():
        raise SystemExit(f"{a.release}/LLM_Pruning/lib/esd_utils_farms.py is missing (see the docstring)")

    import farms_viz

    settings = farms_viz.Settings.preset(a.preset, fit=a.fit, window=a.window, q=a.q, ops=a.ops)
    times = {}
    t = time.perf_counter()
    weights = load_weights(a.model)
    layers = [(n, kind, tuple(w.shape)) for n, (kind, w) in weights.items()]
    names = list(weights)
    times["load"] = time.perf_counter() - t

    def timed(key, fn, *args, **kw):
        t0 = time.perf_counter()
        out = fn(*args, **kw)
        times[key] = time.perf_counter() - t0
        return out

    rel_raw = timed("release raw", run_release, weights, a.release, False, settings)
    rel_farms = timed("release FARMS", run_release, weights, a.release, True, settings)
    fv_raw, fv_farms, fv_kw = timed("farms-viz", run_farms_viz, a.model, settings)
    ww_alpha, fv_ks, ww_version = {}, {}, None
    if not a.no_ww:
        ww_alpha, ww_version = timed("WeightWatcher", run_ww, as_module(weights))
        fv_ks, _, _ = timed("farms-viz ks", run_farms_viz, a.model, settings, fit="ks")

    print_table(layers, rel_raw, fv_raw, rel_farms, fv_farms, ww_alpha, fv_ks)

    r_ok, r_n, r_max, r_at = agreement(fv_raw, rel_raw, names)
    f_ok, f_n, f_max, f_at = agreement(fv_farms, rel_farms, names)
    fv_file = Path(farms_viz.__file__).resolve().parent
    setting_s = ", ".join(f"{k} {v}" for k, v in fv_kw.items())
    print(f"\n===== fidelity: {a.model} =====")
    print(f"settings      : preset {a.preset}; {setting_s}; conv_norm {settings.conv_norm}; "
          f"release: filter_zeros=False")
    print(f"farms_viz     : {fv_file}")
    if any(k != "linear" for _, k, _ in layers):
        print(f"note          : {CONV_NOTE}")
    print(f"layers        : {len(layers)} ({by_count(layers)})")
    print(f"release raw   : {r_ok}/{r_n} within 1%   max diff {100 * r_max:.3g}% ({r_at})"
          f"   by kind: {by_kind(layers, fv_raw, rel_raw)}")
    print(f"release FARMS : {f_ok}/{f_n} within 1%   max diff {100 * f_max:.3g}% ({f_at})"
          f"   by kind: {by_kind(layers, fv_farms, rel_farms)}")
    print(f"release total : {r_ok + f_ok}/{r_n + f_n} within 1% "
          f"({100 * (r_ok + f_ok) / max(1, r_n + f_n):.1f}%)")
    if ww_version:
        k_ok, k_n, k_max, k_at = agreement(fv_ks, ww_alpha, names)
        print(f"WW {ww_version} (ks) : {k_ok}/{k_n} within 1%   max diff {100 * k_max:.3g}% ({k_at})"
              f"   by kind: {by_kind(layers, fv_ks, ww_alpha)}")
    print("seconds       : " + ", ".join(f"{k} {v:.1f}" for k, v in times.items())
          + f"  ({a.threads} torch threads)")
    return 0


def by_count(layers) -> str:
    counts = {}
    for _, k, _ in layers:
        counts[k] = counts.get(k, 0) + 1
    return ", ".join(f"{v} {k}" for k, v in counts.items())


if __name__ == "__main__":
    sys.exit(main())
