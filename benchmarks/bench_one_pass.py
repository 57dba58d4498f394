"""One spectral pass (issue 24): speed against the release's loop, peak memory, per-layer overhead.

    .venv/bin/python benchmarks/bench_one_pass.py [--only speed,memory,tiny,minilm] [--ww WW_DIR] [--repeat 2]

Every ratio is against a baseline measured in the same run:

- speed: in one process, the FARMS release's procedure (float32 ``torch.linalg.svdvals`` of each
  matrix and of each of its windows, in a Python loop) against ``farms_viz.analyze`` with the
  defaults (``randomize=True``) and with ``randomize=False``, on small windows (12 x 512 x 1024,
  window 100, ops 9: a 9 x 9 grid), large windows (2 x 2048 x 2048, 512, 4 x 4) and one 4096 x 11008
  and one 4096 x 4096 matrix with the llm preset. Targets: release / randomize=False >= 1.8 (small),
  >= 1.5 (large); defaults / randomize=False <= 2.1.
- memory: peak RSS of a fresh process analysing, with the defaults, a 3.0 GiB safetensors of 12
  tensors of 64 x 2^20 (``--fit xmin_mid --ops 4``; target peak <= 0.3 x the file) and one
  8192 x 8192 float32 layer (target < 2 GiB).
- tiny: 20,000 tensors of 4 x 4 through the CLI (``farms-viz analyze``, progress bar on), end to end
  (target < 20 s), and the per-layer time.
- minilm: ``analyze("minilm", cache=False)`` cold with every metric, against WeightWatcher 0.7.7's
  ``analyze(mp_fit=True, detX=True)`` on the same weights in the same script (with --ww WW_DIR, where
  ``pip install --target WW_DIR weightwatcher -c requirements.txt`` put it).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import describe_machine  # noqa: E402
from bench_streaming import write_safetensors  # noqa: E402

from farms_viz import analyze  # noqa: E402
from farms_viz.core.spectra import window_grid  # noqa: E402
from farms_viz.settings import PRESETS  # noqa: E402

#: (label, number of matrices, shape, window, ops, preset-or-None, target release / randomize=False)
CASES = [
    ("small windows", 12, (512, 1024), 100, 9, None, 1.8),
    ("large windows", 2, (2048, 2048), 512, 4, None, 1.5),
    ("4096 x 11008, llm", 1, (4096, 11008), None, None, "llm", 1.5),
    ("4096 x 4096, llm", 1, (4096, 4096), None, None, "llm", 1.5),
]
DEFAULTS_OVER_DETERMINISTIC = 2.1


def release_loop(mats: list[torch.Tensor], window: int, q: float, ops: int) -> float:
    """The release's ESDs: float32 svdvals of each matrix and of each window, one call at a time."""
    t = time.perf_counter()
    for w in mats:
        raw = torch.linalg.svdvals(w) ** 2
        g = window_grid(w.shape[0], w.shape[1], window, q, ops)
        eigs = [torch.linalg.svdvals(w[r:r + g.h, c:c + g.w]) ** 2 for r in g.row_starts for c in g.col_starts]
        torch.sort(torch.cat(eigs)), torch.sort(raw)
    return time.perf_counter() - t


def timed_analyze(tensors: dict, **kw) -> float:
    t = time.perf_counter()
    analyze(tensors, cache=False, **kw)
    return time.perf_counter() - t


def speed(repeat: int, cases: list[int] | None = None) -> list[str]:
    print("speed (same process; best of %d interleaved rounds): release loop vs analyze()" % repeat)
    lines = [f"{'case':<20} {'release s':>9} {'rand=False s':>12} {'defaults s':>10} {'release/off':>11} "
             f"{'target':>6} {'defaults/off':>12} {'target':>6}"]
    print(lines.pop(), flush=True)
    for i, (label, n, (r, c), window, ops, preset, target) in enumerate(CASES):
        if cases is not None and i not in cases:
            continue
        g = torch.Generator().manual_seed(0)
        tensors = {f"m{i}.weight": torch.randn(r, c, generator=g) / c ** 0.5 for i in range(n)}
        opts = dict(preset=preset) if preset else dict(window=window, ops=ops)
        win, q, nops = (PRESETS[preset]["window"], PRESETS[preset]["q"], PRESETS[preset]["ops"]) if preset \
            else (window, 1.0, ops)
        mats = list(tensors.values())
        times = []  # interleaved rounds: a slow spell of a shared 2-core machine hits all three alike
        for _ in range(repeat):
            times.append((release_loop(mats, win, q, nops), timed_analyze(tensors, randomize=False, **opts),
                          timed_analyze(tensors, **opts)))
        base, off, on = (min(t[i] for t in times) for i in range(3))
        print(f"{label:<20} {base:9.2f} {off:12.2f} {on:10.2f} {base / off:10.2f}x {target:5.1f}x "
                     f"{on / off:11.2f}x {DEFAULTS_OVER_DETERMINISTIC:5.1f}x", flush=True)
    return lines


#: The child reads its peak from /proc (VmHWM: this process's own high-water mark, reset by exec);
#: ru_maxrss would start at the forking parent's size.
CHILD = """
import sys, time
from farms_viz import analyze
def hwm():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmHWM"))
base = hwm()
t0 = time.perf_counter()
r = analyze(sys.argv[1], cache=False, **eval(sys.argv[2]))
print(base, hwm(), int((r.table["status"] == "ok").sum()), len(r.table), time.perf_counter() - t0)
"""


def peak_of(path: Path, options: dict) -> tuple[int, int, int, int, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.run([sys.executable, "-c", CHILD, str(path), repr(options)], capture_output=True, text=True,
                       env=env, cwd=ROOT, check=True)
    base, peak, ok, n, secs = p.stdout.split()
    return int(base), int(peak), int(ok), int(n), float(secs)


def memory(work: Path) -> list[str]:
    lines = ["memory (fresh process each, defaults incl. randomize; peak RSS = VmHWM):",
             f"{'case':<34} {'file GiB':>8} {'peak GiB':>8} {'import GiB':>10} {'peak/file':>9} {'target':>10} "
             f"{'ok':>5} {'s':>6}"]
    cases = [("12 x (64 x 2^20), xmin_mid ops 4", {f"t{i}.weight": (64, 2 ** 20) for i in range(12)},
              dict(fit="xmin_mid", ops=4), "<= 0.3x"),
             ("one 8192 x 8192", {"w.weight": (8192, 8192)}, {}, "< 2 GiB")]
    for label, shapes, opts, target in cases:
        path = work / "mem.safetensors"
        size = write_safetensors(path, shapes, "float32", seed=0)
        base, peak, ok, n, secs = peak_of(path, opts)
        path.unlink()
        lines.append(f"{label:<34} {size / 2**30:8.2f} {peak / 2**30:8.2f} {base / 2**30:10.2f} {peak / size:9.3f} "
                     f"{target:>10} {ok:>2}/{n:<2} {secs:6.1f}")
    return lines


def tiny(work: Path, n: int = 20_000) -> list[str]:
    from safetensors.torch import save_file

    path = work / "tiny.safetensors"
    g = torch.Generator().manual_seed(0)
    save_file({f"experts.{i}.weight": torch.randn(4, 4, generator=g) for i in range(n)}, str(path))
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "farms_viz", "analyze", str(path), "--out", str(work / "tiny.csv"),
                    "--no-cache"], check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    secs = time.perf_counter() - t
    return [f"tiny: {n:,} tensors of 4 x 4 through the CLI (progress bar on): {secs:.1f} s end to end "
            f"(target < 20 s), {secs / n * 1e3:.2f} ms a layer"]


def minilm(ww_dir: str | None) -> list[str]:
    t = time.perf_counter()
    report = analyze("minilm", cache=False)
    ours = time.perf_counter() - t
    lines = [f"minilm cold, every metric (raw + FARMS + randomized): {ours:.1f} s, {len(report.table)} layers"]
    if not ww_dir:
        return lines + ["  (WeightWatcher not run: pass --ww WW_DIR)"]
    sys.path.insert(0, ww_dir)
    import contextlib
    import io
    import logging

    import weightwatcher
    from fidelity import as_module, load_weights

    model = as_module(load_weights("minilm"))
    t = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        weightwatcher.WeightWatcher(model=model, log_level=logging.ERROR).analyze(mp_fit=True, detX=True)
    ww = time.perf_counter() - t
    return lines + [f"  WeightWatcher 0.7.7 analyze(mp_fit=True, detX=True), raw only: {ww:.1f} s; "
                    f"WW / farms-viz = {ww / ours:.1f}x"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="speed,memory,tiny,minilm")
    ap.add_argument("--ww", help="a folder holding weightwatcher (pip --target)")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--cases", help="speed cases to run, by index into CASES (e.g. 0,1; the llm ones, "
                                    "2 and 3, take ~10 minutes each on 2 cores)")
    a = ap.parse_args(argv)
    parts = a.only.split(",")
    print(describe_machine(), flush=True)
    with tempfile.TemporaryDirectory(prefix="farms-onepass-") as tmp:
        work = Path(tmp)
        for name in parts:
            cases = [int(c) for c in a.cases.split(",")] if a.cases else None
            out = {"speed": lambda: speed(a.repeat, cases), "memory": lambda: memory(work), "tiny": lambda: tiny(work),
                   "minilm": lambda: minilm(a.ww)}[name]()
            print("\n".join(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
