"""Peak memory of analysing a ~3 GB checkpoint, single file and sharded HF folder (target < 0.5 of file size).

Writes a synthetic LLaMA-like checkpoint (q/k/v/o 4096x4096, gate/up 11008x4096, down 4096x11008)
tensor by tensor into a temp dir (never holding it in memory), as one ``.safetensors`` file and
as a sharded Hugging Face folder with ``model.safetensors.index.json``; analyses each in a fresh
subprocess with cheap FARMS settings and prints peak RSS / file size. Deletes the files after.

    python benchmarks/bench_streaming.py [--blocks 4] [--dtype float32] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHAPES = {"self_attn.q_proj": (4096, 4096), "self_attn.k_proj": (4096, 4096), "self_attn.v_proj": (4096, 4096),
          "self_attn.o_proj": (4096, 4096), "mlp.gate_proj": (11008, 4096), "mlp.up_proj": (11008, 4096),
          "mlp.down_proj": (4096, 11008)}
ST_DTYPE = {"float32": "F32", "float16": "F16"}

CHILD = """
import resource, sys, time
from farms_viz import analyze
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
t0 = time.perf_counter()
report = analyze(sys.argv[1], window=256, ops=3)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
ok = int((report.table["status"] == "ok").sum())
print(base, peak, len(report.table), ok, time.perf_counter() - t0)
"""


def write_safetensors(path: Path, tensors: dict[str, tuple[int, int]], dtype: str, seed: int) -> int:
    """Write random tensors one at a time (memory: one tensor). Returns the file size."""
    header, offset = {}, 0
    item = np.dtype(dtype).itemsize
    for name, shape in tensors.items():
        n = shape[0] * shape[1] * item
        header[name] = {"dtype": ST_DTYPE[dtype], "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    rng = np.random.default_rng(seed)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        for name, shape in tensors.items():
            w = rng.standard_normal(shape, dtype=np.float32) * (1 / np.sqrt(shape[1]))
            f.write(w.astype(dtype).tobytes())
            del w
    return path.stat().st_size


def checkpoint(blocks: int) -> dict[str, tuple[int, int]]:
    return {f"model.layers.{b}.{k}.weight": s for b in range(blocks) for k, s in SHAPES.items()}


def measure(target: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-c", CHILD, str(target)], capture_output=True, text=True, env=env, cwd=ROOT)
    if r.returncode != 0:
        raise SystemExit(f"analysis of {target} failed:\n{r.stderr[-2000:]}")
    base, peak, n, ok, secs = r.stdout.split()
    return dict(base=int(base), peak=int(peak), layers=int(n), ok=int(ok), seconds=float(secs))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--blocks", type=int, default=4, help="decoder blocks (4 x fp32 = 3.2 GB)")
    ap.add_argument("--dtype", choices=list(ST_DTYPE), default="float32")
    ap.add_argument("--dir", help="where to write (default: a temp dir, deleted after)")
    args = ap.parse_args(argv)
    work = Path(args.dir or tempfile.mkdtemp(prefix="farms-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        tensors = checkpoint(args.blocks)
        t0 = time.perf_counter()
        single = work / "model.safetensors"
        size = write_safetensors(single, tensors, args.dtype, seed=0)
        folder = work / "hf"
        folder.mkdir(exist_ok=True)
        (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))
        weight_map, shard_size = {}, 0
        for b in range(args.blocks):
            name = f"model-{b + 1:05d}-of-{args.blocks:05d}.safetensors"
            part = {k: v for k, v in tensors.items() if k.startswith(f"model.layers.{b}.")}
            shard_size += write_safetensors(folder / name, part, args.dtype, seed=b + 1)
            weight_map.update({k: name for k in part})
        (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
        print(f"wrote {len(tensors)} {args.dtype} matrices: {size / 1e9:.2f} GB file and {shard_size / 1e9:.2f} GB "
              f"in {args.blocks} shards ({time.perf_counter() - t0:.0f} s)")
        print("case                 file GB  peak RSS GB  growth GB  peak/file  growth/file  layers ok  seconds")
        for label, target, fsize in (("single safetensors", single, size), ("sharded HF folder", folder, shard_size)):
            m = measure(target)
            print(f"{label:<20} {fsize / 1e9:7.2f}  {m['peak'] / 1e9:11.2f}  {(m['peak'] - m['base']) / 1e9:9.2f}  "
                  f"{m['peak'] / fsize:9.3f}  {(m['peak'] - m['base']) / fsize:11.3f}  {m['ok']:>3}/{m['layers']:<3} "
                  f"{m['seconds']:7.0f}")
        print("target: peak/file < 0.5")
    finally:
        if not args.dir:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
