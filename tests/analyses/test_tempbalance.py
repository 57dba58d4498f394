"""TempBalance in training: after every re-analysis each layer's lr is the map of a fresh analysis."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from farms_viz import FarmsError, TempBalance, analyze
from farms_viz.analyses import tempbalance as tb


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(64, 192)
        self.fc2 = nn.Linear(192, 96)
        self.norm = nn.LayerNorm(96)
        self.fc3 = nn.Linear(96, 10)

    def forward(self, x):
        return self.fc3(self.norm(torch.relu(self.fc2(torch.relu(self.fc1(x))))))


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _setup(seed=0):
    torch.manual_seed(seed)
    net = Net()
    decay = [p for n, p in net.named_parameters() if n.endswith("weight") and not n.startswith("norm")]
    rest = [p for n, p in net.named_parameters() if not (n.endswith("weight") and not n.startswith("norm"))]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": 1e-3}, {"params": rest, "weight_decay": 0.0}],
                          lr=0.1, momentum=0.9)
    x, y = torch.randn(256, 64), torch.randint(0, 10, (256,))
    return net, opt, x, y


def _expected(net, settings, which, lr, scheme):
    """The maps by hand (np.interp / sqrt weights) on a fresh analysis of the net as it is now."""
    t = analyze(net, settings=settings, cache=False).table
    a = t[f"alpha_{which}"].to_numpy(float)
    assert np.isfinite(a).all()
    if scheme == "tb_linear_map":
        lrs = np.interp(a, [a.min(), a.max()], [0.5 * lr, 1.5 * lr])
    else:  # tb_sqrt
        lrs = len(a) * lr * np.sqrt(a) / np.sqrt(a).sum()
    return dict(zip(t["layer"], lrs))


@pytest.mark.parametrize("which,scheme,every", [("farms", "tb_linear_map", 2), ("raw", "tb_sqrt", 3)])
def test_lrs_equal_the_map_of_a_fresh_analysis_after_each_reanalysis(which, scheme, every):
    net, opt, x, y = _setup()
    bal = TempBalance(opt, net, alphas=which, scheme=scheme, every=every, window=48, ops=3)
    settings = bal.settings
    before = bal.lrs()
    assert before == pytest.approx(_expected(net, settings, which, 0.1, scheme), rel=1e-12)
    seen = 0
    for step in range(1, 7):
        opt.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
        did = bal.step()
        assert did == (step % every == 0)
        if did:
            seen += 1
            assert bal.lrs() == pytest.approx(_expected(net, settings, which, 0.1, scheme), rel=1e-12)
            before = bal.lrs()
        else:
            assert bal.lrs() == before  # unchanged between re-analyses
    assert seen == 6 // every and len(bal.history) == 1 + seen
    assert list(bal.history[-1].columns) == ["step", "layer", "alpha", "lr"]


def test_groups_are_split_by_layer_keeping_each_groups_settings():
    net, opt, _, _ = _setup()
    TempBalance(opt, net, every=1, window=48, ops=3)
    names = {id(p): n for n, p in net.named_parameters()}
    params = [names[id(p)] for g in opt.param_groups for p in g["params"]]
    assert sorted(params) == sorted(names.values())  # each parameter exactly once
    for g in opt.param_groups:
        ps = [names[id(p)] for p in g["params"]]
        assert g["momentum"] == 0.9
        assert g["weight_decay"] == (1e-3 if all(n.endswith("weight") and not n.startswith("norm") for n in ps)
                                     else 0.0)
        if g["layer"] is None:  # the LayerNorm and nothing of the analysed layers: base lr
            assert {n.split(".")[0] for n in ps} == {"norm"} and g["lr"] == 0.1
        else:
            assert {n.split(".")[0] for n in ps} == {g["layer"]}


def test_base_lr_is_read_at_each_reanalysis():
    net, opt, _, _ = _setup()
    bal = TempBalance(opt, net, lr=0.2, scheme="linear", window=48, ops=3)
    assert max(bal.lrs().values()) == pytest.approx(0.3) and min(bal.lrs().values()) == pytest.approx(0.1)
    bal.base_lr = 0.02
    bal.step()
    assert max(bal.lrs().values()) == pytest.approx(0.03) and min(bal.lrs().values()) == pytest.approx(0.01)


@pytest.mark.parametrize("kwargs,words", [
    (dict(alphas="both"), "alphas must be one of"),
    (dict(every=0), "every must be"),
    (dict(scheme="tb_sigmoid"), "unknown TempBalance scheme"),
])
def test_bad_input_gets_one_sentence(kwargs, words):
    net, opt, _, _ = _setup()
    with pytest.raises(FarmsError, match=words):
        TempBalance(opt, net, **kwargs)


def test_an_optimizer_of_another_model_is_refused():
    net, _, _, _ = _setup()
    other = Net()
    with pytest.raises(FarmsError, match="not the model's"):
        TempBalance(torch.optim.SGD(other.parameters(), lr=0.1), net, window=48, ops=3)


def test_digits_curves_uniform_arm_is_the_zoo_training(tmp_path, monkeypatch):
    """The uniform arm runs the zoo's own loop: its epoch-3 accuracy is the zoo checkpoint's."""
    monkeypatch.setenv("FARMS_VIZ_CACHE", str(tmp_path))
    c = tb.digits_curves("cnn", seeds=(0,), epochs=3, arms=("uniform", "farms"))
    assert len(c) == 2 * 4
    uni = c[c["arm"] == "uniform"].set_index("epoch")["accuracy"]
    from farms_viz.zoo import digits

    assert uni[3] == pytest.approx(digits.evaluate(digits.load("cnn", 3)), abs=1e-9)
    s = tb.summarize_curves(c)
    assert set(s["arm"]) == {"uniform", "farms"} and (s["n"] == 1).all()
