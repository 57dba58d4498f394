"""MiniLM's agreement proxy: embeddings as sentence-transformers makes them, 1 for the dense model."""

from __future__ import annotations

import pytest
import torch

from farms_viz import prune
from farms_viz.zoo import evaluate as zoo_eval
from farms_viz.zoo import minilm
from farms_viz.zoo.registry import minilm_folder


@pytest.fixture(scope="module")
def model():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield minilm.load()
    torch.set_num_threads(threads)


def test_embeddings_equal_sentence_transformers_own(model):
    st = pytest.importorskip("sentence_transformers")
    ref = st.SentenceTransformer(str(minilm_folder()), device="cpu", local_files_only=True)
    want = torch.as_tensor(ref.encode(list(minilm.SENTENCES), convert_to_numpy=True))  # normalised by its pipeline
    got = torch.nn.functional.normalize(minilm.embed(model), dim=1)
    assert torch.allclose(got, want, atol=2e-5)


def test_fixed_sets_are_fifty_sentences_and_separate_calibration():
    assert len(minilm.SENTENCES) == 50 == len(set(minilm.SENTENCES))
    assert not set(minilm.SENTENCES) & set(minilm.CALIBRATION_SENTENCES)


def test_dense_agreement_is_one_and_pruning_lowers_it(model):
    assert minilm.agreement(model) == pytest.approx(1.0, abs=1e-9)
    half = prune(model, 0.5, "wanda", calibration=minilm.calibration())
    heavy = prune(model, 0.8, "magnitude")
    a_half, a_heavy = minilm.agreement(half.model), minilm.agreement(heavy.model)
    assert 0 < a_heavy < a_half < 1
    proxy = zoo_eval.minilm_proxy()
    assert "proxy" in proxy.metric and proxy.higher_is_better
    assert zoo_eval.trained("minilm") is None  # not a model farms-viz trains
