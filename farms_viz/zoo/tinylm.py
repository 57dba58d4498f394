"""A tiny LLaMA-shaped causal language model trained here on the Python standard library's source.

The corpus is on every machine: the top-level ``*.py`` files of the running Python's standard
library (``sysconfig.get_paths()["stdlib"]``), sorted by name, read as bytes (vocabulary: the 256
byte values). Every :data:`HELDOUT_EVERY`-th file of that sorted list is held out; the rest is the
training text (a split by file, so held-out perplexity measures new files, not new windows of
seen ones). The corpus differs between Python versions, so the cache folder names the version.

The model has LLaMA's shapes and parts: token embedding, blocks of RMSNorm -> attention with
rotary positions (square ``q/k/v/o_proj``, no biases) -> RMSNorm -> SwiGLU MLP (``gate_proj``,
``up_proj`` d x 2.6875d as LLaMA-7B's 11008 / 4096, ``down_proj``), a final RMSNorm and an untied
``lm_head``. Training is deterministic (one torch thread, fixed seed for the initialisation and
the batch order, AdamW with warm-up and cosine decay). ``python -m farms_viz.zoo.tinylm`` builds
(or finds) the full model and prints its build time and held-out perplexity.

Checkpoints live in ``$FARMS_VIZ_CACHE/tinylm/v1/py3.X/<variant>-seed<k>/`` (``model.safetensors``
and ``info.json``), built into a temporary folder renamed into place under a file lock, as the
digits models.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import sysconfig
import time
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from farms_viz.core.threads import torch_threads
from farms_viz.errors import FarmsError
from farms_viz.zoo.build import build_once

VERSION = "v1"
VOCAB = 256
HELDOUT_EVERY = 10  # files 9, 19, 29, ... of the sorted list are held out (16 of 168 on Python 3.11)
SPLITS = ("train", "heldout")
#: perplexity is measured on this many windows spread evenly over the split (fixed positions)
EVAL_WINDOWS = 256


@dataclass(frozen=True)
class Config:
    """Shapes and training schedule of one variant."""

    d: int
    layers: int
    heads: int
    hidden: int
    context: int
    steps: int
    batch: int
    lr: float
    warmup: int


VARIANTS = {
    # d=128: attention 128 x 128, MLP 344 x 128 and 128 x 344 (2.6875 x); 0.86M parameters. 600 steps
    # of 16 x 128 bytes: held-out perplexity 4.45 in 212 s; 300 steps of 32 x 128 (same bytes): 4.90
    "full": Config(d=128, layers=4, heads=4, hidden=344, context=128, steps=600, batch=16, lr=3e-3, warmup=30),
    # for tests: seconds to build
    "small": Config(d=32, layers=2, heads=2, hidden=86, context=32, steps=100, batch=16, lr=1e-2, warmup=10),
}


class Attention(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.heads = c.heads
        self.q_proj = nn.Linear(c.d, c.d, bias=False)
        self.k_proj = nn.Linear(c.d, c.d, bias=False)
        self.v_proj = nn.Linear(c.d, c.d, bias=False)
        self.o_proj = nn.Linear(c.d, c.d, bias=False)

    def forward(self, x, cos, sin):
        b, t, d = x.shape
        q, k, v = (p(x).view(b, t, self.heads, d // self.heads).transpose(1, 2)
                   for p in (self.q_proj, self.k_proj, self.v_proj))
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.o_proj(y.transpose(1, 2).reshape(b, t, d))


class MLP(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.gate_proj = nn.Linear(c.d, c.hidden, bias=False)
        self.up_proj = nn.Linear(c.d, c.hidden, bias=False)
        self.down_proj = nn.Linear(c.hidden, c.d, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.input_layernorm = nn.RMSNorm(c.d, eps=1e-5)
        self.self_attn = Attention(c)
        self.post_attention_layernorm = nn.RMSNorm(c.d, eps=1e-5)
        self.mlp = MLP(c)

    def forward(self, x, cos, sin):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin)
        return x + self.mlp(self.post_attention_layernorm(x))


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary position embedding (LLaMA's rotate-half form) on (batch, heads, time, head_dim)."""
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat((-x2, x1), dim=-1) * sin


class TinyLM(nn.Module):
    """Bytes in, next-byte logits out: ``model(ids)`` with ids (batch, time) int64, time <= context."""

    def __init__(self, config: Config):
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Embedding(VOCAB, config.d)
        self.layers = nn.ModuleList(Block(config) for _ in range(config.layers))
        self.norm = nn.RMSNorm(config.d, eps=1e-5)
        self.lm_head = nn.Linear(config.d, VOCAB, bias=False)
        hd = config.d // config.heads
        inv = 1.0 / (10000.0 ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
        ang = torch.outer(torch.arange(config.context, dtype=torch.float32), inv)
        ang = torch.cat((ang, ang), dim=-1)
        self.register_buffer("cos", ang.cos(), persistent=False)
        self.register_buffer("sin", ang.sin(), persistent=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        t = ids.shape[1]
        cos, sin = self.cos[:t], self.sin[:t]
        x = self.embed_tokens(ids)
        for block in self.layers:
            x = block(x, cos, sin)
        return self.lm_head(self.norm(x))


#: the zoo lists the full model trained with these seeds ("tinylm" is seed 0)
ZOO_SEEDS = (0, 1, 2)


def zoo_names() -> list[str]:
    """``tinylm``, ``tinylm-seed1``, ...: the zoo names of the full model, one per training seed."""
    return ["tinylm" if s == 0 else f"tinylm-seed{s}" for s in ZOO_SEEDS]


def seed_of(name: str) -> int | None:
    """The training seed of a zoo name from :func:`zoo_names`, else None."""
    names = zoo_names()
    return ZOO_SEEDS[names.index(name)] if name in names else None


# ------------------------------------------------------------------ corpus

def corpus_files() -> list[Path]:
    """The top-level ``*.py`` files of the standard library, sorted by name."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in root.glob("*.py") if p.is_file())
    if len(files) < HELDOUT_EVERY:
        raise FarmsError(f"the standard library at {root} has too few .py files ({len(files)}) to train the tiny LM.")
    return files


def split_files(files: list[Path]) -> dict[str, list[Path]]:
    """``{"train": ..., "heldout": ...}``: every HELDOUT_EVERY-th file (index 9, 19, ...) held out."""
    held = [f for i, f in enumerate(files) if i % HELDOUT_EVERY == HELDOUT_EVERY - 1]
    return {"train": [f for f in files if f not in held], "heldout": held}


@lru_cache(maxsize=2)
def _split_bytes(split: str) -> torch.Tensor:
    files = split_files(corpus_files())[split]
    data = b"\n\n".join(f.read_bytes() for f in files)
    return torch.frombuffer(bytearray(data), dtype=torch.uint8).to(torch.int64)


def split_tokens(split: str) -> torch.Tensor:
    """The split's text as one int64 tensor of byte values (files joined by a blank line)."""
    if split not in SPLITS:
        raise FarmsError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}.")
    return _split_bytes(split)


def corpus_id() -> str:
    """A short hash of the corpus file names and sizes (the checkpoint records what it saw)."""
    h = hashlib.sha256()
    for f in corpus_files():
        h.update(f"{f.name}:{f.stat().st_size}\n".encode())
    return h.hexdigest()[:16]


def windows(split: str, context: int, n: int) -> torch.Tensor:
    """``n`` windows of ``context + 1`` bytes spread evenly over the split (fixed starts), (n, context+1)."""
    data = split_tokens(split)
    last = len(data) - (context + 1)
    starts = torch.linspace(0, last, n).round().to(torch.int64) if n > 1 else torch.zeros(1, dtype=torch.int64)
    return torch.stack([data[s:s + context + 1] for s in starts.tolist()])


def calibration(model_or_config, n: int = 32, seed: int = 0) -> torch.Tensor:
    """``n`` training windows (n, context) drawn with ``seed``: inputs for Wanda's activation norms."""
    c = model_or_config.config if isinstance(model_or_config, TinyLM) else model_or_config
    data = split_tokens("train")
    gen = torch.Generator().manual_seed(10_000 + seed)  # not the training order's stream
    starts = torch.randint(0, len(data) - c.context, (n,), generator=gen)
    return torch.stack([data[s:s + c.context] for s in starts.tolist()])


def perplexity(model: TinyLM, split: str = "heldout", n_windows: int = EVAL_WINDOWS) -> float:
    """``exp`` of the mean next-byte cross-entropy over ``n_windows`` fixed windows of ``split``.

    Every position of each window is predicted (the first from one byte of context). A model
    guessing uniformly over the 256 byte values has perplexity 256.
    """
    w = windows(split, model.config.context, n_windows)
    was = model.training
    model.eval()
    total = 0.0
    try:
        with torch.no_grad():
            for i in range(0, len(w), 64):
                b = w[i:i + 64]
                logits = model(b[:, :-1])
                total += float(F.cross_entropy(logits.reshape(-1, VOCAB), b[:, 1:].reshape(-1), reduction="sum"))
    finally:
        model.train(was)
    return math.exp(total / (w.shape[0] * (w.shape[1] - 1)))


# ------------------------------------------------------------------ training

def train(variant: str = "full", seed: int = 0) -> TinyLM:
    """A freshly trained model (deterministic for a given variant, seed, corpus and torch thread count)."""
    c = config(variant)
    data = split_tokens("train")
    torch.manual_seed(seed)
    model = TinyLM(c)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    rest = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
                            lr=c.lr, betas=(0.9, 0.95))
    gen = torch.Generator().manual_seed(seed)
    offsets = torch.arange(c.context + 1)
    model.train()
    for step in range(c.steps):
        lr = c.lr * (step + 1) / c.warmup if step < c.warmup else \
            c.lr * (0.1 + 0.45 * (1 + math.cos(math.pi * (step - c.warmup) / max(1, c.steps - c.warmup))))
        for g in opt.param_groups:
            g["lr"] = lr
        starts = torch.randint(0, len(data) - c.context - 1, (c.batch,), generator=gen)
        b = data[starts[:, None] + offsets]
        loss = F.cross_entropy(model(b[:, :-1]).reshape(-1, VOCAB), b[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    model.eval()
    return model


def config(variant: str) -> Config:
    if variant not in VARIANTS:
        raise FarmsError(f"unknown tiny LM variant {variant!r}; use one of {', '.join(VARIANTS)}.")
    return VARIANTS[variant]


def cache_dir(variant: str = "full", seed: int = 0) -> Path:
    """``$FARMS_VIZ_CACHE/tinylm/v1/py3.X/<variant>-seed<k>`` (default root ``~/.cache/farms-viz``)."""
    config(variant)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise FarmsError(f"the training seed must be a whole number >= 0 (got {seed!r}).")
    root = os.environ.get("FARMS_VIZ_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "farms-viz")
    py = f"py{sys.version_info.major}.{sys.version_info.minor}"
    return Path(root) / "tinylm" / VERSION / py / f"{variant}-seed{seed}"


def _build_into(dest: Path, variant: str, seed: int) -> dict:
    from safetensors.torch import save_file

    with torch_threads(1):  # measured on 2 cores: 0.62 s per step of 32 x 128 on one thread, 0.66 on two
        t0 = time.perf_counter()
        model = train(variant, seed)
        seconds = time.perf_counter() - t0
        ppl = {s: perplexity(model, s) for s in SPLITS}
    save_file({k: v.detach().clone().contiguous() for k, v in model.state_dict().items()},
              str(dest / "model.safetensors"))
    files = split_files(corpus_files())
    info = {"variant": variant, "seed": seed, "config": asdict(config(variant)), "seconds": round(seconds, 1),
            "perplexity": ppl, "python": sys.version.split()[0], "corpus": corpus_id(),
            "files": {s: len(v) for s, v in files.items()},
            "bytes": {s: int(len(split_tokens(s))) for s in SPLITS},
            "heldout_files": [f.name for f in files["heldout"]]}
    (dest / "info.json").write_text(json.dumps(info, indent=1))
    return info


def ensure_built(variant: str = "full", seed: int = 0) -> Path:
    """The checkpoint folder, training the model first if it is not there yet (full: minutes)."""
    final = cache_dir(variant, seed)
    return build_once(final, "info.json", lambda tmp: _build_into(tmp, variant, seed), "the tiny LM")


def checkpoint(variant: str = "full", seed: int = 0) -> Path:
    """The safetensors file of the trained model, built on first use."""
    return ensure_built(variant, seed) / "model.safetensors"


def info(variant: str = "full", seed: int = 0) -> dict | None:
    """The recorded ``info.json`` if the model is built, else None (never trains)."""
    try:
        return json.loads((cache_dir(variant, seed) / "info.json").read_text())
    except (OSError, ValueError):
        return None


def load(variant: str = "full", seed: int = 0, weights: dict | None = None) -> TinyLM:
    """The trained model as a module (built on first use); ``weights`` (name -> tensor) replace its own."""
    from safetensors.torch import load_file

    model = TinyLM(config(variant))
    state = load_file(str(checkpoint(variant, seed)))
    if weights is not None:
        state.update(weights)
    model.load_state_dict(state)
    model.eval()
    return model


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    variant = args[0] if args else "full"
    seed = int(args[1]) if len(args) > 1 else 0
    t0 = time.perf_counter()
    folder = ensure_built(variant, seed)
    rec = info(variant, seed) or {}
    print(f"tiny LM {variant} seed {seed} in {folder} (ready in {time.perf_counter() - t0:.1f} s; "
          f"training took {rec.get('seconds', '?')} s)")
    for s, p in rec.get("perplexity", {}).items():
        print(f"  {s:<8} perplexity {p:.3f} (uniform over bytes: {VOCAB})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
