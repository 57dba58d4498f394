"""The report's raw metric columns (issue 18) against WeightWatcher 0.7.7 run for real, whole models.

    PYTHONPATH=WW_DIR .venv/bin/python benchmarks/ww_table_check.py minilm [mobilenet-v2]

``farms_viz.analyze(model, fit="ks", cache=False)`` (the alpha-based columns use the report's fit;
under ``ks`` it is WeightWatcher's) against ``WeightWatcher(model).analyze(mp_fit=True, detX=True)``
on the same Linear / Conv2d weights (conv_norm 0.5 = WW's conv2d_norm=True). Prints, per column,
the largest relative difference over the layers and how many layers are within 1e-3.
"""

from __future__ import annotations

import os

os.environ["CUDA_VISIBLE_DEVICES"] = ""

import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from reference.check_ww_metrics import model_weights, module, rel, run_ww  # noqa: E402

from farms_viz import analyze  # noqa: E402

COLUMNS = ("log_norm", "log_spectral_norm", "alpha_weighted", "log_alpha_norm", "entropy", "mp_softrank",
           "rank_loss", "weak_rank_loss", "sv_max", "sv_min", "detX_num", "detX_val")


def main(models: list[str]) -> None:
    for source in models:
        t0 = time.perf_counter()
        rep = analyze(source, fit="ks", preset="cnn" if "net" in source else "llm", cache=False)
        t_fv = time.perf_counter() - t0
        weights = model_weights(source)
        t0 = time.perf_counter()
        details = run_ww(module(weights), 0, randomize=False)
        t_ww = time.perf_counter() - t0
        ours = rep.table.set_index("layer")
        names = list(details["longname"])
        print(f"{source}: {len(names)} layers; farms-viz analyze (raw + FARMS + metrics) {t_fv:.1f} s, "
              f"WW analyze(mp_fit, detX) {t_ww:.1f} s")
        for col in COLUMNS:
            diffs = [rel(ours.loc[n, f"{col}_raw"], details.iloc[i][col], col) for i, n in enumerate(names)
                     if n in ours.index and col in details]
            d = np.array(diffs)
            print(f"  {col:<18} max rel diff {d.max():.2e}   within 1e-3: {(d <= 1e-3).sum()}/{d.size}")


if __name__ == "__main__":
    main(sys.argv[1:] or ["minilm"])
