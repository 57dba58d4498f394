"""Tiny trained zoo models: an MLP and a CNN on scikit-learn's bundled 8x8 digits (no download).

``python -m farms_viz.zoo.digits`` builds (or finds) the checkpoints and prints test accuracy per
checkpoint. Training is deterministic (fixed seeds, one thread, plain SGD with momentum, a fixed
batch order); checkpoints at epochs 0 (init), 1, 3, 10 and 30 are written as safetensors into
``$FARMS_VIZ_CACHE/digits/v1/`` (default ``~/.cache/farms-viz/digits/v1/``) with an
``accuracy.json`` next to them. Builds go into a temporary folder renamed into place under a file
lock, so concurrent first uses are safe. The zoo's checkpoints are seed 0; ``load(arch, epoch,
seed=k)`` trains and caches the same run with another seed (initialisation and batch order; the
split stays fixed) in ``digits/v1-seed<k>/``, for measures with a spread over trainings.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from farms_viz.core.threads import torch_threads
from farms_viz.errors import FarmsError
from farms_viz.zoo.build import build_once

EPOCHS = (0, 1, 3, 10, 30)
ARCHS = ("mlp", "cnn")
VERSION = "v1"
SEED = 0
BATCH = 32
LR = 0.05
MOMENTUM = 0.9


class DigitsMLP(nn.Module):
    """64 -> 256 -> 128 -> 10 with ReLU."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(64, 256)
        self.fc2 = nn.Linear(256, 128)
        self.fc3 = nn.Linear(128, 10)

    def forward(self, x):
        x = x.flatten(1)
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


class DigitsCNN(nn.Module):
    """conv 1->16 (3x3) -> conv 16->32 (3x3) -> 2x2 max-pool -> 512 -> 64 -> 10."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.fc1 = nn.Linear(32 * 4 * 4, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x):
        x = x.view(-1, 1, 8, 8)
        x = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        x = nn.functional.max_pool2d(x, 2).flatten(1)
        return self.fc2(torch.relu(self.fc1(x)))


MODELS = {"mlp": DigitsMLP, "cnn": DigitsCNN}


def cache_dir(seed: int = SEED) -> Path:
    """Where the checkpoints live: ``$FARMS_VIZ_CACHE/digits/v1`` (default root ``~/.cache/farms-viz``);
    other training seeds (``seed`` > 0, not in the zoo) in ``digits/v1-seed<k>``."""
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise FarmsError(f"the training seed must be a whole number >= 0 (got {seed!r}).")
    root = os.environ.get("FARMS_VIZ_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "farms-viz")
    return Path(root) / "digits" / (VERSION if seed == SEED else f"{VERSION}-seed{seed}")


def checkpoint_name(arch: str, epoch: int) -> str:
    return f"digits-{arch}-epoch{epoch:02d}.safetensors"


def _data():
    """The digits split: 1347 train / 450 test images (scaled to [0, 1]), a fixed permutation."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.data / 16.0, dtype=torch.float32)
    y = torch.tensor(d.target, dtype=torch.int64)
    perm = torch.tensor(np.random.RandomState(SEED).permutation(len(y)))
    n_test = 450
    te, tr = perm[:n_test], perm[n_test:]
    return x[tr], y[tr], x[te], y[te]


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def _save(model: nn.Module, path: Path) -> None:
    from safetensors.torch import save_file

    save_file({k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}, str(path))


def new_model(arch: str, seed: int = SEED) -> nn.Module:
    """A freshly initialised ``arch`` (the initialisation drawn with ``seed``)."""
    torch.manual_seed(seed)
    return MODELS[arch]()


def optimizer(params, lr: float = LR, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """The training optimizer: SGD with momentum (``params``: parameters or parameter groups);
    the zoo trains without weight decay."""
    return torch.optim.SGD(params, lr=lr, momentum=MOMENTUM, weight_decay=weight_decay)


def train_epoch(model: nn.Module, opt: torch.optim.Optimizer, gen: torch.Generator, xtr: torch.Tensor,
                ytr: torch.Tensor) -> None:
    """One epoch of mini-batches of :data:`BATCH` in an order drawn from ``gen``."""
    model.train()
    order = torch.randperm(len(ytr), generator=gen)
    for i in range(0, len(order), BATCH):
        idx = order[i:i + BATCH]
        opt.zero_grad()
        nn.functional.cross_entropy(model(xtr[idx]), ytr[idx]).backward()
        opt.step()


def train(arch: str, dest: Path, seed: int = SEED) -> dict[int, float]:
    """Train one architecture, saving a checkpoint at each of :data:`EPOCHS`; test accuracy by epoch.

    ``seed`` draws the initialisation and the batch order; the train/test split is the same for
    every seed.
    """
    xtr, ytr, xte, yte = _data()
    model = new_model(arch, seed)
    opt = optimizer(model.parameters())
    gen = torch.Generator().manual_seed(seed)
    acc = {}
    for epoch in range(max(EPOCHS) + 1):
        if epoch in EPOCHS:
            model.eval()
            acc[epoch] = _accuracy(model, xte, yte)
            _save(model, dest / checkpoint_name(arch, epoch))
        if epoch == max(EPOCHS):
            break
        train_epoch(model, opt, gen, xtr, ytr)
    return acc


def _build_into(dest: Path, seed: int = SEED) -> dict:
    with torch_threads(1):  # tiny trainings: 8x faster on one thread
        t0 = time.perf_counter()
        acc = {arch: {str(e): a for e, a in train(arch, dest, seed).items()} for arch in ARCHS}
    info = {"test_accuracy": acc, "seconds": round(time.perf_counter() - t0, 2), "seed": seed,
            "data": "sklearn.datasets.load_digits, 1347 train / 450 test",
            "optimizer": f"SGD lr={LR} momentum={MOMENTUM} batch={BATCH}"}
    (dest / "accuracy.json").write_text(json.dumps(info, indent=1))
    return info


def ensure_built(seed: int = SEED) -> Path:
    """The checkpoint folder, training the models first if they are not there yet (a few seconds)."""
    final = cache_dir(seed)
    return build_once(final, "accuracy.json", lambda tmp: _build_into(tmp, seed), "the digits models")


def accuracy(seed: int = SEED) -> dict | None:
    """The recorded ``accuracy.json`` if the models are built, else None (never trains)."""
    p = cache_dir(seed) / "accuracy.json"
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return None


def data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x_train, y_train, x_test, y_test)``: the fixed split the models were trained and tested on."""
    return _data()


def evaluate(model: nn.Module) -> float:
    """Test accuracy: the fraction of the 450 test images ``model`` classifies right (eval mode, no grad)."""
    _, _, xte, yte = _data()
    was = model.training
    model.eval()
    try:
        return _accuracy(model, xte, yte)
    finally:
        model.train(was)


#: images at the end of the training split that the epsilon search measures pruned models on
TUNE_IMAGES = 300


def tune_accuracy(model: nn.Module) -> float:
    """Accuracy on the last TUNE_IMAGES training images: the tuning measure (the test images stay unseen)."""
    xtr, ytr, _, _ = _data()
    was = model.training
    model.eval()
    try:
        return _accuracy(model, xtr[-TUNE_IMAGES:], ytr[-TUNE_IMAGES:])
    finally:
        model.train(was)


def load(arch: str, epoch: int, weights: dict | None = None, seed: int = SEED) -> nn.Module:
    """The checkpoint as a module (built on first use); ``weights`` (name -> tensor) replace its own."""
    from safetensors.torch import load_file

    state = load_file(str(checkpoint(arch, epoch, seed)))
    state.update(weights or {})
    model = MODELS[arch]()
    model.load_state_dict(state)
    return model.eval()


def checkpoint(arch: str, epoch: int, seed: int = SEED) -> Path:
    """The safetensors file of ``arch`` after ``epoch`` epochs (trained with ``seed``), built on first use."""
    if arch not in ARCHS or epoch not in EPOCHS:
        raise FarmsError(f"there is no digits checkpoint {arch}@{epoch} (archs {ARCHS}, epochs {EPOCHS}).")
    return ensure_built(seed) / checkpoint_name(arch, epoch)


def main() -> int:
    t0 = time.perf_counter()
    folder = ensure_built()
    info = accuracy() or {}
    print(f"digits checkpoints in {folder} (ready in {time.perf_counter() - t0:.1f} s; "
          f"training took {info.get('seconds', '?')} s)")
    for arch in ARCHS:
        for e in EPOCHS:
            a = info.get("test_accuracy", {}).get(arch, {}).get(str(e))
            print(f"  digits-{arch}@{e:<3} test accuracy {a:.3f}" if a is not None else f"  digits-{arch}@{e} ?")
    return 0


if __name__ == "__main__":
    sys.exit(main())
