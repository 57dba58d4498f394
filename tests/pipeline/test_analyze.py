"""analyze(): the table, statuses for odd layers, progress, and the CLI end to end."""

import json
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import save_file

from farms_viz import FarmsError, Settings, analyze
from farms_viz.core.fits import fit_power_law
from farms_viz.core.spectra import farms_esd

REQUIRED = ["layer", "kind", "rows", "cols", "aspect_ratio", "n_windows", "n_eigs_raw", "n_eigs_farms",
            "alpha_raw", "alpha_farms", "xmin_raw", "xmin_farms", "D_raw", "D_farms", "spectral_norm",
            "stable_rank", "alpha_hat_raw", "alpha_hat_farms", "status"]


def small_model():
    g = torch.Generator().manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3), torch.nn.ReLU(), torch.nn.Flatten(),
        torch.nn.Linear(300, 120), torch.nn.Linear(120, 40),
    ).requires_grad_(False).apply(lambda m: [p.copy_(torch.randn(p.shape, generator=g)) for p in m.parameters(recurse=False)])


def test_table_has_the_documented_columns_and_model_order():
    r = analyze(small_model(), window=64, ops=4)
    assert all(c in r.table.columns for c in REQUIRED)
    assert list(r.table["layer"]) == ["0", "3", "4"]
    assert list(r.table["kind"]) == ["conv2d", "linear", "linear"]
    assert (r.table["status"] == "ok").all()
    lin = r.table.set_index("layer").loc["3"]
    assert (lin.rows, lin.cols, lin.aspect_ratio) == (120, 300, 2.5)


def test_row_numbers_follow_the_stated_procedure():
    W = torch.randn(700, 200, generator=torch.Generator().manual_seed(3))
    r = analyze({"w.weight": W}, fit="xmin_mid", window=100, q=1.0, ops=5)
    row = r.table.iloc[0]
    e = np.sort(np.linalg.svd(W.double().numpy(), compute_uv=False) ** 2)
    ref = fit_power_law(e, "xmin_mid")
    assert row.alpha_raw == pytest.approx(ref.alpha, rel=1e-5)
    assert row.spectral_norm == pytest.approx(e[-1], rel=1e-5)
    assert row.frobenius_norm2 == pytest.approx(e.sum(), rel=1e-5)
    assert row.stable_rank == pytest.approx(e.sum() / e[-1], rel=1e-5)
    assert row.alpha_hat_raw == pytest.approx(ref.alpha * np.log10(e[-1]), rel=1e-5)
    pooled, grid = farms_esd(W[None], 100, 1.0, 5)
    assert row.n_windows == grid.n_windows == 25 and row.n_eigs_farms == 2500
    assert row.alpha_farms == pytest.approx(fit_power_law(pooled, "xmin_mid").alpha, rel=1e-9)


def test_settings_presets_and_overrides():
    assert Settings.preset("cnn") == Settings(fit="xmin_mid", xmin_pos=2, window=100, q=1.0, ops=9)
    assert Settings.preset("cnn", window=50).window == 50
    assert Settings() == Settings.preset("llm")
    with pytest.raises(FarmsError, match="fit rule"):
        Settings(fit="median")
    with pytest.raises(FarmsError, match="ops"):
        Settings(ops=0)
    r = analyze({"w.weight": torch.randn(64, 32)}, preset="cnn", ops=3)
    assert (r.settings.fit, r.settings.window, r.settings.ops) == ("xmin_mid", 100, 3)


def test_odd_layers_get_a_status_and_no_made_up_alpha():
    g = torch.Generator().manual_seed(5)
    good = torch.randn(128, 64, generator=g)
    nan = good.clone()
    nan[3, 4] = float("nan")
    inf = good.clone()
    inf[0, 0] = float("inf")
    tensors = {
        "good.weight": good,
        "nan.weight": nan,
        "inf.weight": inf,
        "zero.weight": torch.zeros(64, 64),
        "one.weight": torch.ones(1, 1),
        "wide.weight": torch.randn(2, 50000, generator=g),
        "rank1.weight": torch.randn(100, 1, generator=g) @ torch.randn(1, 80, generator=g),
        "int.weight": torch.randint(-8, 8, (64, 64), dtype=torch.int8),
        "half.weight": good.half(),
        "bf16.weight": good.bfloat16(),
    }
    t = analyze(tensors, window=32, ops=3).table.set_index("layer")
    assert t.loc["good", "status"] == "ok" and np.isfinite(t.loc["good", "alpha_farms"])
    for name, words in [("nan", "NaN"), ("inf", "NaN or Inf"), ("zero", "zero"), ("one", "too few"),
                        ("wide", "too few"), ("rank1", "too few"), ("int", "int8")]:
        assert words in t.loc[name, "status"], name
        assert math.isnan(t.loc[name, "alpha_raw"]), name
    for name in ("half", "bf16"):
        assert t.loc[name, "status"] == "ok"
        assert t.loc[name, "alpha_raw"] == pytest.approx(t.loc["good", "alpha_raw"], rel=2e-2)


def test_progress_reports_each_layer_then_done():
    calls = []
    analyze(small_model(), window=64, ops=2, progress=lambda d, n, name: calls.append((d, n, name)))
    assert calls == [(0, 3, "0"), (1, 3, "3"), (2, 3, "4"), (3, 3, "")]


def test_layer_filter_and_embeddings():
    tensors = {"embeddings.word_embeddings.weight": torch.randn(500, 32), "enc.q.weight": torch.randn(32, 32),
               "enc.ffn.weight": torch.randn(128, 32)}
    assert list(analyze(tensors).table.layer) == ["enc.q", "enc.ffn"]
    assert len(analyze(tensors, include_embeddings=True).table) == 3
    assert list(analyze(tensors, layers="ffn").table.layer) == ["enc.ffn"]
    with pytest.raises(FarmsError, match="regular expression"):
        analyze(tensors, layers="(")
    with pytest.raises(FarmsError, match="no weight matrices"):
        analyze(tensors, layers="nothing-matches")


def test_cli_end_to_end_on_a_safetensors_file(tmp_path):
    g = torch.Generator().manual_seed(9)
    tensors = {"a.weight": torch.randn(256, 64, generator=g), "a.bias": torch.randn(256, generator=g),
               "b.weight": torch.randn(64, 64, generator=g), "c.weight": torch.randn(16, 8, 3, 3, generator=g)}
    path = tmp_path / "m.safetensors"
    save_file(tensors, str(path))
    out = tmp_path / "t.csv"
    p = subprocess.run([sys.executable, "-m", "farms_viz", "analyze", str(path), "--out", str(out),
                        "--window", "32", "--ops", "4", "--fit", "xmin_mid"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "3 layers, 3 analysed" in p.stdout
    assert "3/3" in p.stderr  # the progress bar
    table = pd.read_csv(out)
    assert all(c in table.columns for c in REQUIRED)
    direct = analyze(tensors, window=32, ops=4, fit="xmin_mid").table.set_index("layer")
    for _, row in table.iterrows():
        assert row.alpha_farms == pytest.approx(direct.loc[row.layer, "alpha_farms"], rel=1e-12)
    js = tmp_path / "t.json"
    assert subprocess.run([sys.executable, "-m", "farms_viz", "analyze", str(path), "--out", str(js), "--quiet"]).returncode == 0
    assert len(json.loads(js.read_text())) == 3


def test_cli_bad_input_is_one_sentence_and_nonzero(tmp_path):
    p = subprocess.run([sys.executable, "-m", "farms_viz", "analyze", str(tmp_path / "missing.safetensors"),
                        "--out", str(tmp_path / "x.csv")], capture_output=True, text=True)
    assert p.returncode != 0
    assert "Traceback" not in p.stderr
    assert "missing.safetensors" in p.stderr and p.stderr.count("\n") == 1


def test_layers_in_parallel_give_the_one_at_a_time_table(monkeypatch):
    """On the CPU several layers run at once (one thread each): same rows, same order, as one at a time."""
    import farms_viz.pipeline.analyze as report

    torch.manual_seed(3)
    tensors = {f"block{i}.{n}.weight": torch.randn(r, c) / c**0.5
               for i in range(3) for n, (r, c) in {"q": (128, 128), "up": (300, 128), "down": (128, 300)}.items()}
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        made = []
        real_pool = report.ThreadPoolExecutor
        monkeypatch.setattr(report, "ThreadPoolExecutor", lambda *a, **k: made.append(a) or real_pool(*a, **k))
        parallel = analyze(tensors, window=64, ops=3, cache=False).table
        assert made and made[0][0] == 2  # the parallel route ran, two layers at a time
        monkeypatch.setattr(report, "PARALLEL_MAX_ENTRIES", 128 * 128)  # up/down are bigger: one at a time
        analyze(tensors, window=64, ops=3, cache=False)
        assert len(made) == 1
        monkeypatch.setattr(report, "MAX_LAYER_WORKERS", 1)
        one_at_a_time = analyze(tensors, window=64, ops=3, cache=False).table
    finally:
        torch.set_num_threads(threads)
    assert torch.get_num_threads() == threads
    assert list(parallel.layer) == [k.removesuffix(".weight") for k in tensors]
    # float32 Gram products are summed in an order that depends on the thread count (MKL splits
    # the reduction): one thread per layer vs two differ by float32 round-off, ~1e-6 in alpha; the
    # shuffled matrices are solved in float32 (spectra.BULK_ONLY_DTYPE), which moves a rand_distance
    # of 0.0057 by 9e-8
    pd.testing.assert_frame_equal(parallel.drop(columns="seconds"), one_at_a_time.drop(columns="seconds"),
                                  check_exact=False, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("theta,lo,hi", [(0.0, 0.0, 0.2), (3.0, 2.8, 3.3), (8.0, 2.8, 3.3)])
def test_n_spikes_farms_counts_spikes_per_window(theta, lo, hi):
    """A rank-3 signal seen by every window gives ~3 spikes per window; pure noise ~0
    (measured 0.04, 3.08, 3.04 over 25 windows of 200 x 200; the pooled count was 77)."""
    g = torch.Generator().manual_seed(0)
    N, M = 1200, 400
    U = torch.linalg.qr(torch.randn(N, 3, generator=g))[0]
    V = torch.linalg.qr(torch.randn(M, 3, generator=g))[0]
    W = torch.randn(N, M, generator=g) / N ** 0.5 + theta * U @ torch.diag(torch.tensor([1.0, 1.2, 1.4])) @ V.T
    t = analyze({"w.weight": W}, window=200, ops=5, cache=False).table.iloc[0]
    assert t["n_windows"] == 25
    assert lo <= t["n_spikes_farms"] <= hi
    assert t["n_spikes_raw"] == (3 if theta else 0)
