"""A causal LM from a Hugging Face folder or hub id, measured on the Brown Corpus or on the user's own
text (``farms-viz measure FOLDER --text FILE``): the folder is SmolLM2's cached one, read as any
user's folder would be."""

from __future__ import annotations

import math

import pytest
import torch

from farms_viz import FarmsError
from farms_viz.analyses import outcome
from farms_viz.zoo import causal_lm, smollm2
from farms_viz.zoo import evaluate as zoo_eval

TEXT = "\n".join(["The farmers walked out to their fields after the rain, and the river ran high.",
                  "In the evening the children read their books by the window of the old school.",
                  "The town council met on Monday to discuss the new bridge over the river.",
                  "She wrote a long letter to her brother, who lived in a city far to the north.",
                  "The market was busy, and the price of bread had gone up again this week."] * 4)


@pytest.fixture
def short_windows(monkeypatch):
    monkeypatch.setattr(causal_lm, "WINDOW", 48)
    monkeypatch.setattr(causal_lm, "EVAL_WINDOWS", 2)
    monkeypatch.setattr(causal_lm, "TUNE_WINDOWS", 2)
    torch.set_num_threads(max(1, torch.get_num_threads()))


def test_split_text_holds_out_the_last_fifth_of_lines():
    parts = causal_lm.split_text("".join(f"line {i}\n" for i in range(10)))
    assert parts["calibration"] == "".join(f"line {i}\n" for i in range(8))
    assert parts["heldout"] == "line 8\nline 9\n"


def test_a_folder_and_a_text_file_make_a_measurable_family(tmp_path, short_windows):
    path = tmp_path / "mine.txt"
    path.write_text(TEXT)
    folder = str(smollm2.ensure_built())
    fam = outcome.family(folder, text=str(path))
    assert fam.seeds == (0,) and fam.blocks_only and fam.preset == "llm"
    subject = fam.subject(0)
    assert "mine.txt" in subject.metric
    model = subject.load(None)
    held, tune = subject.evaluate(model), subject.tune(model)
    # a trained LM on plain English: far from the 49,152 of a uniform guess, and the two parts differ
    assert 1 < held < 200 and 1 < tune < 200 and held != tune
    calib = subject.calibration(3)
    assert calib.shape == (3, causal_lm.WINDOW) and calib.dtype == torch.int64
    ids = causal_lm.encode(smollm2.load_tokenizer(), causal_lm.split_text(TEXT)["heldout"])
    want = causal_lm.perplexity(model, causal_lm.windows(None, "heldout", 2, data=ids))
    assert math.isclose(held, want, rel_tol=1e-9)


def test_bad_sources_and_texts_get_one_sentence(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FarmsError, match="cannot be fetched from the Hugging Face hub"):
        zoo_eval.causal_lm_model("no-such-owner/no-such-model")
    with pytest.raises(FarmsError, match="neither a Hugging Face model folder nor a hub id"):
        zoo_eval.causal_lm_model(str(tmp_path / "nothing" / "here.bin"))
    with pytest.raises(FarmsError):
        outcome.family(str(smollm2.ensure_built()), text=str(tmp_path / "missing.txt")).subject(0)
    with pytest.raises(FarmsError, match="has its own measure"):
        outcome.family("tinylm", text=str(tmp_path / "x.txt"))
