#!/usr/bin/env bash
# The benchmarks once on a CUDA machine (never needed by tests or CI).
#
#   bash benchmarks/gpu.sh [OUT_DIR]
#
# Needs a python3 with torch (CUDA), numpy, pandas, safetensors. MINILM and MOBILENET name the
# models (zoo names by default; on a machine without the zoo packages, a folder or file each).
# Every step has its own time limit and writes its output to OUT_DIR as it goes.
set -u
out=${1:-bench-gpu}
mkdir -p "$out"
py=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 FARMS_VIZ_CACHE=${FARMS_VIZ_CACHE:-$(mktemp -d)}
minilm=${MINILM:-minilm}
mobilenet=${MOBILENET:-mobilenet-v2}
cd "$(dirname "$0")/.."

"$py" -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))" | tee "$out/device.txt"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >> "$out/device.txt" 2>/dev/null

# 0. the GPU tests (skipped on machines without one)
timeout 120 "$py" -m pytest -q -p no:cacheprovider tests/test_gpu.py 2>&1 | tee "$out/tests.txt"

# 1. the same alphas on the GPU as on the CPU (MiniLM with the paper's settings, MobileNet cnn)
timeout 120 "$py" - "$minilm" "$mobilenet" <<'PY' 2>&1 | tee "$out/agree.txt"
import sys, numpy as np
from farms_viz import analyze
for name, preset in zip(sys.argv[1:], ("llm", "cnn")):
    a = analyze(name, preset=preset, cache=False).table
    b = analyze(name, preset=preset, cache=False, device="cuda").table
    for col in ("alpha_raw", "alpha_farms"):
        rel = np.nanmax(np.abs(a[col].values - b[col].values) / np.abs(a[col].values))
        print(f"{name} {col}: {len(a)} layers, max relative difference cpu vs cuda {rel:.2e}")
PY

# 2a. eigenvalue solves: the GPU or the host's threads, by size (sets spectra.HOST_EIGH_MAX_N)
timeout 120 "$py" benchmarks/bench_eigh.py --device cuda 2>&1 | tee "$out/eigh.txt"

# 2b. per layer: the release's svdvals loop on the GPU vs farms-viz on the GPU
timeout 300 "$py" benchmarks/bench_layers.py --device cuda 2>&1 | tee "$out/layers.txt"

# 3. whole models on the GPU, then on this machine's CPU (same run, same machine)
for dev in cuda cpu; do
  timeout 90 "$py" benchmarks/bench_models.py --device $dev --models "$minilm" --preset llm 2>&1 | tee "$out/models-minilm-$dev.txt"
  timeout 90 "$py" benchmarks/bench_models.py --device $dev --models "$mobilenet" --preset cnn 2>&1 | tee "$out/models-mobilenet-$dev.txt"
done
