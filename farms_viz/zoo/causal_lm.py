"""Perplexity and calibration windows of a pretrained causal LM on the Brown Corpus (:mod:`farms_viz.zoo.text`).

The releases measure WikiText-2 test perplexity over windows of 2,048 tokens and calibrate on 128
C4 windows of 2,048 tokens. Neither is offline here, and a 135 M-parameter model on 2 CPU cores
reads about 1,000 tokens a second (SmolLM2-135M, measured: 512 tokens in 0.4-0.6 s), so farms-viz
uses shorter, fewer windows, all fixed (evenly spaced, no randomness):

- held-out measure: EVAL_WINDOWS windows of WINDOW tokens of the held-out documents;
- tuning measure (what the epsilon search chooses by): TUNE_WINDOWS windows of the calibration part;
- calibration inputs (Wanda's norms, SparseGPT's Hessians): CALIBRATION windows of the calibration
  part, offset by half a window from the tuning ones.

Every position of a window but the first is predicted; perplexity is exp of the mean cross-entropy.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

WINDOW = 512
EVAL_WINDOWS = 32  # 16,352 predicted tokens
TUNE_WINDOWS = 8
CALIBRATION = 16  # 8,192 tokens (the releases: 128 x 2,048)
PARTS = ("calibration", "heldout")


@lru_cache(maxsize=4)
def _tokens(tokenizer_id: int, part: str, tokenizer) -> torch.Tensor:
    from farms_viz.zoo import text

    ids = tokenizer(text.corpus_text(part), add_special_tokens=False, return_tensors=None)["input_ids"]
    return torch.tensor(ids, dtype=torch.int64)


def tokens(tokenizer, part: str) -> torch.Tensor:
    """The Brown part's text as one token id tensor (cached per tokenizer and part)."""
    return _tokens(id(tokenizer), part, tokenizer)


def windows(tokenizer, part: str, n: int, length: int = WINDOW, offset: float = 0.0) -> torch.Tensor:
    """``n`` windows (n, length) evenly spread over the part; ``offset`` shifts every start by that
    fraction of a window (the calibration windows avoid the tuning ones)."""
    data = tokens(tokenizer, part)
    last = len(data) - length - int(offset * length) - 1
    starts = torch.linspace(0, last, n).round().to(torch.int64) + int(offset * length) if n > 1 \
        else torch.tensor([int(offset * length)])
    return torch.stack([data[s:s + length] for s in starts.tolist()])


def perplexity(model: nn.Module, ids: torch.Tensor, batch: int = 4) -> float:
    """exp of the mean next-token cross-entropy over the windows ``ids`` (n, length); eval mode, no grad."""
    was = model.training
    model.eval()
    total, count = 0.0, 0
    try:
        with torch.no_grad():
            for i in range(0, len(ids), batch):
                b = ids[i:i + batch]
                logits = model(input_ids=b, use_cache=False).logits[:, :-1].float()
                total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), b[:, 1:].reshape(-1),
                                               reduction="sum"))
                count += b[:, 1:].numel()
    finally:
        model.train(was)
    return math.exp(total / count)
