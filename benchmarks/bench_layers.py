"""FARMS ESD of one layer: the release's per-window ``svdvals`` loop vs farms-viz, per shape and window.

    python benchmarks/bench_layers.py [--quick] [--device cpu|cuda]

Prints, per shape and window size: windows, baseline seconds (a Python loop of float32
``torch.linalg.svdvals`` over the windows, as in the FARMS release; for big cases timed on
a subset of windows and extrapolated, marked ~), farms-viz seconds, the speed-up, and the
GFLOP/s farms-viz reaches (Gram + eigvalsh work) as a fraction of a float32 matmul measured
in the same run; then the eigenvalue solves alone (``eigvalsh`` of the windows' Gram matrices,
made beforehand) and the speed-up they bound: what any exact Gram + eigvalsh route could reach.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import best_of, describe_machine, matmul_gflops  # noqa: E402

from farms_viz.core.spectra import eigvalsh_batched, farms_esd, window_grid  # noqa: E402

SHAPES = [(384, 384), (1536, 384), (768, 3072), (2048, 2048), (4096, 4096), (11008, 4096)]
WINDOWS = [100, 2000]


def baseline(W: torch.Tensor, grid, limit: int | None) -> tuple[float, bool]:
    """The release's loop: one svdvals call per window, squared, concatenated, sorted."""
    starts = [(r, c) for r in grid.row_starts for c in grid.col_starts]
    subset = starts if limit is None or len(starts) <= limit else starts[:limit]
    t = time.perf_counter()
    eigs = [torch.square(torch.linalg.svdvals(W[r:r + grid.h, c:c + grid.w])) for r, c in subset]
    torch.sort(torch.cat(eigs)).values.cpu()  # .cpu() waits for a GPU to finish
    dt = time.perf_counter() - t
    return dt * len(starts) / len(subset), len(subset) < len(starts)


def eigvalsh_floor(W: torch.Tensor, grid, limit: int) -> tuple[float, bool]:
    """Seconds for the eigenvalue solves alone (window Grams made beforehand, in the precision
    farms-viz uses: float64 for square windows): no Gram+eigvalsh route can beat this."""
    starts = [(r, c) for r in grid.row_starts for c in grid.col_starts]
    subset = starts[:limit]
    x = torch.stack([W[r:r + grid.h, c:c + grid.w] for r, c in subset])
    x = x.double() if grid.h == grid.w else x
    g = x.mT @ x if grid.h >= grid.w else x @ x.mT
    sync = torch.cuda.synchronize if W.device.type == "cuda" else (lambda: None)
    sync()
    dt = best_of(lambda: (eigvalsh_batched(g), sync()), repeat=2)
    return dt * len(starts) / len(subset), len(subset) < len(starts)


def work_flops(grid) -> float:
    """Gram (2 h w^2) plus symmetric eigenvalues (~4/3 w^3) per window."""
    s, l = min(grid.h, grid.w), max(grid.h, grid.w)
    return grid.n_windows * (2 * l * s * s + 4 / 3 * s**3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="skip the two largest shapes")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--baseline-windows", type=int, default=12, help="windows timed before extrapolating")
    ap.add_argument("--floor-windows", type=int, default=24, help="windows in the eigvalsh-only floor (then extrapolated)")
    a = ap.parse_args()
    print(describe_machine())
    peak = matmul_gflops(device=a.device)
    print(f"float32 matmul reference: {peak:.0f} GFLOP/s\n")
    if a.device != "cpu":  # first solver calls load libraries and build handles: not timed
        warm = torch.randn(3, 64, 64, device=a.device)
        torch.linalg.svdvals(warm), torch.linalg.eigvalsh(warm @ warm.mT), torch.linalg.eigvalsh((warm @ warm.mT).double())
        torch.cuda.synchronize()
    print(f"{'shape':>12} {'window':>6} {'windows':>7} {'baseline s':>11} {'farms-viz s':>11} {'speed-up':>8} "
          f"{'GFLOP/s':>8} {'of matmul':>9} {'eigvalsh s':>10} {'bound':>6}")
    shapes = SHAPES[:4] if a.quick else SHAPES
    for rows, cols in shapes:
        W = torch.randn(rows, cols, generator=torch.Generator().manual_seed(0)) / cols**0.5
        W = W.to(a.device)
        for window in WINDOWS:
            grid = window_grid(rows, cols, window, 1.0, 15)
            base, extrap = baseline(W, grid, a.baseline_windows)
            ours = best_of(lambda: farms_esd(W[None], window, 1.0, 15, device=a.device), repeat=1 if rows > 2048 else 3)
            gf = work_flops(grid) / ours / 1e9
            floor, fextrap = eigvalsh_floor(W, grid, a.floor_windows)
            print(f"{rows:>5}x{cols:<6} {window:>6} {grid.n_windows:>7} {('~' if extrap else '') + f'{base:.3f}':>11} "
                  f"{ours:>11.3f} {base / ours:>7.1f}x {gf:>8.1f} {gf / peak:>8.0%} "
                  f"{('~' if fextrap else '') + f'{floor:.3f}':>10} {base / floor:>5.1f}x", flush=True)


if __name__ == "__main__":
    main()
