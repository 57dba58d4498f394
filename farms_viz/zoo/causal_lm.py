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
A user's own text (``measure(..., text=FILE)``) replaces the Brown Corpus: its last HELDOUT_SHARE of
lines is the held-out part, the rest the calibration part (:func:`split_text`).
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
#: a user's own text (``--text FILE``): this share of its lines, at the end, is held out
HELDOUT_SHARE = 0.2


@lru_cache(maxsize=4)
def _tokens(tokenizer_id: int, part: str, tokenizer) -> torch.Tensor:
    from farms_viz.zoo import text

    return encode(tokenizer, text.corpus_text(part))


def encode(tokenizer, text: str) -> torch.Tensor:
    """``text`` as one int64 tensor of token ids (no special tokens)."""
    ids = tokenizer(text, add_special_tokens=False, return_tensors=None)["input_ids"]
    return torch.tensor(ids, dtype=torch.int64)


def tokens(tokenizer, part: str) -> torch.Tensor:
    """The Brown part's text as one token id tensor (cached per tokenizer and part)."""
    return _tokens(id(tokenizer), part, tokenizer)


def split_text(text: str, heldout: float = HELDOUT_SHARE) -> dict[str, str]:
    """A user's own text as ``{"calibration", "heldout"}``: the last ``heldout`` share of its lines is
    held out (by position, as a document split: the two parts share no line)."""
    lines = text.splitlines(keepends=True)
    if len(lines) < 2:
        cut = int(len(text) * (1 - heldout))
        return {"calibration": text[:cut], "heldout": text[cut:]}
    cut = max(1, min(len(lines) - 1, round(len(lines) * (1 - heldout))))
    return {"calibration": "".join(lines[:cut]), "heldout": "".join(lines[cut:])}


def windows(tokenizer, part: str, n: int, length: int | None = None, offset: float = 0.0,
            data: torch.Tensor | None = None) -> torch.Tensor:
    """``n`` windows (n, length; default WINDOW) evenly spread over the Brown part (or over ``data``, token ids);
    ``offset`` shifts every start by that fraction of a window (the calibration windows avoid the
    tuning ones). A text too short for one window gives its whole length as one window."""
    data = tokens(tokenizer, part) if data is None else data
    if len(data) < 2:
        from farms_viz.errors import FarmsError

        raise FarmsError(f"the {part} text has {len(data)} token(s); perplexity needs at least 2.")
    length = min(WINDOW if length is None else length, len(data) - 1)
    shift = min(int(offset * length), len(data) - length - 1)
    last = len(data) - length - shift - 1
    starts = torch.linspace(0, last, n).round().to(torch.int64) + shift if n > 1 else torch.tensor([shift])
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
