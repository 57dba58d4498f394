"""The evaluation text: the Brown Corpus's counts, the split by document, the detokenizer, user text files."""

from __future__ import annotations

import os
import re

import pytest

from farms_viz import FarmsError
from farms_viz.zoo import text

#: the Brown Corpus's published size: 1,014,312 words (Francis and Kucera); NLTK counts 1,161,192
#: tokens with the punctuation, which is what the samples' word/tag pairs are
TOKENS = 1_161_192


@pytest.fixture(scope="module")
def docs():
    """Every document, or a skip (a failure under CI=true) where the corpus is not installed."""
    try:
        return text.documents()
    except FarmsError as e:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the Brown Corpus is missing and CI=true: {e}")
        pytest.skip(str(e))


def test_corpus_has_500_documents_in_15_categories(docs):
    ids = [d for d, _ in docs]
    assert len(ids) == text.SAMPLES == 500 and ids == sorted(ids) and len(set(ids)) == 500
    assert {text.category(d) for d in ids} == set(text.CATEGORIES.values()) and len(text.CATEGORIES) == 15
    assert all(t.strip() for _, t in docs)


def test_categories_match_the_corpus_own_index(docs):
    listed = dict(line.split() for line in (text.corpus_dir() / "cats.txt").read_text().splitlines() if line.strip())
    assert listed == {d: text.category(d) for d, _ in docs}


def test_token_count_is_the_corpus_size(docs):
    counts = text.token_counts()
    assert sum(counts.values()) == pytest.approx(TOKENS, rel=0.03)
    # about 2,000 words a sample, as the corpus was built
    assert 1_900 < min(counts.values()) and max(counts.values()) < 3_000


def test_plain_text_has_no_tags_and_no_brown_quotes(docs):
    sample = "\n".join(t for _, t in docs[::25])
    assert "``" not in sample and "/at " not in sample and "/nn" not in sample
    assert not re.search(r" [,.;:?!)]", sample)
    first = dict(docs)["ca01"]
    assert first.startswith("The Fulton County Grand Jury said Friday an investigation of Atlanta's recent "
                            'primary election produced "no evidence" that any irregularities took place.\n\n')


def test_split_is_disjoint_covers_everything_and_is_deterministic(docs):
    calibration, heldout = text.split(docs)
    cal_ids, held_ids = {d for d, _ in calibration}, {d for d, _ in heldout}
    assert not cal_ids & held_ids and cal_ids | held_ids == {d for d, _ in docs}
    assert text.split(list(reversed(docs))) == (calibration, heldout)
    assert text.split(docs) == (calibration, heldout)


def test_split_holds_out_every_fifth_document_of_each_category(docs):
    calibration, heldout = text.split(docs)
    for name in text.CATEGORIES.values():
        ids = [d for d, _ in docs if text.category(d) == name]
        held = [d for d, _ in heldout if text.category(d) == name]
        assert held == ids[4::5] and held, name
        assert any(text.category(d) == name for d, _ in calibration), name
    assert len(heldout) == 93 and len(calibration) == 407


def test_heldout_is_about_a_fifth_of_the_tokens(docs):
    counts = text.token_counts()
    _, heldout = text.split(docs)
    share = sum(counts[d] for d, _ in heldout) / sum(counts.values())
    assert 0.15 < share < 0.25


def test_corpus_text_joins_a_part_and_content_id_tells_parts_apart(docs):
    calibration, heldout = text.split(docs)
    assert text.corpus_text("heldout") == "\n\n".join(t for _, t in heldout)
    assert text.corpus_text("calibration").startswith(calibration[0][1])
    assert text.content_id(heldout) == text.content_id(list(heldout))
    assert len({text.content_id(heldout), text.content_id(calibration), text.content_id(docs)}) == 3
    with pytest.raises(FarmsError, match="unknown part"):
        text.corpus_text("train")


# ------------------------------------------------------------------ the detokenizer, on text written here

SAMPLE = (
    "\n\n\t``/`` I/ppss do/do n't/*  think/vb so/rb ''/'' ,/, he/pps said/vbd ;/. "
    "the/at dog/nn 's/$ bone/nn (/( a/at big/jj one/cd )/) was/bedz gone/vbn ./.\n"
    "Was/bedz it/pps ?/. ?/.\nYes/rb ,/, ``/`` really/rb ''/'' !/. !/.\n"
    "She/pps called/vbd it/ppo '/' old/jj '/' :/: 1/2/cd cup/nn ./.\n"
    "\n\n"
    "He/pps met/vbd Ivan/np Allen/np Jr./np ./.\n"
)


def test_detokenizer_joins_words_as_printed_and_keeps_lines_and_paragraphs():
    assert text.parse(SAMPLE) == (
        "\"I don't think so\", he said; the dog's bone (a big one) was gone.\n"
        "Was it?\nYes, \"really\"!\nShe called it 'old': 1/2 cup.\n"
        "\n"
        "He met Ivan Allen Jr."
    )


def test_detokenizer_drops_the_doubled_sentence_end_only():
    assert text.parse("Why/wrb ?/. ?/.\nStop/vb ;/. ;/.") == "Why?\nStop;"
    assert text.parse("a/at ,/, ,/, b/nn ?/.") == "a,, b?"


def test_detokenizer_keeps_words_that_begin_with_an_apostrophe():
    assert text.parse("give/vb 'em/ppo a/at '61/cd car/nn ,/, Sam/np 'll/md go/vb") == "give 'em a '61 car, Sam'll go"


def test_unknown_document_id_is_a_farms_error():
    with pytest.raises(FarmsError, match="not a Brown Corpus document id"):
        text.split([("ci01", "x")])


def test_missing_corpus_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setenv(text.ENV, str(tmp_path))
    with pytest.raises(FarmsError, match=r"not installed.*make venv") as e:
        text.documents()
    assert str(tmp_path) in str(e.value) and text.ENV in str(e.value)


def test_partial_corpus_is_a_broken_install(tmp_path, monkeypatch):
    (tmp_path / "ca01").write_text("The/at jury/nn ./.\n")
    monkeypatch.setenv(text.ENV, str(tmp_path))
    with pytest.raises(FarmsError, match="holds 1 of the Brown Corpus's 500 samples"):
        text.documents()


# ------------------------------------------------------------------ a user's own text file

def test_user_text_file_is_read_as_utf8(tmp_path):
    p = tmp_path / "mine.txt"
    p.write_bytes("\ufeffNaïve café text.\n".encode())
    assert text.read_text_file(p, 100) == "Naïve café text.\n"


def test_missing_user_text_file_is_a_farms_error(tmp_path):
    with pytest.raises(FarmsError, match="does not exist"):
        text.read_text_file(tmp_path / "nope.txt", 100)


def test_binary_or_undecodable_user_text_file_is_a_farms_error(tmp_path):
    (tmp_path / "nul.bin").write_bytes(b"PK\x03\x04\x00\x00weights")
    with pytest.raises(FarmsError, match="binary"):
        text.read_text_file(tmp_path / "nul.bin", 100)
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(FarmsError, match="not UTF-8 text"):
        text.read_text_file(tmp_path / "latin1.txt", 100)


def test_too_large_user_text_file_is_refused_before_reading(tmp_path):
    p = tmp_path / "big.txt"
    p.write_text("a" * 101)
    with pytest.raises(FarmsError, match="more than the 100 bytes"):
        text.read_text_file(p, 100)
    assert text.read_text_file(p, 101) == "a" * 101


def test_folder_fifo_or_empty_file_is_not_a_text_file(tmp_path):
    with pytest.raises(FarmsError, match="is a folder"):
        text.read_text_file(tmp_path, 100)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(FarmsError, match="FIFO .*not a text file"):  # and no wait for a writer
        text.read_text_file(fifo, 100)
    (tmp_path / "empty.txt").write_text(" \n")
    with pytest.raises(FarmsError, match="holds no text"):
        text.read_text_file(tmp_path / "empty.txt", 100)
