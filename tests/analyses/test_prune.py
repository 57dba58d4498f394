"""Pruning: exact per-layer counts, Wanda against a direct computation, the input left alone, the CLI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from farms_viz import FarmsError, alphapruning
from farms_viz.analyses.prune import prune, pruned_count
from farms_viz.cli import main
from farms_viz.zoo import digits


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(13, 29)
        self.fc2 = nn.Linear(29, 7)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


class ConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3, padding=1, stride=2)
        self.fc = nn.Linear(3 * 3 * 3, 4)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).flatten(1))


def _mlp(seed: int = 0) -> MLP:
    torch.manual_seed(seed)
    return MLP()


def _table(model: nn.Module, seed: int = 1) -> pd.DataFrame:
    """An alpha table for the model's Linear/Conv layers (random alphas): what alphapruning reads."""
    rng = np.random.default_rng(seed)
    rows = [(n, m.weight.shape[0], int(np.prod(m.weight.shape[1:]))) for n, m in model.named_modules()
            if isinstance(m, (nn.Linear, nn.Conv2d))]
    return pd.DataFrame({"layer": [r[0] for r in rows], "rows": [r[1] for r in rows], "cols": [r[2] for r in rows],
                         "alpha_raw": rng.uniform(2, 6, len(rows)), "alpha_farms": rng.uniform(2, 6, len(rows))})


def test_pruned_count_rounds_half_up():
    assert [pruned_count(r, 10) for r in (0.0, 0.04, 0.05, 0.15, 0.25, 1.0)] == [0, 0, 1, 2, 3, 10]
    assert pruned_count(0.7, 377) == 264  # 263.9


@pytest.mark.parametrize("column", ["ratio_raw", "ratio_farms", "uniform"])
def test_magnitude_exact_per_layer_and_weighted_mean_equals_target(column):
    torch.manual_seed(3)
    model = ConvNet()
    alloc = alphapruning(_table(model), 0.63, 0.3)
    res = prune(model, alloc, column=column)
    target = dict(zip(alloc.table["layer"], alloc.table[column])) if column != "uniform" else \
        {n: 0.63 for n in alloc.table["layer"]}
    rep = res.report.set_index("layer")
    assert set(rep.index) == set(target)
    total = 0
    for name, m in res.model.named_modules():
        if name not in target:
            continue
        w, dense = m.weight.detach(), dict(model.named_modules())[name].weight.detach()
        k = int(np.floor(target[name] * w.numel() + 0.5))
        assert int((w == 0).sum()) == k == rep.loc[name, "zeros"]
        assert abs(rep.loc[name, "achieved"] - target[name]) <= 0.5 / w.numel()
        # the zeroed weights are the k smallest in magnitude; the others are untouched
        zeroed = w == 0
        assert dense[zeroed].abs().max() <= dense[~zeroed].abs().min()
        assert torch.equal(w[~zeroed], dense[~zeroed])
        total += w.numel()
    n = rep["numel"].to_numpy(float)
    assert (rep["target"] * n).sum() / n.sum() == pytest.approx(0.63, abs=1e-12)  # AlphaPruning's mean is S
    t, a = res.overall()
    assert t == pytest.approx(0.63, abs=1e-12) and abs(a - 0.63) <= 0.5 * len(rep) / total


def test_ties_are_broken_by_position():
    w = torch.ones(4, 5)
    res = prune({"layer.weight": w}, {"layer": 0.35})  # k = 7 of 20, all equal: the first 7 in row-major order
    out = res.weights["layer.weight"].reshape(-1)
    assert torch.equal(out == 0, torch.arange(20) < 7)


def _direct_wanda(w: np.ndarray, x: np.ndarray, ratio: float) -> np.ndarray:
    """Wanda by hand: norms from a plain matmul of the stacked inputs, per-row k smallest (numpy)."""
    norms = np.sqrt(np.diag(x.T @ x))
    score = np.abs(w) * norms[None, :]
    rows, cols = w.shape
    k = int(np.floor(ratio * w.size + 0.5))
    mask = np.zeros_like(w, dtype=bool)
    for i in range(rows):
        k_i = k // rows + (1 if i < k % rows else 0)
        mask[i, np.argsort(score[i], kind="stable")[:k_i]] = True
    return mask


def test_wanda_equals_a_direct_computation_on_an_mlp():
    model = _mlp(0)
    gen = torch.Generator().manual_seed(5)
    batches = [torch.randn(11, 13, generator=gen, dtype=torch.float64) for _ in range(3)]
    model = model.double()
    ratios = {"fc1": 0.6, "fc2": 0.37}
    res = prune(model, ratios, "wanda", calibration=batches)
    x1 = torch.cat(batches).numpy()
    w1, b1 = model.fc1.weight.detach().numpy(), model.fc1.bias.detach().numpy()
    x2 = np.maximum(x1 @ w1.T + b1, 0)  # fc2's input from the dense model
    for name, x in (("fc1", x1), ("fc2", x2)):
        w = getattr(model, name).weight.detach().numpy()
        expected = _direct_wanda(w, x, ratios[name])
        got = getattr(res.model, name).weight.detach().numpy() == 0
        assert (got == expected).all(), name
    # and Wanda is not magnitude here: the input norms change which weights go
    mag = prune(model, ratios, "magnitude")
    assert not torch.equal(mag.model.fc1.weight, res.model.fc1.weight)


def test_wanda_on_a_conv_uses_its_input_patches():
    torch.manual_seed(2)
    model = ConvNet().double()
    x = torch.randn(4, 2, 6, 6, dtype=torch.float64)
    res = prune(model, {"conv": 0.45}, "wanda", calibration=x)  # k = 73 of 3 x 54: one row takes one more
    # the patches by hand: zero padding 1, stride 2, 3x3 kernel -> 3x3 positions per image
    xp = np.pad(x.numpy(), ((0, 0), (0, 0), (1, 1), (1, 1)))
    patches = [xp[b, :, 2 * i:2 * i + 3, 2 * j:2 * j + 3].reshape(-1) for b in range(4) for i in range(3)
               for j in range(3)]
    w = model.conv.weight.detach().numpy().reshape(3, -1)
    expected = _direct_wanda(w, np.stack(patches), 0.45)
    assert ((res.model.conv.weight.detach().numpy().reshape(3, -1) == 0) == expected).all()


def test_the_pruned_copy_leaves_the_input_unchanged():
    model = _mlp(1)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    res = prune(model, {"fc1": 0.8, "fc2": 0.5}, "wanda", calibration=torch.randn(5, 13))
    assert res.model is not model and model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not model.fc1._forward_hooks and not res.model.fc1._forward_hooks
    assert int((res.model.fc1.weight == 0).sum()) == pruned_count(0.8, 29 * 13)
    tensors = {k: v.clone() for k, v in before.items()}
    kept = {k: v.clone() for k, v in tensors.items()}
    out = prune(tensors, {"fc1": 0.8})
    assert all(torch.equal(kept[k], v) for k, v in tensors.items())
    assert int((out.weights["fc1.weight"] == 0).sum()) == pruned_count(0.8, 29 * 13)


def test_module_and_tensor_paths_agree_for_magnitude():
    model = _mlp(2)
    a = prune(model, {"fc1": 0.45, "fc2": 0.2})
    b = prune(dict(model.state_dict()), {"fc1": 0.45, "fc2": 0.2})
    assert a.weights.keys() == b.weights.keys() == {"fc1.weight", "fc2.weight"}
    assert all(torch.equal(a.weights[k], b.weights[k]) for k in a.weights)
    assert a.report.equals(b.report)


def test_a_number_prunes_every_linear_layer_uniformly():
    res = prune(_mlp(0), 0.5)
    assert list(res.report["layer"]) == ["fc1", "fc2"]
    assert list(res.report["zeros"]) == [pruned_count(0.5, 29 * 13), pruned_count(0.5, 7 * 29)]


@pytest.mark.parametrize("call,words", [
    (lambda m: prune(m, {"fc9": 0.5}), "not in the model"),
    (lambda m: prune(m, {"fc1": 1.5}), "between 0 and 1"),
    (lambda m: prune(m, {"fc1": 0.5}, "wanda"), "calibration"),
    (lambda m: prune(m, {"fc1": 0.5}, "obs"), "unknown pruning method"),
    (lambda m: prune(dict(m.state_dict()), {"fc1": 0.5}, "wanda"), "nn.Module"),
    (lambda m: prune(m, pd.DataFrame({"layer": ["fc1"], "ratio_raw": [0.5]}), column="ratio_farms"), "no column"),
])
def test_bad_input_gets_one_sentence(call, words):
    with pytest.raises(FarmsError, match=words):
        call(_mlp(0))


# ------------------------------------------------------------------ CLI

def _zeros_per_layer(path) -> dict:
    return {k.removesuffix(".weight"): (int((v == 0).sum()), v.numel()) for k, v in load_file(str(path)).items()}


def test_cli_prune_writes_safetensors_whose_zeros_match(tmp_path, capsys):
    model = _mlp(4)
    weights = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
    alloc = alphapruning(_table(model), 0.7, 0.3)
    csv = tmp_path / "alloc.csv"
    alloc.table.to_csv(csv, index=False)
    out, report = tmp_path / "pruned.safetensors", tmp_path / "report.csv"
    assert main(["prune", str(weights), "--allocation", str(csv), "--column", "ratio_farms",
                 "--out", str(out), "--report", str(report)]) == 0
    got = _zeros_per_layer(out)
    expect = {n: pruned_count(r, got[n][1]) for n, r in zip(alloc.table["layer"], alloc.table["ratio_farms"])}
    assert {n: z for n, (z, _) in got.items()} == expect
    rep = pd.read_csv(report)
    assert dict(zip(rep["layer"], rep["zeros"])) == expect
    assert "weighted mean sparsity target 0.7000" in capsys.readouterr().out
    # the input file is unchanged and --out may not overwrite it
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in load_file(str(weights)).items())
    assert main(["prune", str(weights), "--sparsity", "0.5", "--out", str(weights)]) == 2
    assert main(["prune", str(weights), "--sparsity", "0.5", "--out", str(tmp_path / "p.csv")]) == 2
    assert "must end in .safetensors" in capsys.readouterr().err


def test_cli_allocate_then_wanda_prune_and_evaluate_a_digits_model(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FARMS_VIZ_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        alloc, out = tmp_path / "alloc.json", tmp_path / "pruned.safetensors"
        assert main(["allocate", "digits-mlp@30", "--scheme", "alphapruning", "--sparsity", "0.6",
                     "--out", str(alloc)]) == 0
        capsys.readouterr()
        assert main(["prune", "digits-mlp@30", "--allocation", str(alloc), "--column", "ratio_raw",
                     "--method", "wanda", "--calibration", "64", "--evaluate", "--out", str(out)]) == 0
        text = capsys.readouterr().out
        pruned = load_file(str(out))
        acc = digits.evaluate(digits.load("mlp", 30, pruned))
        dense = digits.evaluate(digits.load("mlp", 30))
    finally:
        torch.set_num_threads(threads)
    ratios = pd.read_json(alloc, typ="series")["raw"]
    got = _zeros_per_layer(out)
    assert {n: z for n, (z, _) in got.items()} == {n: pruned_count(r, got[n][1]) for n, r in ratios.items()}
    assert f"test accuracy: dense {dense:.4f}  pruned {acc:.4f}" in text
    assert 0.9 < dense and acc <= dense + 0.05


def test_cli_wanda_needs_a_model_it_can_run(tmp_path, capsys):
    weights = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in _mlp(0).state_dict().items()}, str(weights))
    assert main(["prune", str(weights), "--sparsity", "0.5", "--method", "wanda",
                 "--out", str(tmp_path / "p.safetensors")]) == 2
    assert "Wanda runs the model" in capsys.readouterr().err
    assert main(["prune", str(weights), "--sparsity", "0.5", "--evaluate", "--out", str(tmp_path / "p.safetensors")]) == 2
    assert "no built-in evaluation" in capsys.readouterr().err
