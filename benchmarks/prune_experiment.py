"""The FARMS paper's pruning experiment: uniform vs AlphaPruning-raw vs AlphaPruning-FARMS, by the releases' protocol.

Per model x method (magnitude / Wanda / SparseGPT; the last two calibrated block by block) x
sparsity 0.5, 0.6, 0.7, 0.8: the held-out measure of uniform pruning and of AlphaPruning with raw
and with FARMS alphas, block-wise (a transformer block's mean alpha), epsilon searched per arm
over outcome.EPSILONS on the model's TUNING data (never the held-out part) and reported per cell,
ratios above 1 by ``--cap`` (default redistribute). tinylm: seeds 0, 1, 2 (mean ± sd; held-out
perplexity); digits CNN: seeds 0, 1, 2 (test accuracy); MiniLM: one checkpoint, a proxy, epsilon
fixed at 0.3 (no tuning data). ``compute s`` is the sum of the rows' prune-and-measure times (as
first computed; rows come from the shared cache in $FARMS_VIZ_CACHE/outcome when there),
``wall s`` this run's time including loading, analysing, the epsilon search and cache reads.
Builds tinylm-seed1/2 on first use (about 3 CPU-minutes each).

    nice python benchmarks/prune_experiment.py [--models tinylm,digits-cnn,minilm] [--methods magnitude,wanda,sparsegpt]
        [--cap redistribute|release] [--mapping block|matrix] [--out outcome.csv] [--markdown]
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

from farms_viz.analyses import outcome  # noqa: E402
from farms_viz.analyses.allocate import alphapruning  # noqa: E402
from farms_viz.errors import FarmsError  # noqa: E402
from farms_viz.pipeline.analyze import analyze  # noqa: E402

SPARSITIES = (0.5, 0.6, 0.7, 0.8)
METHODS = ("magnitude", "wanda", "sparsegpt")
EPSILON = 0.3  # for allocation_note's illustration only


def allocation_note(name: str, sparsity: float) -> str:
    """Seed 0's per-layer sparsities at ``sparsity`` (small models only: where the allocations differ)."""
    fam = outcome.family(name)
    model = fam.subject(0).load(None)
    alloc = alphapruning(analyze(model, preset=fam.preset).table, sparsity, EPSILON, blocks_only=fam.blocks_only)
    t = alloc.table.round(3)
    capped = {w: alloc.capped[w] for w in ("raw", "farms") if alloc.capped[w]}
    return f"{name} seed 0, S = {sparsity}: per-layer sparsity\n{t.to_string(index=False)}" \
        + (f"\ncapped at 1: {capped}" if capped else "")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="tinylm,digits-cnn,minilm")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--cap", default="redistribute", choices=("redistribute", "release"))
    ap.add_argument("--mapping", default="block", choices=outcome.MAPPINGS)
    ap.add_argument("--out", default=None, help="CSV of every measured row")
    ap.add_argument("--markdown", action="store_true", help="print the tables as Markdown (for the README)")
    args = ap.parse_args()
    torch.set_num_threads(1)  # small models: one thread is as fast on the shared 2 cores
    print(describe_machine())
    tables, times = [], []
    for name in args.models.split(","):
        for method in args.methods.split(","):
            t0 = time.perf_counter()
            try:
                tab = outcome.measure(name, method, SPARSITIES, mapping=args.mapping, cap=args.cap)
            except FarmsError as e:
                print(f"{name} {method}: {e}")
                return 1
            wall = time.perf_counter() - t0
            tables.append(tab)
            times.append({"model": name, "method": method, "rows": len(tab), "compute s": round(tab["seconds"].sum(), 1),
                          "wall s": round(wall, 1)})
            print(f"\n{outcome.format_summary(outcome.summarize(tab), markdown=args.markdown)}")
            caps = tab[tab["capped"] > 0]
            if len(caps):
                print(f"rows whose allocation the cap rule ({args.cap}) changed: "
                      + ", ".join(f"seed {r.seed} {r.allocation} S={r.sparsity:g} ({r.capped})" for r in caps.itertuples()))
            print(f"{name} {method}: {len(tab)} rows, {wall:.1f} s wall, {tab['seconds'].sum():.1f} s of pruning and measuring")
    for name in args.models.split(","):
        if name.startswith("digits"):
            print("\n" + allocation_note(name, 0.5))
    print("\nTimes")
    print(pd.DataFrame(times).to_string(index=False))
    if args.out:
        pd.concat(tables).to_csv(args.out, index=False)
        print(f"rows written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
