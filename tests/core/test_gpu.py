"""On a CUDA GPU the numbers equal the CPU's (skipped where there is none: never needed by CI).

Run there with ``python -m pytest tests/test_gpu.py`` (benchmarks/gpu.sh does).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from farms_viz import analyze
from farms_viz.core import spectra
from farms_viz.errors import FarmsError

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")


def test_asking_for_cuda_without_one_is_one_sentence():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(FarmsError, match="no CUDA GPU"):
        spectra.farms_esd(torch.randn(1, 50, 40), 20, 1.0, 3, device="cuda")


@cuda
@pytest.mark.parametrize("n", [16, 100, 600])  # cuSOLVER's batched Jacobi, the host route, the GPU's syevd
def test_eigvalsh_batched_on_the_gpu_equals_the_cpu(n):
    x = torch.randn(6, n, n, dtype=torch.float64, generator=torch.Generator().manual_seed(n))
    g = x.mT @ x
    on_gpu = spectra.eigvalsh_batched(g.cuda())
    assert on_gpu.device.type == "cuda"
    np.testing.assert_allclose(on_gpu.cpu().numpy(), torch.linalg.eigvalsh(g).numpy(), rtol=1e-9, atol=1e-9 * n)


@cuda
@pytest.mark.parametrize("shape,window", [((300, 300), 100), ((900, 300), 100), ((700, 2600), 2000), ((64, 900), 2000)])
def test_farms_esd_on_the_gpu_equals_the_cpu(shape, window):
    w = torch.randn(1, *shape, generator=torch.Generator().manual_seed(1)) / shape[1] ** 0.5
    cpu, grid = spectra.farms_esd(w, window, 1.0, 15)
    gpu, _ = spectra.farms_esd(w, window, 1.0, 15, device="cuda")
    assert cpu.shape == gpu.shape == (grid.n_windows * min(grid.h, grid.w),)
    np.testing.assert_allclose(gpu, cpu, rtol=1e-4, atol=1e-6 * cpu.max())


@cuda
def test_a_model_gets_the_same_alphas_on_the_gpu():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 48, 3), nn.Conv2d(48, 48, 3, groups=48), nn.Flatten(),
                          nn.Linear(640, 256), nn.Linear(256, 640), nn.Linear(640, 10))
    for preset in ("llm", "cnn"):  # xmin_mid: on random weights xmin_peak's histogram peak may flip a bin
        a = analyze(model, preset=preset, fit="xmin_mid", cache=False).table
        b = analyze(model, preset=preset, fit="xmin_mid", cache=False, device="cuda").table
        for col in ("alpha_raw", "alpha_farms"):
            np.testing.assert_allclose(b[col].to_numpy(float), a[col].to_numpy(float), rtol=1e-3, err_msg=f"{preset} {col}")


@cuda
def test_metric_and_randomized_columns_on_the_gpu_equal_the_cpu():
    """The one spectral pass runs on the device too: the shuffle is on the host (seeded), its
    eigenvalues and every metric's on the GPU."""
    from farms_viz.pipeline.metrics import METRICS

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(300, 900), nn.Linear(900, 300), nn.Conv2d(32, 64, 3))
    a = analyze(model, cache=False).table
    b = analyze(model, cache=False, device="cuda").table
    for m in METRICS:
        for side in ("raw", "farms"):
            col = f"{m}_{side}"
            np.testing.assert_allclose(b[col].to_numpy(float), a[col].to_numpy(float), rtol=1e-3, atol=1e-9,
                                       err_msg=col)
