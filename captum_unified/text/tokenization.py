r"""Hugging Face tokenizers for the shipped text models, built in code (nothing downloaded).

Both are ``transformers.PreTrainedTokenizerFast`` objects made with the ``tokenizers``
library, so everything that takes a Hugging Face tokenizer takes them: ``model.generate``,
Captum's ``LLMAttribution`` / ``LLMGradientAttribution`` and ``TextTokenInput`` (which call
the tokenizer with ``return_offsets_mapping=True``, ``encode(..., return_tensors="pt")``,
``encode(..., add_special_tokens=False)``, ``decode``, ``convert_ids_to_tokens`` and
``convert_tokens_to_ids``), inseq, ``save_pretrained`` / ``AutoTokenizer.from_pretrained``.

* :func:`char_tokenizer`: one token per character of :data:`CHARACTERS` (tab, newline
  and printable ASCII), ``<bos>`` put in front of every text (as the character models
  saw in training), offsets one character wide, ``decode`` concatenates.
* :func:`word_tokenizer`: one token per whitespace-separated word of a fixed
  vocabulary, ``[CLS]`` in front (the sentiment classifier reads its output there),
  unknown words to ``[UNK]``, ``decode`` joins with spaces.

``transformers`` and ``tokenizers`` are imported inside the functions, so that
``import captum_unified`` does not load them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "CHARACTERS",
    "CHAR_SPECIAL_TOKENS",
    "WORD_SPECIAL_TOKENS",
    "char_tokenizer",
    "char_vocab",
    "word_tokenizer",
]

#: The character models' characters: tab, newline and the 95 printable ASCII characters.
CHARACTERS: tuple[str, ...] = ("\t", "\n") + tuple(chr(i) for i in range(32, 127))

#: Special tokens of :func:`char_tokenizer`, ids 0 to 3: padding, beginning of text
#: (put in front of every encoded text), end of text, unknown character.
CHAR_SPECIAL_TOKENS: dict[str, str] = {
    "pad_token": "<pad>",
    "bos_token": "<bos>",
    "eos_token": "<eos>",
    "unk_token": "<unk>",
}

#: Special tokens of :func:`word_tokenizer`, ids 0 to 3: padding, the classification token
#: (put in front of every sentence), separator (not added), unknown word.
WORD_SPECIAL_TOKENS: dict[str, str] = {
    "pad_token": "[PAD]",
    "cls_token": "[CLS]",
    "sep_token": "[SEP]",
    "unk_token": "[UNK]",
}


def char_vocab() -> dict[str, int]:
    """Token -> id of :func:`char_tokenizer`: the special tokens (ids 0-3), then :data:`CHARACTERS`."""
    tokens = list(CHAR_SPECIAL_TOKENS.values()) + list(CHARACTERS)
    return {t: i for i, t in enumerate(tokens)}


def _fast_tokenizer(backend: Any, special: dict[str, str], model_max_length: int | None) -> Any:
    # function-level import: transformers is an optional dependency (the ``text`` extra)
    from transformers import PreTrainedTokenizerFast

    kwargs: dict[str, Any] = dict(special)
    if model_max_length is not None:
        kwargs["model_max_length"] = int(model_max_length)
    return PreTrainedTokenizerFast(tokenizer_object=backend, **kwargs)


def char_tokenizer(model_max_length: int | None = None) -> Any:
    """The character-level tokenizer of the shipped character models.

    Every character of :data:`CHARACTERS` is one token (others become ``<unk>``); with
    ``add_special_tokens=True`` (the default) ``<bos>`` is put in front, as in training.
    ``decode(encode(text, add_special_tokens=False)) == text`` for any text made of
    :data:`CHARACTERS` (see :func:`captum_unified.text.corpus.normalise_text`).

    Args:
        model_max_length (int, optional): the longest input the model takes (its context),
            recorded on the tokenizer for truncation.

    Returns:
        transformers.PreTrainedTokenizerFast: a fresh tokenizer (nothing shared between calls).
    """
    # function-level import: tokenizers is an optional dependency (the ``text`` extra)
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors

    vocab = char_vocab()
    backend = Tokenizer(models.WordLevel(vocab, unk_token=CHAR_SPECIAL_TOKENS["unk_token"]))
    # every character its own piece (Oniguruma's "." skips newlines, the class does not)
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    backend.decoder = decoders.Fuse()
    bos = CHAR_SPECIAL_TOKENS["bos_token"]
    backend.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A $B", special_tokens=[(bos, vocab[bos])]
    )
    return _fast_tokenizer(backend, CHAR_SPECIAL_TOKENS, model_max_length)


def word_tokenizer(words: Sequence[str], model_max_length: int | None = None) -> Any:
    """A word-level tokenizer over ``words`` (the sentiment task's vocabulary).

    Text is split at whitespace; each word of ``words`` is one token, any other word
    ``[UNK]``; with ``add_special_tokens=True`` ``[CLS]`` is put in front. Ids: the special
    tokens of :data:`WORD_SPECIAL_TOKENS` (0-3), then ``words`` in the given order.

    Args:
        words (sequence of str): distinct words without whitespace.
        model_max_length (int, optional): the longest input the model takes.

    Returns:
        transformers.PreTrainedTokenizerFast: a fresh tokenizer.
    """
    # function-level import: tokenizers is an optional dependency (the ``text`` extra)
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors

    specials = list(WORD_SPECIAL_TOKENS.values())
    words = list(words)
    bad = [w for w in words if not w or any(c.isspace() for c in w) or w in specials]
    if bad or len(set(words)) != len(words):
        raise ValueError(
            f"words must be distinct, non-empty, without whitespace and not a special token; got e.g. {bad[:3]}."
        )
    vocab = {t: i for i, t in enumerate(specials + words)}
    backend = Tokenizer(models.WordLevel(vocab, unk_token=WORD_SPECIAL_TOKENS["unk_token"]))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    # WordPiece's decoder with an unused prefix joins words with single spaces
    backend.decoder = decoders.WordPiece(prefix="\x00##", cleanup=False)
    cls = WORD_SPECIAL_TOKENS["cls_token"]
    backend.post_processor = processors.TemplateProcessing(
        single=f"{cls} $A", pair=f"{cls} $A $B", special_tokens=[(cls, vocab[cls])]
    )
    return _fast_tokenizer(backend, WORD_SPECIAL_TOKENS, model_max_length)
