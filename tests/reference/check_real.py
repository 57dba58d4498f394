"""Check the transcriptions in this folder against the real code, on seeded random inputs.

Not a test: the FARMS release and WeightWatcher are not installed in CI. Run it where they are:

    PYTHONPATH=WW_DIR .venv/bin/python tests/reference/check_real.py --release DIR

(DIR holds LLM_Pruning/lib/{esd_utils_farms,sampling}.py and empty __init__.py files; WW_DIR
weightwatcher 0.7.7 installed with pip --target.) Prints the largest relative differences.
"""

from __future__ import annotations

import os

os.environ["CUDA_VISIBLE_DEVICES"] = ""  # WeightWatcher computes in float16 on a GPU

import argparse
import contextlib
import io
import logging
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from reference import release, ww  # noqa: E402


def rel(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300))) if a.size else 0.0


def heavy_matrix(rng, rows, cols, df=None, scale=1.0):
    """A random matrix, Student-t entries (heavy tailed) if df is given, else Gaussian."""
    x = rng.standard_t(df, (rows, cols)) if df else rng.standard_normal((rows, cols))
    return scale * x / np.sqrt(max(rows, cols))


def spectra(rng, count):
    """Eigenvalue sets of many shapes, tails and scales (scale moves the release's lower bound)."""
    out = []
    for k in range(count):
        rows = int(rng.integers(8, 400))
        cols = int(rng.integers(4, rows + 1))
        df = [None, 2.5, 3.5, 6.0][k % 4]
        scale = float(10 ** rng.uniform(-1.5, 1.5))
        m = heavy_matrix(rng, rows, cols, df, scale)
        out.append(np.linalg.svd(m, compute_uv=False) ** 2)
    return out


class _Quiet(contextlib.redirect_stdout):
    def __init__(self):
        super().__init__(io.StringIO())


# ---------------------------------------------------------------- the release

def check_release(release_dir: Path, rng) -> list[str]:
    sys.path.insert(0, str(release_dir))
    from LLM_Pruning.lib import esd_utils_farms as R
    from LLM_Pruning.lib import sampling as S

    lines = []
    # 1. analysis_esd on the same eigenvalues (float64 tensors in)
    for fix, f32 in (("xmin_peak", True), ("xmin_peak", False), ("xmin_mid", False), (None, False)):
        da, dd, worst = [], [], 0
        for e in spectra(rng, 120):
            res = {k: [] for k in ("alpha", "spectral_norm", "D", "eigs", "norm", "alpha_hat",
                                   "stable_rank", "norm_stable_rank")}
            R.analysis_esd(res, torch.tensor(e, dtype=torch.float64), fix_fingers=fix, xmin_pos=2,
                           filter_zeros=False, device="cpu")
            f = release.analysis_esd(e, fix_fingers=fix, xmin_pos=2, float32_edges=f32)
            da.append(rel(f.alpha, res["alpha"][0]))
            dd.append(rel(f.D, res["D"][0]))
        da, dd = np.array(da), np.array(dd)
        lines.append(f"release analysis_esd {fix!s:9} edges {'float32' if f32 else 'float64'}: "
                     f"120 spectra, alpha max rel diff {da.max():.2e} (>1e-6: {int((da > 1e-6).sum())}), "
                     f"D {dd.max():.2e}")
    # 1b. the same with float32 eigenvalue tensors (what the release sees in practice)
    da = []
    for e in spectra(rng, 120):
        e32 = torch.tensor(e, dtype=torch.float32)
        res = {k: [] for k in ("alpha", "spectral_norm", "D", "eigs", "norm", "alpha_hat",
                               "stable_rank", "norm_stable_rank")}
        R.analysis_esd(res, e32, fix_fingers="xmin_peak", filter_zeros=False, device="cpu")
        da.append(rel(release.analysis_esd(e32.numpy(), float32_edges=True).alpha, res["alpha"][0]))
    da = np.array(da)
    lines.append(f"release analysis_esd xmin_peak, float32 eigenvalues in: alpha max rel diff {da.max():.2e}"
                 f" (>1e-6: {int((da > 1e-6).sum())} of 120; >1%: {int((da > 0.01).sum())})")
    # 2. fixed_sampling windows and eigenvalues
    d, count = 0.0, 0
    for _ in range(60):
        rows, cols = int(rng.integers(20, 300)), int(rng.integers(20, 300))
        nrs = int(rng.integers(5, 400))
        q = float(rng.choice([0.5, 1.0, 1.5, 2.0]))
        ops = int(rng.integers(2, 16))
        m = heavy_matrix(rng, rows, cols, 3.0)
        with _Quiet():
            real = S.fixed_sampling(torch.tensor(m), False, 0.5, nrs, q, ops).numpy()
        mine = release.fixed_sampling(m, nrs, q, ops)
        assert real.shape == mine.shape, (rows, cols, nrs, q, ops, real.shape, mine.shape)
        d = max(d, float(np.max(np.abs(real - mine)) / real.max()))
        count += 1
    lines.append(f"release fixed_sampling: {count} shapes/windows/q/ops, same eigenvalue counts, "
                 f"max |diff| / max eig {d:.2e}")
    # 3. the whole estimator on a small model (float32 weights, as the release casts them).
    # FARMS on Conv2d: the image-classification copy (Tempbalance_FARMS, which calls xmin_mid
    # "median"); the LLM copy stops there (esd_utils_farms.py:112 calls .cpu() on a numpy array).
    sys.path.insert(0, str(release_dir / "Image_Classification"))
    from tempbalance_farms import Tempbalance_FARMS

    shapes = {"fc_tall": (300, 80), "fc_wide": (64, 250), "fc_sq": (96, 96),
              "conv3x3": (48, 16, 3, 3), "conv3x3_wide": (16, 40, 3, 3), "conv1x1": (96, 24, 1, 1),
              "conv2x2": (20, 36, 2, 2), "dw3x3": (64, 1, 3, 3), "dw5x5": (40, 1, 5, 5)}
    weights = {n: torch.tensor(rng.standard_t(3.0, sh) / np.sqrt(sh[0]), dtype=torch.float32)
               for n, sh in shapes.items()}

    def module(names):
        net = nn.Module()
        for n in names:
            w = weights[n]
            m = (nn.Linear(w.shape[1], w.shape[0], bias=False, device="meta") if w.ndim == 2
                 else nn.Conv2d(w.shape[1], w.shape[0], tuple(w.shape[2:]), bias=False, device="meta"))
            m.weight = nn.Parameter(w.clone(), requires_grad=False)
            net.add_module(n, m)
        return net

    linear = [n for n in shapes if len(shapes[n]) == 2]
    conv = [n for n in shapes if len(shapes[n]) == 4]
    for fix, sliding, kw in (("xmin_peak", False, {}),
                             ("xmin_peak", True, dict(num_row_samples=50, Q_ratio=1.0, sampling_ops_per_dim=5)),
                             ("xmin_mid", False, {}),
                             ("xmin_mid", True, dict(num_row_samples=40, Q_ratio=1.0, sampling_ops_per_dim=9)),
                             ("xmin_peak", True, dict(num_row_samples=30, Q_ratio=2.0, sampling_ops_per_dim=4)),
                             ("xmin_mid", True, dict(num_row_samples=30, Q_ratio=0.5, sampling_ops_per_dim=6))):
        with _Quiet():
            if not sliding:
                r = R.net_esd_estimator_farms(net=module(shapes), fix_fingers=fix, use_sliding_window=False,
                                              filter_zeros=False, conv_norm=0.5, **kw)
                real = dict(zip(r["longname"], r["alpha"]))
            else:
                r = R.net_esd_estimator_farms(net=module(linear), fix_fingers=fix, use_sliding_window=True,
                                              filter_zeros=False, conv_norm=0.5, **kw)
                real = dict(zip(r["longname"], r["alpha"]))
                tb = Tempbalance_FARMS(module(conv), pl_fitting="median" if fix == "xmin_mid" else fix,
                                       filter_zeros=False, conv_norm=0.5, use_sliding_window=True, **kw)
                r = tb.net_esd_estimator(use_sliding_window=True)
                real.update(zip(r["longname"], r["alpha"]))
        mine = release.net_esd_estimator({n: w.numpy() for n, w in weights.items()}, sliding, fix_fingers=fix,
                                         conv_norm=0.5, float32_edges=True, **kw)
        assert set(real) == set(mine), (set(real) ^ set(mine))
        ds = {n: rel(mine[n].alpha, real[n]) for n in real}
        worst = max(ds, key=ds.get)
        lines.append(f"release estimator {fix:9} sliding={sliding!s:5} {kw.get('Q_ratio', '')!s:3}: "
                     f"{len(real)} layers (Linear, Conv2d 3x3/1x1/2x2, depthwise), alpha max rel diff "
                     f"{ds[worst]:.2e} ({worst}); >1e-6: {sum(d > 1e-6 for d in ds.values())}")
    return lines


# ---------------------------------------------------------------- WeightWatcher

def check_ww(rng) -> list[str]:
    logging.getLogger("weightwatcher").setLevel(logging.ERROR)
    import weightwatcher

    W = weightwatcher.WeightWatcher(log_level=logging.ERROR)
    lines = []
    for label, sizes in (("N >= 20 (standard)", range(20, 400)), ("N < 20 (small-sample)", range(2, 20))):
        da, dd, n = [], [], 0
        for k in range(150):
            N = int(rng.choice(list(sizes)))
            df = [2.5, 3.5, 6.0][k % 3]
            e = np.sort(np.abs(rng.standard_t(df, N)) ** 2 * 10 ** rng.uniform(-2, 2))
            e = e[e > 1e-5]
            with _Quiet():
                alpha, _, xmin, _, D, *_ = W.fit_powerlaw(e, plot=False, savefig=False)
            f = ww.fit(e)
            da.append(rel(f.alpha, alpha))
            dd.append(rel(f.D, D))
            n += 1
        lines.append(f"WW fit {label:22}: {n} spectra, alpha max rel diff {max(da):.2e}, D {max(dd):.2e}")
    shapes = {"fc_tall": (300, 80), "fc_wide": (64, 250), "fc_small": (30, 12), "fc_tiny": (40, 7),
              "conv3x3": (48, 16, 3, 3), "conv3x3_wide": (16, 40, 3, 3), "conv1x1": (96, 24, 1, 1),
              "conv1x1_small": (16, 12, 1, 1), "conv2x2_wide": (20, 36, 2, 2), "dw3x3": (64, 1, 3, 3),
              "dw5x5": (40, 1, 5, 5), "conv_first": (1, 1, 3, 3)}
    net, weights = nn.Module(), {}
    for name, sh in shapes.items():
        w = torch.tensor(rng.standard_t(3.0, sh) / np.sqrt(sh[0]), dtype=torch.float32)
        m = (nn.Linear(sh[1], sh[0], bias=False, device="meta") if len(sh) == 2
             else nn.Conv2d(sh[1], sh[0], sh[2:], bias=False, device="meta"))
        m.weight = nn.Parameter(w, requires_grad=False)
        net.add_module(name, m)
        weights[name] = w.numpy()
    with _Quiet():
        details = weightwatcher.WeightWatcher(model=net, log_level=logging.ERROR).analyze()
    real = dict(zip(details["longname"], zip(details["alpha"], details["D"])))
    mine = ww.analyze(weights)
    assert set(real) == set(mine), (set(real) ^ set(mine))
    da = {n: rel(mine[n].alpha, real[n][0]) for n in real}
    dd = max(rel(mine[n].D, real[n][1]) for n in real)
    worst = max(da, key=da.get)
    small = sorted(n for n in mine if mine[n].small_n)
    lines.append(f"WW analyze(): {len(real)} of {len(shapes)} layers kept (skipped: "
                 f"{', '.join(sorted(set(shapes) - set(real)))}), alpha max rel diff {da[worst]:.2e} ({worst}), "
                 f"D {dd:.2e}; small-sample fits: {', '.join(small)}")
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--release", type=Path, default=Path("/work/farms_release"))
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    torch.set_num_threads(2)
    rng = np.random.default_rng(a.seed)
    for line in check_release(a.release, rng) + check_ww(rng):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
