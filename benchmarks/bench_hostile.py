"""What hostile or damaged weight files cost to open, against honest baselines measured in the same run.

Each case runs in a fresh subprocess (wall time, peak RSS growth over the imports, a timeout), on
files built in a temp folder by ``tests/hostilekit.py``:

- many tensors: open + list + load every tensor of 4 x 4 weights in one ``.pt`` / ``.safetensors``;
  the figure of merit is the time per tensor at the large count over the small count (1 = linear);
  then the whole analysis of a ``.pt`` of ``--analyze-count`` such tensors against a tenth of them.
- pickle bomb: a ``.pt`` whose deflated ``data.pkl`` expands ~1000x; baseline the same weights honest.
- record bomb: a ``.pt`` whose deflated zero tensor expands ~1000x; baseline its file size.
- strided view: ``side x side`` view of ``2 * side`` stored floats, analysed; baseline an honest file
  of the same bytes (one ``2 * side / 100 x 100`` weight).
- short record: a ``.pt`` whose first storage record lost 28 bytes; shows the layer's status.

    python benchmarks/bench_hostile.py [--counts 1000,10000] [--timeout 120] [--package-root DIR]

``--package-root`` puts another checkout's ``farms_viz`` first on the path (to measure "before").
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))
from _common import describe_machine  # noqa: E402
from hostilekit import many_tensors, pickle_bomb_pt, record_bomb_pt, short_record_pt, strided_view_pt  # noqa: E402

CHILD = """
import resource, sys, time
import torch
torch.set_num_threads(1)
from farms_viz import analyze, FarmsError
from farms_viz.pipeline.sources import open_source
mode, path = sys.argv[1], sys.argv[2]
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
t0 = time.perf_counter()
try:
    if mode == "open":
        n = 0
        for ref in open_source(path).tensors():
            ref.load().float().contiguous()
            n += 1
        what = f"{n} tensors loaded"
    elif mode == "analyze-quiet":
        t = analyze(path, window=64, ops=2, cache=False).table
        what = f"{len(t)} layers analysed"
    else:
        t = analyze(path, window=64, ops=2, cache=False).table
        what = "; ".join(f"{r.layer}: {r.status} alpha {r.alpha_raw:.3g}" for r in t.itertuples())
except FarmsError as e:
    what = "FarmsError: " + str(e)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(time.perf_counter() - t0, peak - base, what.replace(chr(10), " ")[:160], sep="\\t")
"""


def run(mode: str, path: Path, timeout: float, package_root: Path) -> tuple[float, float, str]:
    """(seconds, peak RSS growth in MiB, outcome) of one child; seconds is inf on timeout."""
    env = {**os.environ, "PYTHONPATH": str(package_root), "OMP_NUM_THREADS": "1"}
    try:
        r = subprocess.run([sys.executable, "-c", CHILD, mode, str(path)], capture_output=True, text=True,
                           timeout=timeout, env=env, cwd=package_root)
    except subprocess.TimeoutExpired:
        return float("inf"), float("nan"), f"timed out after {timeout:.0f} s"
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or ["?"])[-1]
        return float("nan"), float("nan"), f"crashed: {last[:150]}"
    sec, rss, what = r.stdout.strip().split("\t")
    return float(sec), int(rss) / 2**20, what


def line(label: str, res: tuple[float, float, str], size: int | None = None) -> None:
    sec, mib, what = res
    sz = f"{size / 2**20:8.2f} MiB file" if size is not None else " " * 17
    print(f"{label:<34} {sz}  {sec:8.2f} s  {mib:8.1f} MiB  {what}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--counts", default="1000,10000", help="tensor counts for the many-tensor cases")
    ap.add_argument("--timeout", type=float, default=120, help="seconds per case")
    ap.add_argument("--package-root", type=Path, default=ROOT)
    ap.add_argument("--side", type=int, default=6000, help="side of the strided view")
    ap.add_argument("--analyze-count", type=int, default=40000, help="tensors of the whole-analysis case (0: skip)")
    ap.add_argument("--bomb-mib", type=int, default=200, help="expanded size of the pickle bomb")
    args = ap.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    print(describe_machine())
    print(f"package: {args.package_root}")
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        for fmt in ("pt", "safetensors"):
            per = []
            for n in counts:
                p = many_tensors(d, n, fmt)
                res = run("open", p, args.timeout, args.package_root)
                line(f"{n} tensors ({fmt})", res, p.stat().st_size)
                per.append(res[0] / n)
                p.unlink()
            print(f"  -> time per tensor at {counts[-1]} / at {counts[0]}: {per[-1] / per[0]:.2f} (1 = linear)")
        if args.analyze_count:
            per = []
            for n in (args.analyze_count // 10, args.analyze_count):
                p = many_tensors(d, n, "pt")
                res = run("analyze-quiet", p, args.timeout, args.package_root)
                line(f"analyze {n} tensors (pt)", res, p.stat().st_size)
                per.append(res[0] / n)
                p.unlink()
            print(f"  -> time per tensor at {args.analyze_count} / at {args.analyze_count // 10}: "
                  f"{per[-1] / per[0]:.2f} (1 = linear)")

        honest = d / "honest.pt"
        torch.save({f"layers.{i}.weight": torch.randn(16, 16) for i in range(8)}, honest)
        base = run("open", honest, args.timeout, args.package_root)
        line("honest .pt, 8 x 16x16", base, honest.stat().st_size)
        bomb = pickle_bomb_pt(d, args.bomb_mib * 2**20)
        res = run("open", bomb, args.timeout, args.package_root)
        line(f"pickle bomb ({args.bomb_mib} MiB pickle)", res, bomb.stat().st_size)
        print(f"  -> time {res[0] / base[0]:.1f}x, RSS growth {res[1] - base[1]:+.0f} MiB over the honest file")

        rbomb = record_bomb_pt(d, 8192, 8192)
        res = run("open", rbomb, args.timeout, args.package_root)
        line("record bomb (8192^2 zeros)", res, rbomb.stat().st_size)
        print(f"  -> RSS growth / file size: {res[1] * 2**20 / rbomb.stat().st_size:.0f}x")

        plain = d / "plain.pt"
        rows = 2 * args.side // 100
        torch.save({"plain.weight": torch.randn(rows, 100)}, plain)
        base = run("analyze", plain, args.timeout, args.package_root)
        line(f"honest {rows} x 100, same bytes (analyze)", base, plain.stat().st_size)
        view = strided_view_pt(d, args.side)
        res = run("analyze", view, args.timeout, args.package_root)
        line(f"strided view {args.side}^2 (analyze)", res, view.stat().st_size)
        print(f"  -> time {res[0] / base[0]:.1f}x, RSS growth {res[1] - base[1]:+.0f} MiB over the honest file")

        g = torch.Generator().manual_seed(0)
        short = short_record_pt(d, {"fc.weight": torch.randn(300, 100, generator=g)}, "0")
        line("data/0 28 bytes short (analyze)", run("analyze", short, args.timeout, args.package_root),
             short.stat().st_size)


if __name__ == "__main__":
    main()
