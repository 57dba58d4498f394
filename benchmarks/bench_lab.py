"""Speed of the aspect-ratio lab: one interaction on a 1000 x 1000 matrix, and the default bias sweep.

An interaction = make the matrix, analyse it raw vs FARMS (lab defaults), build the page's five
figures. Prints median and max over repeats after one warm-up (the first linear-algebra call in a
process pays a one-off library start-up). Targets: interaction < 1 s, sweep < 10 s, on 2 cores.

    python benchmarks/bench_lab.py [--threads 2] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from farms_viz.analyses import lab
from farms_viz.figures import lab as figures_lab
from farms_viz.figures import layer as figures


def interaction(spec: lab.MatrixSpec) -> float:
    t0 = time.perf_counter()
    res = lab.run_matrix(spec, lab.lab_settings(spec.rows, spec.cols))
    sp = res.spectra
    figures_lab.lab_esd(sp.esd_raw, res.theory_raw, sp.mp_raw, "raw")
    figures_lab.lab_esd(sp.esd_farms, res.theory_farms, sp.mp_farms, "farms")
    figures.tail_ccdf(sp.esd_raw, sp.fit_raw, "raw")
    figures.tail_ccdf(sp.esd_farms, sp.fit_farms, "farms")
    figures.window_grid_figure(sp.thumbnail, sp.grid)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    interaction(lab.MatrixSpec(300, 300))  # warm-up
    cases = {"gaussian 1000 x 1000": lab.MatrixSpec(1000, 1000),
             "pareto mu=1.5 1000 x 1000": lab.MatrixSpec(1000, 1000, "pareto", mu=1.5),
             "planted 1000 x 1000": lab.MatrixSpec(1000, 1000, "planted"),
             "gaussian 2000 x 250 (preset)": lab.MatrixSpec(2000, 250)}
    for name, spec in cases.items():
        ts = [interaction(spec.replace(seed=k)) for k in range(args.repeats)]
        print(f"interaction {name:30s} median {statistics.median(ts):.3f} s  max {max(ts):.3f} s")
    ts = []
    for _ in range(max(1, args.repeats // 2)):
        t0 = time.perf_counter()
        res = lab.sweep(lab.MatrixSpec())
        ts.append(time.perf_counter() - t0)
    print(f"sweep (defaults: {SWEEP_DESC(res)}) median {statistics.median(ts):.2f} s  max {max(ts):.2f} s")
    print(f"  raw slope {res.slope('raw'):+.2f} / doubling, FARMS slope {res.slope('farms'):+.2f} / doubling")


def SWEEP_DESC(res: lab.SweepResult) -> str:  # noqa: N802
    return (f"{lab.SWEEP_MODES[res.mode]} {res.size}, Q in {res.aspect_ratios.min():g}..{res.aspect_ratios.max():g} "
            f"({len(res.aspect_ratios)} ratios), {len(res.seeds)} seeds, window {res.window}, "
            f"{res.per_dim}/side")


if __name__ == "__main__":
    main()
