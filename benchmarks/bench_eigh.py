"""Where a stack of symmetric eigenproblems is solved fastest: the GPU or the host's CPU threads.

    python benchmarks/bench_eigh.py [--device cuda]

For window sizes n and both precisions, the time of ``torch.linalg.eigvalsh`` on a stack of
n x n Gram matrices on the device, against farms-viz's host route (copy to the CPU, the stack
split over the CPU threads, copy back; ``spectra.eigvalsh_batched``). The ratio chooses
``spectra.HOST_EIGH_MAX_N``. On a CPU-only machine it compares LAPACK's own threading with
the split.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import best_of, describe_machine  # noqa: E402

from farms_viz.core import spectra  # noqa: E402

SIZES = [32, 64, 100, 128, 192, 256, 384, 512, 768, 1024, 2000]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--sizes", type=int, nargs="+", default=SIZES)
    a = ap.parse_args()
    print(describe_machine())
    gpu = a.device != "cpu"
    sync = torch.cuda.synchronize if gpu else (lambda: None)
    print(f"{'n':>5} {'dtype':>8} {'stack':>6} {'on device s':>12} {'host route s':>13} {'host/device':>11}")
    for n in a.sizes:
        k = 225 if n <= 512 else 24
        x = torch.randn(k, n, n, device=a.device) / n**0.5
        for dt in (torch.float32, torch.float64):
            g = (x.mT @ x).to(dt)
            torch.linalg.eigvalsh(g[:2])  # handles, workspaces
            sync()
            if gpu:
                dev = best_of(lambda: (torch.linalg.eigvalsh(g), sync()), repeat=2)
                host = best_of(lambda: spectra.eigvalsh_batched(g.cpu()).to(g.device).cpu(), repeat=2)
            else:
                dev = best_of(lambda: torch.linalg.eigvalsh(g), repeat=2)
                host = best_of(lambda: spectra.eigvalsh_batched(g), repeat=2)
            print(f"{n:>5} {str(dt)[6:]:>8} {k:>6} {dev:>12.4f} {host:>13.4f} {host / dev:>10.2f}x", flush=True)


if __name__ == "__main__":
    main()
