"""The zoo models farms-viz trains itself, as modules with their quality measure (deterministic).

- ``tinylm`` / ``tinylm-seed<k>``: held-out perplexity (:func:`farms_viz.zoo.tinylm.perplexity`,
  lower is better); calibration inputs are training windows.
- ``digits-mlp@<epoch>`` / ``digits-cnn@<epoch>``: test accuracy on the 450 held-out images
  (:func:`farms_viz.zoo.digits.evaluate`, higher is better); calibration inputs are the first
  training images.
- :func:`minilm_proxy`: MiniLM (not trained here, so not in :func:`trained`) by the mean cosine
  similarity of its sentence embeddings to the dense model's (a proxy; :mod:`farms_viz.zoo.minilm`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from farms_viz.errors import FarmsError
from farms_viz.zoo import digits, minilm, tinylm

_DIGITS = re.compile(r"digits-(\w+)@(\d+)")
#: calibration samples when none are asked for: 32 windows of 128 bytes (4,096 tokens) for the
#: tiny LM, 128 images for digits (Wanda's release: 128 sequences of 2,048 tokens for LLaMA)
CALIBRATION = {"tinylm": 32, "digits": 128}
#: the tiny LM's tuning measure: perplexity on this many fixed windows of its TRAINING split
TUNE_WINDOWS = 64


@dataclass(frozen=True)
class Trained:
    """One trained zoo model: ``load(weights)`` a fresh module (``weights`` replace its own),
    ``evaluate(module)`` its measure on held-out data, ``calibration(n)`` n inputs for Wanda and
    SparseGPT, ``tune(module)`` the same measure on tuning data (never the held-out part: what the
    epsilon search of ``outcome.measure`` chooses by)."""

    name: str
    metric: str
    higher_is_better: bool
    load: Callable[[dict | None], nn.Module]
    evaluate: Callable[[nn.Module], float]
    calibration: Callable[[int], torch.Tensor]
    default_calibration: int
    tune: Callable[[nn.Module], float] | None = None


def trained(name: str) -> Trained | None:
    """The trained zoo model ``name``, or None for any other source (nothing is built here)."""
    seed = tinylm.seed_of(name)
    if seed is not None:
        return tinylm_model("full", seed, name)
    m = _DIGITS.fullmatch(str(name))
    if m and m.group(1) in digits.ARCHS and int(m.group(2)) in digits.EPOCHS:
        return digits_model(m.group(1), int(m.group(2)))
    return None


def tinylm_model(variant: str = "full", seed: int = 0, name: str | None = None) -> Trained:
    """The tiny LM ``variant`` trained with ``seed`` (built on first use when loaded)."""
    tinylm.config(variant)
    return Trained(name or f"tinylm-{variant}-seed{seed}", "held-out perplexity", False,
                   lambda w=None: tinylm.load(variant, seed, w),
                   lambda m: tinylm.perplexity(m, "heldout"),
                   lambda n: tinylm.calibration(tinylm.config(variant), n),
                   CALIBRATION["tinylm"],
                   lambda m: tinylm.perplexity(m, "train", TUNE_WINDOWS))


def digits_model(arch: str, epoch: int, seed: int = digits.SEED) -> Trained:
    """The digits ``arch`` after ``epoch`` epochs of the training run with ``seed`` (0: the zoo's)."""
    name = f"digits-{arch}@{epoch}" + (f"-seed{seed}" if seed != digits.SEED else "")
    return Trained(name, "test accuracy", True,
                   lambda w=None: digits.load(arch, epoch, w, seed),
                   digits.evaluate,
                   lambda n: digits.data()[0][:n],
                   CALIBRATION["digits"],
                   digits.tune_accuracy)


def minilm_proxy() -> Trained:
    """MiniLM measured by its agreement with its dense self (:mod:`farms_viz.zoo.minilm`, a proxy)."""
    return Trained("minilm", minilm.METRIC, True, minilm.load, minilm.agreement, minilm.calibration,
                   len(minilm.CALIBRATION_SENTENCES))


def smollm2_model() -> Trained:
    """SmolLM2-135M-Instruct (the zoo's Q4_1 weights, dequantized into their cached Hugging Face
    folder) by perplexity on the Brown Corpus: :func:`causal_lm_model` of that folder."""
    from farms_viz.zoo import smollm2

    return causal_lm_model(str(smollm2.ensure_built()), name=smollm2.NAME)


def causal_lm_model(source: str, text_file: str | None = None, name: str | None = None) -> Trained:
    """Any causal LM transformers can load from a local Hugging Face folder or a hub id (network
    needed; ``trust_remote_code`` stays off), by perplexity on the Brown Corpus or, with
    ``text_file``, on the user's own UTF-8 text (:func:`farms_viz.zoo.causal_lm.split_text`)."""
    from pathlib import Path

    from farms_viz.io.sources import looks_like_hub_id, open_hub
    from farms_viz.zoo import causal_lm, text

    folder = Path(source)
    if not folder.is_dir():
        if not looks_like_hub_id(source):
            raise FarmsError(f"{source!r} is neither a Hugging Face model folder nor a hub id (owner/name).")
        src = open_hub(source)  # one sentence when offline or unknown
        folder = src.paths[0].parent
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    try:  # the config and tokenizer only: the weights load once, when the run needs them
        config = AutoConfig.from_pretrained(str(folder))
        tok = AutoTokenizer.from_pretrained(str(folder))
    except Exception as e:  # transformers raises many kinds for a folder it cannot load
        raise FarmsError(f"transformers cannot load a causal LM from {source} "
                         f"({type(e).__name__}: {str(e).splitlines()[0][:160]}).") from None
    if config.model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise FarmsError(f"{source} is a {config.model_type} model, not a causal LM transformers knows.")

    def load(weights=None):
        m = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()
        if weights:
            m.load_state_dict(weights, strict=False)
        return m

    if text_file is None:
        parts = {p: causal_lm.tokens(tok, p) for p in causal_lm.PARTS}
        label = "held-out perplexity (Brown)"
    else:
        parts = {p: causal_lm.encode(tok, t) for p, t in causal_lm.split_text(text.read_text_file(text_file)).items()}
        label = f"held-out perplexity ({Path(text_file).name})"

    def held(m):
        return causal_lm.perplexity(m, causal_lm.windows(tok, "heldout", causal_lm.EVAL_WINDOWS, data=parts["heldout"]))

    def tune(m):
        return causal_lm.perplexity(m, causal_lm.windows(tok, "calibration", causal_lm.TUNE_WINDOWS,
                                                         data=parts["calibration"]))

    def calib(n):
        return causal_lm.windows(tok, "calibration", n, offset=0.5, data=parts["calibration"])

    return Trained(name or str(source), label, False, load, held, calib, causal_lm.CALIBRATION, tune)


def require(name: str) -> Trained:
    """:func:`trained` or one FarmsError naming the models that can be evaluated."""
    t = trained(name)
    if t is None:
        raise FarmsError(f"{name!r} is not a model farms-viz trains, so it has no built-in evaluation or "
                         f"calibration data (those are tinylm, {', '.join(tinylm.zoo_names()[1:])} and digits-*@*).")
    return t
