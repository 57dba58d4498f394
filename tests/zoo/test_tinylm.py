"""The tiny LLaMA-shaped LM: the split by file, shapes, deterministic training, perplexity."""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import load_file

from farms_viz import FarmsError
from farms_viz.pipeline.sources import open_source
from farms_viz.zoo import evaluate as zoo_eval
from farms_viz.zoo import registry as zoo
from farms_viz.zoo import tinylm


@pytest.fixture(scope="module", autouse=True)
def private_cache(tmp_path_factory):
    """The small variant built once into a private cache, on one torch thread."""
    cache = tmp_path_factory.mktemp("cache")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FARMS_VIZ_CACHE", str(cache))
        tinylm.ensure_built("small", 0)
        yield cache
    torch.set_num_threads(threads)


def test_split_is_by_file_sorted_and_disjoint():
    files = tinylm.corpus_files()
    assert files == sorted(files) and all(f.suffix == ".py" for f in files)
    split = tinylm.split_files(files)
    assert not set(split["train"]) & set(split["heldout"])
    assert sorted(split["train"] + split["heldout"]) == files
    assert len(split["heldout"]) == len(files) // tinylm.HELDOUT_EVERY
    assert len(tinylm.split_tokens("heldout")) == sum(f.stat().st_size for f in split["heldout"]) \
        + 2 * (len(split["heldout"]) - 1)


def test_full_variant_has_llama_shapes():
    model = tinylm.TinyLM(tinylm.config("full"))
    shapes = {n: tuple(m.weight.shape) for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    d, h = 128, 344
    for i in range(4):
        for p in ("q_proj", "k_proj", "v_proj", "o_proj"):
            assert shapes[f"layers.{i}.self_attn.{p}"] == (d, d)
        assert shapes[f"layers.{i}.mlp.gate_proj"] == shapes[f"layers.{i}.mlp.up_proj"] == (h, d)
        assert shapes[f"layers.{i}.mlp.down_proj"] == (d, h)
    assert h / d == pytest.approx(11008 / 4096, rel=1e-3)  # LLaMA-7B's MLP ratio
    assert shapes["lm_head"] == (tinylm.VOCAB, d)


def test_same_seed_trains_identical_weights():
    saved = load_file(str(tinylm.checkpoint("small", 0)))
    again = tinylm.train("small", 0).state_dict()
    assert saved.keys() == again.keys()
    assert all(torch.equal(saved[k], again[k]) for k in saved)
    other = tinylm.train("small", 1).state_dict()
    assert not torch.equal(other["lm_head.weight"], saved["lm_head.weight"])


def _unigram_perplexity(context: int) -> float:
    """A byte-frequency model (train counts + 1) scored on the same held-out windows as perplexity()."""
    counts = torch.bincount(tinylm.split_tokens("train"), minlength=256).double() + 1
    logp = (counts / counts.sum()).log()
    targets = tinylm.windows("heldout", context, tinylm.EVAL_WINDOWS)[:, 1:].reshape(-1)
    return math.exp(-float(logp[targets].mean()))


def test_trained_perplexity_beats_uniform_and_byte_frequencies():
    model = tinylm.load("small", 0)
    ppl = tinylm.perplexity(model, "heldout")
    unigram = _unigram_perplexity(model.config.context)
    assert ppl < unigram < tinylm.VOCAB, (ppl, unigram)
    assert tinylm.info("small", 0)["perplexity"]["heldout"] == pytest.approx(ppl, rel=1e-6)


def test_uniform_logits_have_perplexity_256():
    model = tinylm.TinyLM(tinylm.config("small"))
    with torch.no_grad():
        model.lm_head.weight.zero_()
    assert tinylm.perplexity(model, "heldout", n_windows=8) == pytest.approx(256.0, rel=1e-6)


def test_zoo_lists_the_seeds_without_building_them():
    entries = {e.name: e for e in zoo.list_entries()}
    for name in tinylm.zoo_names():
        assert name in entries and "trained on first use" in entries[name].summary
        assert zoo.has_entry(name)
    assert tinylm.zoo_names()[0] == "tinylm" and tinylm.seed_of("tinylm-seed2") == 2
    assert zoo_eval.trained("tinylm").metric == "held-out perplexity"
    assert zoo_eval.trained("minilm") is None
    with pytest.raises(FarmsError, match="no built-in evaluation"):
        zoo_eval.require("minilm")


def test_a_built_full_model_opens_as_a_source(monkeypatch, tmp_path):
    """The zoo entry reads the cached checkpoint (the small one stands in for the full one here)."""
    monkeypatch.setattr(tinylm, "checkpoint", lambda variant="full", seed=0: tinylm.ensure_built("small", seed)
                        / "model.safetensors")
    refs = {r.layer: r for r in open_source("tinylm").tensors()}
    assert refs["layers.1.mlp.down_proj"].kind == "linear" and refs["embed_tokens"].kind == "embedding"


def test_bad_variant_and_seed_get_one_sentence():
    with pytest.raises(FarmsError, match="unknown tiny LM variant"):
        tinylm.config("huge")
    with pytest.raises(FarmsError, match="whole number"):
        tinylm.cache_dir("small", -1)
