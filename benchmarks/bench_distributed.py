"""Local vs Ray executor on a synthetic LLaMA-shaped checkpoint: wall time and the driver's peak memory.

    python benchmarks/bench_distributed.py [--blocks 2] [--scale 4] [--workers 2] [--window-cost]

Writes an fp16 safetensors file of ``blocks`` LLaMA-7B blocks (q, k, v, o: d x d; gate, up:
f x d; down: d x f with d = 4096/scale, f = 11008/scale), then runs ``farms-viz analyze``'s
``analyze()`` on it (paper's LLM settings, no disk cache) in a fresh subprocess per executor:
``local`` (in-process, torch's default threads) and ``ray`` (a local Ray of ``workers`` CPUs,
one task per layer, one thread per task). Each subprocess reports its wall time (with and
without starting Ray) and its peak resident memory (VmHWM). Both tables are checked to agree.
``--window-cost`` also times one 2000 x 2000 window's ESD and the raw ESDs of LLaMA-7B's
4096 x 4096 and 11008 x 4096 matrices here (the inputs of the README's sizing table).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

def shapes(d: int, f: int) -> dict[str, tuple[int, int]]:
    return {"self_attn.q_proj": (d, d), "self_attn.k_proj": (d, d), "self_attn.v_proj": (d, d),
            "self_attn.o_proj": (d, d), "mlp.gate_proj": (f, d), "mlp.up_proj": (f, d), "mlp.down_proj": (d, f)}


def write_checkpoint(path: Path, blocks: int, scale: int) -> int:
    import torch
    from safetensors.torch import save_file

    d, f = 4096 // scale, 11008 // scale
    g = torch.Generator().manual_seed(0)
    tensors = {}
    for b in range(blocks):
        for name, (r, c) in shapes(d, f).items():
            w = torch.randn(r, c, generator=g)
            w = w * (1 + 4 * (torch.rand(r, c, generator=g) > 0.999))  # a few large entries: a tail to fit
            tensors[f"model.layers.{b}.{name}.weight"] = (w / c**0.5).half()
    save_file(tensors, str(path))
    return path.stat().st_size


def vm_hwm_mib() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def run_one(path: str, executor: str, workers: int, out: str) -> None:
    """One measured run (in its own process, so VmHWM is this run's peak)."""
    t0 = time.perf_counter()
    from farms_viz import analyze

    start = 0.0
    if executor == "ray":
        from farms_viz.pipeline import ray as distributed

        distributed.connect(num_cpus=workers)
        start = time.perf_counter() - t0
    t1 = time.perf_counter()
    report = analyze(path, cache=False, executor=executor)
    t2 = time.perf_counter()
    report.table.to_csv(out, index=False)
    import torch

    print(json.dumps({"executor": executor, "analysis_s": t2 - t1, "total_s": t2 - t0, "ray_start_s": start,
                      "peak_rss_mib": vm_hwm_mib(), "layers": len(report.table),
                      "windows": int(report.table["n_windows"].sum()), "threads": torch.get_num_threads()}))


def window_cost() -> None:
    import torch
    from _common import best_of

    from farms_viz.core.spectra import esd

    g = torch.Generator().manual_seed(0)
    rows = []
    for r, c, rep in ((2000, 2000, 3), (1024, 1024, 3), (4096, 4096, 1), (11008, 4096, 1)):
        w = torch.randn(1, r, c, generator=g) / c**0.5
        esd(w[:, :64, :64])  # warm up
        rows.append((f"{r}x{c}", best_of(lambda: esd(w), repeat=rep)))
    print(f"\nESD cost here (float32, {torch.get_num_threads()} torch threads):")
    for name, s in rows:
        print(f"  {name:>11}: {s:7.3f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--blocks", type=int, default=2)
    ap.add_argument("--scale", type=int, default=4, help="LLaMA-7B's sides divided by this (default 4)")
    ap.add_argument("--workers", type=int, default=2, help="CPUs of the local Ray (default 2)")
    ap.add_argument("--window-cost", action="store_true", help="also time one 2000x2000 window and LLaMA-7B raw ESDs")
    ap.add_argument("--run", choices=["local", "ray"], help=argparse.SUPPRESS)
    ap.add_argument("--path", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.run:
        run_one(a.path, a.run, a.workers, a.out)
        return
    from _common import describe_machine

    print(describe_machine())
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "llama-shaped.safetensors"
        size = write_checkpoint(path, a.blocks, a.scale)
        d, f = 4096 // a.scale, 11008 // a.scale
        print(f"checkpoint: {a.blocks} blocks x 7 matrices ({d}x{d}, {f}x{d}, {d}x{f}), fp16, {size / 2**20:.0f} MiB\n")
        results = {}
        for executor in ("local", "ray"):
            out = str(Path(tmp) / f"{executor}.csv")
            p = subprocess.run([sys.executable, __file__, "--run", executor, "--path", str(path), "--out", out,
                                "--workers", str(a.workers)], capture_output=True, text=True)
            if p.returncode:
                sys.exit(f"{executor} run failed:\n{p.stderr}")
            results[executor] = json.loads(p.stdout.strip().splitlines()[-1])
        import numpy as np
        import pandas as pd

        lt, rt = (pd.read_csv(Path(tmp) / f"{e}.csv") for e in ("local", "ray"))
        num = [c for c in lt.select_dtypes("number").columns if c != "seconds"]
        assert list(lt["layer"]) == list(rt["layer"]) and (lt["status"] == rt["status"]).all()
        diff = np.nanmax(np.abs(lt[num].to_numpy(float) - rt[num].to_numpy(float))
                         / np.maximum(np.abs(lt[num].to_numpy(float)), 1e-30))
        r0 = results["local"]
        print(f"{r0['layers']} layers, {r0['windows']} FARMS windows\n")
        print(f"{'executor':<18} {'analysis s':>10} {'total s':>8} {'Ray start s':>11} {'driver peak RSS MiB':>19}")
        for e, r in results.items():
            label = f"{e} ({r['threads']} thr)" if e == "local" else f"ray ({a.workers} workers)"
            print(f"{label:<18} {r['analysis_s']:>10.2f} {r['total_s']:>8.2f} {r['ray_start_s']:>11.2f} "
                  f"{r['peak_rss_mib']:>19.0f}")
        print(f"\nlargest relative difference local vs ray over the numeric columns: {diff:.1e} "
              f"(float32 round-off from different thread counts)")
    if a.window_cost:
        window_cost()


if __name__ == "__main__":
    main()
