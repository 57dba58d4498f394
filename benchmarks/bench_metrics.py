"""What WeightWatcher's metric set (issue 18) costs on top of the analysis: minilm cold, in one run.

    .venv/bin/python benchmarks/bench_metrics.py [--model minilm] [--repeat 3] [--base REV]

Three timings of ``analyze(MODEL, cache=False)`` in fresh subprocesses, median of --repeat each:
- ``before``: the code at --base (default bd419e3, the commit before the metric columns), checked
  out into a temporary git worktree: the baseline;
- ``deterministic``: this code with ``randomize=False`` (norms, entropy, ranks, detX, WW's MP fit);
- ``all``: this code with the defaults (``randomize=True``: the shuffled matrix's ESD, raw and through
  the FARMS windows).
Prints the seconds and the ratios against the baseline.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SNIPPET = ("import time, sys; from farms_viz import analyze; t = time.perf_counter(); "
           "analyze(sys.argv[1], cache=False{extra}); print(time.perf_counter() - t)")


def _time(root: Path, model: str, extra: str, repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        out = subprocess.run([sys.executable, "-c", SNIPPET.format(extra=extra), model], cwd=root,
                             env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
                             capture_output=True, text=True, check=True)
        runs.append(float(out.stdout.strip().splitlines()[-1]))
    return statistics.median(runs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="minilm")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--base", default="bd419e3")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        subprocess.run(["git", "worktree", "add", "--detach", str(base), a.base], cwd=ROOT, check=True,
                       capture_output=True)
        try:
            before = _time(base, a.model, "", a.repeat)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT, capture_output=True)
    det = _time(ROOT, a.model, ", randomize=False", a.repeat)
    full = _time(ROOT, a.model, "", a.repeat)
    print(f"{a.model}, cold (cache=False), median of {a.repeat} fresh processes:")
    print(f"  before the metrics ({a.base}): {before:6.2f} s   1.00x")
    print(f"  + deterministic metrics:     {det:6.2f} s   {det / before:.2f}x")
    print(f"  + randomized (default):      {full:6.2f} s   {full / before:.2f}x")


if __name__ == "__main__":
    main()
