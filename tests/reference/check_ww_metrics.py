"""Check farms_viz.core.metrics / randomize against WeightWatcher 0.7.7 run for real.

Not a test (WeightWatcher is not installed in CI); run it where it is (pip --target WW_DIR):

    PYTHONPATH=WW_DIR .venv/bin/python tests/reference/check_ww_metrics.py [--models minilm mobilenet-v2] [--seeds 8]

It says so and exits 0 when weightwatcher cannot be imported. Two checks:

1. ``analyze(mp_fit=True, detX=True, randomize=True)`` with ``np.random.seed(seed)`` on seeded random
   and heavy-tailed Linear / Conv2d layers (one with a planted large entry, small ones that get WW's
   five shuffles, WW's even-kernel conv whose Q < 1) and on zoo models (--models; default minilm's
   37 Linear layers; ``--models`` with no name: none). The
   deterministic columns are ``farms_viz.analyze(fit="ks")``'s own ``<metric>_raw`` columns. The
   randomized columns are compared by replaying WW's shuffles, each shuffled slice's eigenvalues
   by the pipeline's route (spectra.matrix_eigs): the same global ``np.random`` draws, in WW's order (per layer: each
   replica's slices, then one more shuffle for rand_distance), as permutations for ``randomize``.
2. In distribution over seeds: on a few layers, WW's own ``random_eigenvalues`` + ``mp_fit`` +
   ``jensen_shannon_distance`` after ``np.random.seed(k)`` against ``randomized_metrics(seed=k)``,
   k < --seeds: per column the difference of the means in units of its standard error
   sqrt(sd_ww^2 / K + sd_fv^2 / K) (|z| < 4 passes; equal constant columns pass).

Prints the largest relative difference per column and where it occurs.
"""

from __future__ import annotations

import os

os.environ["CUDA_VISIBLE_DEVICES"] = ""  # WeightWatcher computes in float16 on a GPU

import argparse
import contextlib
import io
import logging
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from reference import ww  # noqa: E402

from farms_viz.core import metrics as M
from farms_viz.core import mp as MP  # noqa: E402
from farms_viz.core import randomize as RZ  # noqa: E402
from farms_viz.core.spectra import matrix_eigs  # noqa: E402
from farms_viz.pipeline.metrics import WW_METRICS  # noqa: E402

DETERMINISTIC = ("log_norm", "log_spectral_norm", "alpha_weighted", "log_alpha_norm", "entropy", "rank_loss",
                 "weak_rank_loss", "sv_max", "sv_min", "detX_num", "detX_val", "mp_softrank", "sigma_mp",
                 "num_spikes", "bulk_max", "bulk_min")
RANDOMIZED = ("rand_sigma_mp", "rand_bulk_max", "rand_bulk_min", "rand_num_spikes", "num_traps",
              "rand_mp_softrank", "rand_distance", "max_rand_eval")
TOL = 1e-3


def module(weights: dict[str, np.ndarray]) -> nn.Module:
    """Linear / Conv2d leaves (no bias) holding ``weights``; dotted names nest plain modules."""
    root = nn.Module()
    for name, w in weights.items():
        t = torch.tensor(w, dtype=torch.float32)
        m = (nn.Linear(w.shape[1], w.shape[0], bias=False, device="meta") if w.ndim == 2
             else nn.Conv2d(w.shape[1], w.shape[0], tuple(w.shape[2:]), bias=False, device="meta"))
        m.weight = nn.Parameter(t, requires_grad=False)
        parent = root
        *path, leaf = name.split(".")
        for part in path:
            if not hasattr(parent, part):
                parent.add_module(part, nn.Module())
            parent = getattr(parent, part)
        parent.add_module(leaf, m)
    return root


def random_weights(rng) -> dict[str, np.ndarray]:
    shapes = {"gauss_tall": ((300, 80), None), "t3_wide": ((64, 250), 3.0), "t25_square": ((200, 200), 2.5),
              "t4_planted": ((500, 120), 4.0), "small_5_replicas": ((30, 12), 3.0),
              "conv3x3": ((48, 16, 3, 3), 3.0), "conv2x2_even_q_below_1": ((20, 36, 2, 2), 3.0),
              "conv1x1": ((96, 24, 1, 1), 2.5), "dw3x3": ((64, 1, 3, 3), 3.0)}
    out = {}
    for name, (sh, df) in shapes.items():
        x = rng.standard_t(df, sh) if df else rng.standard_normal(sh)
        out[name] = (x / np.sqrt(sh[0])).astype(np.float32)
    out["t4_planted"][7, 33] = 12.0
    return out


def model_weights(source: str) -> dict[str, np.ndarray]:
    """A zoo model's Linear (2-D) and Conv2d (4-D) weights, float32, in the file's order."""
    from farms_viz.pipeline.sources import open_source

    out = {}
    for ref in open_source(source).tensors():
        if (len(ref.shape) == 2 and ref.kind == "linear") or len(ref.shape) == 4:
            out[ref.layer] = ref.load().detach().to(torch.float32).numpy()
    return out


def ww_dims_of(w: np.ndarray) -> tuple[int, int]:
    return (max(w.shape), min(w.shape)) if w.ndim == 2 else M.ww_dims(*w.shape)


def farms_viz_columns(name: str, w: np.ndarray) -> tuple[dict, np.ndarray]:
    """The deterministic columns as ``farms_viz.analyze`` writes them (fit ks, conv_norm 0.5: WW's
    conv2d_norm), WW's other MP-fit outputs from the same ESD, and the ESD."""
    from farms_viz import analyze

    report = analyze({f"{name}.weight": torch.from_numpy(w)}, fit="ks", randomize=False, cache=False)
    row = report.table.iloc[0]
    e = report.layer(name).esd_raw
    cols = {m: row[f"{m}_raw"] for m in WW_METRICS}
    N, Mm = ww_dims_of(w)
    f = MP.fit_mp_kde(e, N, Mm)
    cols.update(sigma_mp=f.sigma, num_spikes=f.num_spikes, bulk_max=f.bulk_max, bulk_min=f.bulk_min)
    return cols, e


def pipeline_eigs(m: np.ndarray) -> np.ndarray:
    """One shuffled slice's eigenvalues by the route ``analyze`` takes (spectra.matrix_eigs)."""
    return matrix_eigs(torch.from_numpy(np.ascontiguousarray(m, dtype=np.float32))[None])[0]


def replay(ww_mats: list[np.ndarray], n_short: int) -> tuple[list, list]:
    """WW's shuffles of one layer as permutations: (replicas' perms, rand_distance's perms)."""
    def one():
        out = []
        for m in ww_mats:
            idx = np.arange(m.size)
            np.random.shuffle(idx)  # the same draws as shuffling the flattened weights
            out.append(idx)
        return out

    reps = RZ.n_replicas(n_short * len(ww_mats))
    return [one() for _ in range(reps)], [one()]


#: rand_distance is the square root of a divergence: spectra that shuffling cannot change (a depthwise
#: slice's one eigenvalue is its column's squared norm) give sqrt(round-off) ~ 1e-8 to 1e-7: below
#: 1e-3 (the distance runs from 0 to 0.83) the difference is taken absolutely (so 1e-6 at TOL).
ABS_FLOOR = {"rand_distance": 1e-3}


def rel(a, b, column: str = "") -> float:
    """Relative difference (absolute below the column's ABS_FLOOR)."""
    a, b = float(a), float(b)
    if a == b or (math.isnan(a) and math.isnan(b)):
        return 0.0
    return abs(a - b) / max(abs(b), ABS_FLOOR.get(column, 1e-300))


def run_ww(net: nn.Module, seed: int, randomize: bool = True):
    logging.getLogger("weightwatcher").setLevel(logging.ERROR)
    import weightwatcher

    np.random.seed(seed)
    with contextlib.redirect_stdout(io.StringIO()):
        return weightwatcher.WeightWatcher(model=net, log_level=logging.ERROR).analyze(
            mp_fit=True, detX=True, randomize=randomize)


def check_analyze(label: str, weights: dict[str, np.ndarray], seed: int) -> list[str]:
    t0 = time.perf_counter()
    details = run_ww(module(weights), seed)
    t_ww = time.perf_counter() - t0
    np.random.seed(seed)
    worst = {c: (0.0, "") for c in DETERMINISTIC + RANDOMIZED}
    over = {c: [] for c in worst}
    for _, row in details.iterrows():
        name = row["longname"]
        w = weights[name]
        mine, e = farms_viz_columns(name, w)
        N, Mm = ww_dims_of(w)
        ww_mats = ww.layer_matrices(w)[0]
        stack = np.stack(ww_mats)
        main, dist = replay(ww_mats, Mm)
        r = RZ.randomized_esd(stack, None, pipeline_eigs, perms=main)
        fit = MP.fit_mp_kde(r.esd, N, Mm)
        d = RZ.rand_distance(e, RZ.randomized_esd(stack, None, pipeline_eigs, perms=dist).first)
        mine.update(RZ.RandomizedMetrics(r.esd, fit, d).columns())
        for c in worst:
            diff = rel(mine[c], row[c], c)
            if diff > TOL:
                over[c].append(f"{name} {tuple(w.shape)}")
            if diff > worst[c][0] or not worst[c][1]:
                worst[c] = (diff, f"{name}: {mine[c]:.6g} vs {float(row[c]):.6g}")
    lines = [f"{label}: {len(details)} layers, WW analyze(mp_fit, detX, randomize) {t_ww:.1f} s"]
    for c, (diff, where) in worst.items():
        flag = "" if diff <= TOL else f"  <-- over 1e-3 in {len(over[c])}: {', '.join(over[c][:4])}"
        lines.append(f"  {c:18} max rel diff {diff:.1e}  ({where}){flag}")
    return lines


def ww_random_columns(watcher, ww_mats, e, N, Mm, params) -> dict:
    """WW's own randomize=True code on one layer (apply_random_esd + apply_mp_fit(random=True))."""
    from weightwatcher.RMT_Util import jensen_shannon_distance

    n_comp = Mm * len(ww_mats)
    rand = watcher.random_eigenvalues(ww_mats, n_comp, RZ.n_replicas(n_comp), params)
    one = watcher.random_eigenvalues(ww_mats, n_comp, 1, params)
    spikes, sigma, softrank, lo, hi, _ = watcher.mp_fit(rand, N, Mm, len(ww_mats), "", 0, 0, False, False, "",
                                                        "", 0.5, True, e, randomize=True)
    return dict(rand_sigma_mp=sigma, rand_bulk_max=hi, num_traps=spikes, rand_mp_softrank=softrank,
                rand_distance=jensen_shannon_distance(e, one), max_rand_eval=float(np.max(rand)))


def check_distribution(weights: dict[str, np.ndarray], seeds: int) -> list[str]:
    import weightwatcher
    from weightwatcher.constants import ACCURATE_SVD, DEFAULT_PARAMS, SVD_METHOD

    params = dict(DEFAULT_PARAMS, **{SVD_METHOD: ACCURATE_SVD})
    watcher = weightwatcher.WeightWatcher(log_level=logging.ERROR)
    lines = [f"in distribution over {seeds} seeds (WW np.random.seed(k) vs farms-viz default_rng(k)): "
             "z = (mean_fv - mean_ww) / sqrt(sd_ww^2/K + sd_fv^2/K)"]
    for name, w in weights.items():
        N, Mm = ww_dims_of(w)
        ww_mats = ww.layer_matrices(w)[0]
        e = np.sort(np.concatenate([np.linalg.svd(m, compute_uv=False) ** 2 for m in ww_mats]))
        a, b = [], []
        for k in range(seeds):
            np.random.seed(k)
            with contextlib.redirect_stdout(io.StringIO()):
                a.append(ww_random_columns(watcher, ww_mats, e, N, Mm, params))
            b.append(RZ.randomized_metrics(np.stack(ww_mats), e, N, Mm, k).columns())
        parts = []
        for c in a[0]:
            x = np.array([r[c] for r in a], dtype=float)
            y = np.array([r[c] for r in b], dtype=float)
            se = math.sqrt(x.var(ddof=1) / seeds + y.var(ddof=1) / seeds)
            z = 0.0 if se == 0 and x.mean() == y.mean() else (y.mean() - x.mean()) / se if se else math.inf
            flag = "" if abs(z) < 4 else "!"
            parts.append(f"{c} {x.mean():.4g}/{y.mean():.4g} z {z:+.1f}{flag}")
        lines.append(f"  {name} ({w.shape}): " + "; ".join(parts))
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seeds", type=int, default=8, help="seeds for the in-distribution check (< 2: skip it)")
    p.add_argument("--models", nargs="*", default=["minilm"],
                   help="zoo models to run WW on (minilm: 37 Linear layers, ~4 min; mobilenet-v2: Conv2d)")
    a = p.parse_args(argv)
    try:
        import weightwatcher  # noqa: F401
    except ImportError:
        print("skipped: weightwatcher is not importable (PYTHONPATH=WW_DIR, see the docstring)")
        return 0
    torch.set_num_threads(2)
    rng = np.random.default_rng(a.seed)
    rand_w = random_weights(rng)
    lines = check_analyze("random and heavy-tailed layers", rand_w, a.seed)
    pick = {n: rand_w[n] for n in ("t4_planted", "small_5_replicas", "conv3x3")}
    for model in a.models:
        weights = model_weights(model)
        lines += check_analyze(f"{model} Linear and Conv2d layers", weights, a.seed)
        names = list(weights)
        pick.update({n: weights[n] for n in (names[0], names[4], names[5])})
    if a.seeds > 1:
        lines += check_distribution(pick, a.seeds)
    for line in lines:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
