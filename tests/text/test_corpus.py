"""Shipped corpora: made from the standard library, deterministic, normalised, split."""

import hashlib
import sysconfig
from pathlib import Path

import pytest

from captum_unified.text import CHARACTERS, CORPORA, load_corpus, normalise_text
from captum_unified.text.corpus import STDLIB_FILES


@pytest.mark.parametrize("name", sorted(CORPORA))
def test_corpus_is_deterministic_and_digest_is_of_the_text(name):
    a, b = load_corpus(name), load_corpus(name)
    assert a == b
    # the digest is a SHA-1 of the normalised text and the split, recomputed here
    h = hashlib.sha1()
    for part in (a.train, "\x00", a.validation):
        h.update(part.encode("ascii"))
    assert a.digest == h.hexdigest()[:12]
    assert load_corpus(name, val_fraction=0.2).digest != a.digest


@pytest.mark.parametrize("name", sorted(CORPORA))
def test_corpus_text_is_normalised_and_split(name):
    c = load_corpus(name)
    allowed = set(CHARACTERS)
    assert set(c.train) <= allowed and set(c.validation) <= allowed
    total = len(c.train) + len(c.validation)
    assert total > 300_000, "a corpus big enough to train a character model"
    # every document gives a head and a tail near a tenth of its length
    assert 0.07 < len(c.validation) / total < 0.13


def test_pydoc_corpus_is_the_stdlib_help_topics():
    from pydoc_data import topics

    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
    # shipped with Python: the module lies in the standard library, nothing was downloaded
    assert stdlib in Path(topics.__file__).resolve().parents
    c = load_corpus("pydoc")
    assert c.documents == tuple(sorted(topics.topics))
    first = normalise_text(topics.topics[c.documents[0]]).strip("\n")
    assert c.train.startswith(first[: len(first) // 2])


def test_stdlib_corpus_reads_the_fixed_file_list():
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    c = load_corpus("stdlib")
    assert c.documents == STDLIB_FILES
    assert "def " in c.train and "class " in c.train
    source = normalise_text((stdlib / STDLIB_FILES[0]).read_text(encoding="utf-8")).strip("\n")
    assert c.train.startswith(source[:1000])


def test_normalise_text_maps_to_ascii():
    assert normalise_text("\u201cna\u00efve\u201d \u2014 caf\u00e9\r\nok\u2026") == '"naive" -- cafe\nok...'
    assert set(normalise_text("".join(chr(i) for i in range(0x2600, 0x2700)))) == set()


def test_corpus_bad_arguments():
    with pytest.raises(ValueError, match="Unknown corpus"):
        load_corpus("shakespeare")
    with pytest.raises(ValueError, match="val_fraction"):
        load_corpus("pydoc", val_fraction=1.0)
