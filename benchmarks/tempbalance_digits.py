"""TempBalance on the digits CNN: uniform lr vs TB from raw alphas vs TB from FARMS alphas.

Seeds 0, 1, 2, 10 epochs, one thread; TempBalance (``farms_viz.TempBalance``, map
``tb_linear_map``) re-analyses the net with the cnn preset after every epoch. Two protocols
(``farms_viz.analyses.tempbalance``):

- ``zoo`` (default): the zoo's training loop (SGD lr 0.05, momentum 0.9, batches of 32, no
  schedule), lr range 0.5-1.5 x the base lr, every layer in the map;
- ``release``: as the TempBalance/FARMS releases train: cosine decay of the base lr, weight decay
  5e-4, first and last layer at the base lr, layers with < 5 eigenvalues out, norms tied, and
  per TB arm and seed the lr range chosen from the FARMS release's sweep (0.5-1.5 ... 0.1-1.9)
  by accuracy on the 300 tuning images (held out of training; the test set is read after).

Writes every (arm, seed, epoch) accuracy to a CSV (and, for ``release``, every range tried to
``<out>-choices.csv``) and prints test accuracy per epoch, mean ± sd over seeds, min-max at the
last epoch, the ranges chosen, and the time each arm took.

    nice python benchmarks/tempbalance_digits.py [--protocol release] [--epochs 10] [--seeds 0,1,2] [--out tb_digits.csv]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import describe_machine  # noqa: E402

from farms_viz.analyses import tempbalance as tb  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--protocol", choices=tb.PROTOCOLS, default="zoo")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--arch", default="cnn")
    ap.add_argument("--out", default="tb_digits.csv")
    args = ap.parse_args()
    seeds = tuple(int(s) for s in args.seeds.split(","))
    torch.set_num_threads(1)  # as digits_curves trains (tiny nets: fastest on one thread)
    print(describe_machine())
    curves, choices, times = [], [], []
    for arm in tb.ARMS:
        t0 = time.perf_counter()
        if args.protocol == "release":
            c, ch = tb.release_runs(args.arch, seeds, args.epochs, arms=(arm,))
            choices.append(ch)
        else:
            c = tb.digits_curves(args.arch, seeds, args.epochs, arms=(arm,))
        runs = len(seeds) * (1 if arm == "uniform" or args.protocol == "zoo" else len(tb.RELEASE_GRID))
        times.append({"arm": tb.ARM_NAMES[arm], "trainings": runs, "epochs": args.epochs,
                      "wall s": round(time.perf_counter() - t0, 1)})
        curves.append(c)
    curves = pd.concat(curves, ignore_index=True)
    curves.to_csv(args.out, index=False)
    s = tb.summarize_curves(curves)
    s["cell"] = [f"{m:.4f} ± {d:.4f}" for m, d in zip(s["mean"], s["sd"].fillna(0))]
    table = s.pivot(index="epoch", columns="arm", values="cell")[list(tb.ARMS)]
    table.columns = [tb.ARM_NAMES[a] for a in tb.ARMS]
    print(f"\ndigits-{args.arch}, protocol {args.protocol}: test accuracy after each epoch, mean ± sd over seeds {seeds}")
    print(table.to_string())
    last = s[s["epoch"] == args.epochs].set_index("arm")
    print(f"\nepoch {args.epochs}, min-max over seeds: "
          + "; ".join(f"{tb.ARM_NAMES[a]} {last.loc[a, 'min']:.4f}-{last.loc[a, 'max']:.4f}" for a in tb.ARMS))
    if choices:
        choices = pd.concat(choices, ignore_index=True)
        path = Path(args.out).with_name(Path(args.out).stem + "-choices.csv")
        choices.to_csv(path, index=False)
        grid = choices[choices["arm"] != "uniform"].copy()
        grid["range"] = [f"{lo:g}-{hi:g}" for lo, hi in zip(grid["lr_min_ratio"], grid["lr_max_ratio"])]
        grid["cell"] = [f"{a:.4f}{' *' if c else ''}" for a, c in zip(grid["tune_accuracy"], grid["chosen"])]
        print("\ntuning accuracy (300 held-out training images) per lr range; * = chosen")
        print(grid.pivot(index=["arm", "seed"], columns="range", values="cell").to_string())
        print(f"every range tried written to {path}")
    print("\nTimes (training + re-analysis, one thread)")
    print(pd.DataFrame(times).to_string(index=False))
    print(f"rows written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
