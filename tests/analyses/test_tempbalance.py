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


# ------------------------------------------------------------------ the releases' rules

class ConvBN(nn.Module):
    """conv -> BN -> conv -> BN -> linear: the shape whose BNs the releases tie to their convs."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 24, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(24)
        self.conv2 = nn.Conv2d(24, 48, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(48)
        self.fc = nn.Linear(48, 10)

    def forward(self, x):
        x = torch.relu(self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))))
        return self.fc(x.mean((2, 3)))


def test_eigs_thresh_leaves_small_layers_at_the_base_lr_and_out_of_the_map():
    net, opt, _, _ = _setup()
    bal = TempBalance(opt, net, scheme="linear", eigs_thresh=20, window=48, ops=3)
    t = analyze(net, settings=bal.settings, cache=False).table.set_index("layer")
    assert t["n_eigs_raw"].to_dict() == {"fc1": 64, "fc2": 96, "fc3": 10}
    lrs = bal.lrs()
    assert lrs["fc3"] == 0.1
    a = t.loc[["fc1", "fc2"], "alpha_farms"].to_numpy(float)
    assert [lrs["fc1"], lrs["fc2"]] == pytest.approx(np.interp(a, [a.min(), a.max()], [0.05, 0.15]), rel=1e-12)
    # without the threshold fc3 is one of the mapped layers, off the base lr
    net0, opt0, _, _ = _setup()
    assert TempBalance(opt0, net0, scheme="linear", window=48, ops=3).lrs()["fc3"] != pytest.approx(0.1)
    # FARMS' order: the small layer leaves first, so keep_last keeps fc2 and fc1 alone maps to the middle
    net1, opt1, _, _ = _setup()
    kept = TempBalance(opt1, net1, scheme="linear", eigs_thresh=20, keep_last=True, window=48, ops=3).lrs()
    assert kept == pytest.approx({"fc1": 0.1, "fc2": 0.1, "fc3": 0.1}, rel=1e-12)


def test_tie_norms_gives_a_batchnorm_the_lr_of_its_conv():
    torch.manual_seed(0)
    net = ConvBN()
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    bal = TempBalance(opt, net, scheme="linear", tie_norms=True, preset="cnn")
    assert bal.ties == {"bn1": "conv1", "bn2": "conv2"}

    def lr_of(module):
        lrs = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
        return {lrs[id(p)] for p in module.parameters()}

    for base in (0.1, 0.02):  # at construction, then after a re-analysis at a new base lr
        lrs = bal.lrs()
        assert lrs["conv1"] != pytest.approx(base) and lrs["conv2"] != pytest.approx(base)  # a BN at base would fail
        assert lr_of(net.bn1) == {lrs["conv1"]} and lr_of(net.bn2) == {lrs["conv2"]}
        bal.step(0.02)
    torch.manual_seed(0)
    untied = ConvBN()
    opt2 = torch.optim.SGD(untied.parameters(), lr=0.1, momentum=0.9)
    TempBalance(opt2, untied, scheme="linear", preset="cnn")
    assert {g["lr"] for g in opt2.param_groups if g["layer"] is None} == {0.1}


def test_the_tie_rule_takes_the_weight_layer_right_before_with_no_norm_between():
    from farms_viz.analyses.tempbalance_optimizer import tied_norms

    net = nn.Sequential(nn.Linear(8, 8), nn.LayerNorm(8), nn.LayerNorm(8), nn.Linear(8, 4), nn.BatchNorm1d(4),
                        nn.Linear(4, 4), nn.BatchNorm1d(4, affine=False), nn.Linear(4, 2), nn.GroupNorm(1, 2))
    assert tied_norms(net, ["0", "3.weight", "5", "7"]) == {"1": "0", "4": "3", "8": "7"}
    assert tied_norms(net, ["0", "5"]) == {"1": "0"}  # a norm after a layer outside the map stays untied
    assert tied_norms(Net(), ["fc1", "fc2", "fc3"]) == {"norm": "fc2"}


def test_cosine_lr_closed_form():
    assert tb.cosine_lr(0.1, 0, 10) == 0.1
    assert tb.cosine_lr(0.1, 5, 10) == pytest.approx(0.05, abs=1e-15)
    assert tb.cosine_lr(0.1, 2.5, 10) == pytest.approx(0.1 * (1 + np.sqrt(0.5)) / 2, abs=1e-15)
    assert tb.cosine_lr(0.1, 10, 10) == pytest.approx(0.0, abs=1e-15)
    assert tb.cosine_lr(0.1, 13, 10) == pytest.approx(0.0, abs=1e-15)  # held at 0 after the end
    with pytest.raises(FarmsError, match="epochs must be"):
        tb.cosine_lr(0.1, 1, 0)


def test_step_lr_rescales_between_reanalyses_and_schedule_rest_moves_the_rest():
    net, opt, _, _ = _setup()
    bal = TempBalance(opt, net, scheme="linear", every=2, schedule_rest=True, window=48, ops=3)
    before = bal.lrs()
    assert bal.step(0.05) is False  # no re-analysis: the same map at half the base
    assert bal.lrs() == pytest.approx({k: v / 2 for k, v in before.items()}, rel=1e-12)
    assert {g["lr"] for g in opt.param_groups if g["layer"] is None} == {0.05}
    assert bal.step(0.0) is True and set(bal.lrs().values()) == {0.0}  # a cosine's end
    net2, opt2, _, _ = _setup()
    TempBalance(opt2, net2, every=2, window=48, ops=3).step(0.05)
    assert {g["lr"] for g in opt2.param_groups if g["layer"] is None} == {0.1}  # default: the rest keeps its lr


@pytest.mark.parametrize("scores,chosen", [((0.3, 0.8), (0.1, 1.9)), ((0.8, 0.3), (0.5, 1.5)),
                                           ((0.5, 0.5), (0.5, 1.5))])
def test_release_protocol_chooses_the_lr_range_on_tuning_data_only(monkeypatch, scores, chosen):
    from farms_viz.zoo import digits

    events, fit_sizes, scripted = [], [], iter(scores)
    real_evaluate, real_train = digits.evaluate, digits.train_epoch

    def tune(model):
        events.append("tune")
        return next(scripted)

    def evaluate(model):
        events.append("test")
        return real_evaluate(model)

    def train(model, opt, gen, x, y):
        fit_sizes.append(len(y))
        return real_train(model, opt, gen, x, y)

    monkeypatch.setattr(digits, "tune_accuracy", tune)
    monkeypatch.setattr(digits, "evaluate", evaluate)
    monkeypatch.setattr(digits, "train_epoch", train)
    curves = tb.digits_curves("cnn", seeds=(0,), epochs=1, arms=("farms",), protocol="release",
                              grid=((0.5, 1.5), (0.1, 1.9)))
    assert events == ["tune", "tune", "test", "test"]  # both ranges scored, then epochs 0 and 1 of the chosen
    assert set(fit_sizes) == {len(digits.data()[1]) - digits.TUNE_IMAGES}  # the tuning images held out
    assert set(zip(curves["lr_min_ratio"], curves["lr_max_ratio"])) == {chosen}
    assert list(curves["epoch"]) == [0, 1] and set(curves["tune_accuracy"]) == {max(scores)}


def test_unknown_protocol_and_bad_eigs_thresh_get_one_sentence():
    with pytest.raises(FarmsError, match="unknown protocol"):
        tb.digits_curves(protocol="paper")
    net, opt, _, _ = _setup()
    with pytest.raises(FarmsError, match="eigs_thresh must be"):
        TempBalance(opt, net, eigs_thresh=-1)
