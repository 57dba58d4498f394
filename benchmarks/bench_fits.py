"""Power-law fits: the release's per-candidate loop vs farms-viz's exact pruned search.

    python benchmarks/bench_fits.py [--sizes 10000 100000 450000]

The ESD is a pooled FARMS-like spectrum (heavy-tailed + Marchenko-Pastur bulk). The baseline
is the releases' loop (one Hill estimate and one KS scan of the whole tail per candidate
xmin, in numpy float64); for large N it is timed on a subset of candidates and extrapolated
(marked ~). Both must give the same alpha (checked when the baseline ran in full).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import describe_machine  # noqa: E402

from farms_viz.core.fits import fit_power_law, peak_xmin  # noqa: E402


def pooled_esd(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    bulk = rng.chisquare(5, n - n // 4) / 5
    tail = (rng.pareto(2.0, n // 4) + 1) * 0.8
    return np.sort(np.concatenate([bulk, tail]))


def loop_fit(nz: np.ndarray, method: str, max_cand: int | None) -> tuple[float, float, bool]:
    """(alpha, seconds, extrapolated) of the releases' loop."""
    N = nz.size
    logs = np.log(nz)
    if method == "xmin_peak":
        n_cand = int(np.searchsorted(nz[:-1], 1.5 * peak_xmin(nz), side="right"))
    else:
        n_cand = N - 1
    run = n_cand if max_cand is None else min(n_cand, max_cand)
    Ds = np.ones(N - 1)
    alphas = np.zeros(N - 1)
    t = time.perf_counter()
    step = max(1, n_cand // run)
    for i in range(0, n_cand, step):
        n = N - i
        a = 1 + n / (np.sum(logs[i:]) - n * logs[i])
        alphas[i] = a
        if a > 1:
            Ds[i] = np.max(np.abs(1 - (nz[i:] / nz[i]) ** (1 - a) - np.arange(n) / n))
    dt = (time.perf_counter() - t) * step
    return float(alphas[int(np.argmin(Ds))]), dt, step > 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 450_000])
    ap.add_argument("--max-candidates", type=int, default=3000, help="baseline candidates timed before extrapolating")
    a = ap.parse_args()
    print(describe_machine() + "\n")
    print(f"{'N':>8} {'fit':>9} {'baseline s':>11} {'farms-viz s':>11} {'speed-up':>9}  alpha (same?)")
    for n in a.sizes:
        e = pooled_esd(n)
        for method in ("xmin_peak", "ks"):
            full = n <= 20_000
            alpha_b, tb, extrap = loop_fit(e, method, None if full else a.max_candidates)
            t = time.perf_counter()
            fit = fit_power_law(e, method)
            to = time.perf_counter() - t
            same = "yes" if (not extrap and abs(alpha_b - fit.alpha) < 1e-9 * fit.alpha) else ("n/a" if extrap else "NO")
            print(f"{n:>8} {method:>9} {('~' if extrap else '') + f'{tb:.2f}':>11} {to:>11.2f} {tb / to:>8.0f}x  "
                  f"{fit.alpha:.4f} ({same})", flush=True)


if __name__ == "__main__":
    main()
