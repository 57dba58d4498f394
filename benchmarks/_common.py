"""Shared helpers for the benchmark scripts: timing, machine description, matmul reference."""

from __future__ import annotations

import os
import platform
import time

import torch


def describe_machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), cpu)
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{cpu}; {os.cpu_count()} cores, torch {torch.__version__} with {torch.get_num_threads()} threads; "
            f"{gpu}; load average {os.getloadavg()[0]:.2f}")


def best_of(fn, repeat: int = 3) -> float:
    """Best wall time of ``repeat`` calls (seconds)."""
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def matmul_gflops(n: int = 2000, device: str = "cpu") -> float:
    """float32 matrix-multiply throughput measured now, the reference for 'fraction of peak'."""
    if device != "cpu":
        n = max(n, 8192)  # a GPU needs a large product to reach its float32 rate
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    a @ b
    if device == "cuda":
        torch.cuda.synchronize()
    t = best_of(lambda: (a @ b, torch.cuda.synchronize() if device == "cuda" else None))
    return 2 * n**3 / t / 1e9
