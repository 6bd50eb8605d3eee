"""The character and word tokenizers: Hugging Face fast tokenizers built in code."""

import pytest

pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

import torch

from captum_unified.text import CHARACTERS, char_tokenizer, char_vocab, encode_text, load_corpus, word_tokenizer
from captum_unified.text.tokenization import CHAR_SPECIAL_TOKENS


@pytest.fixture(scope="module")
def tok():
    return char_tokenizer()


def test_char_tokenizer_round_trips_corpus_text(tok):
    text = load_corpus("pydoc").validation[:5000]
    ids = tok.encode(text, add_special_tokens=False)
    assert len(ids) == len(text)
    assert tok.decode(ids) == text
    # the training path encodes without the tokenizer: the same ids
    assert ids == encode_text(text).tolist()
    assert tok.convert_tokens_to_string(tok.convert_ids_to_tokens(ids)) == text


def test_char_tokenizer_special_tokens_and_offsets(tok):
    vocab = char_vocab()
    assert len(tok) == len(vocab) == 4 + len(CHARACTERS)
    assert [tok.pad_token_id, tok.bos_token_id, tok.eos_token_id, tok.unk_token_id] == [0, 1, 2, 3]
    enc = tok("a\tb\n c\u00e9", return_offsets_mapping=True)
    assert enc["input_ids"][0] == tok.bos_token_id
    assert tok.convert_ids_to_tokens(enc["input_ids"]) == ["<bos>", "a", "\t", "b", "\n", " ", "c", "<unk>"]
    assert enc["offset_mapping"] == [(0, 0)] + [(i, i + 1) for i in range(7)]
    assert tok.decode(enc["input_ids"], skip_special_tokens=True) == "a\tb\n c"
    pt = tok.encode("ab", return_tensors="pt")
    assert pt.shape == (1, 3) and pt.dtype == torch.long
    batch = tok(["ab", "abcd"], padding=True, return_tensors="pt")
    assert batch["input_ids"][0].tolist() == [1, vocab["a"], vocab["b"], 0, 0]
    assert batch["attention_mask"].sum().item() == 3 + 5
    assert tok.convert_tokens_to_ids(CHAR_SPECIAL_TOKENS["bos_token"]) == 1


def test_tokenizers_save_and_load_with_auto_tokenizer(tmp_path, tok):
    from transformers import AutoTokenizer

    tok.save_pretrained(tmp_path / "char")
    again = AutoTokenizer.from_pretrained(tmp_path / "char")
    text = "def f(x):\n\treturn x  # ok"
    assert again(text)["input_ids"] == tok(text)["input_ids"]
    words = word_tokenizer(["good", "bad"])
    words.save_pretrained(tmp_path / "word")
    assert (
        AutoTokenizer.from_pretrained(tmp_path / "word")("a good day")["input_ids"] == words("a good day")["input_ids"]
    )


def test_word_tokenizer():
    tok = word_tokenizer(["good", "bad", "movie"])
    enc = tok("the good  movie", return_offsets_mapping=True)
    assert tok.convert_ids_to_tokens(enc["input_ids"]) == ["[CLS]", "[UNK]", "good", "movie"]
    assert enc["offset_mapping"] == [(0, 0), (0, 3), (4, 8), (10, 15)]
    assert tok.decode(tok.encode("bad movie", add_special_tokens=False)) == "bad movie"
    assert tok.decode(enc["input_ids"], skip_special_tokens=True) == "good movie"
    assert [tok.pad_token_id, tok.cls_token_id, tok.sep_token_id, tok.unk_token_id] == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="distinct"):
        word_tokenizer(["good", "good"])
    with pytest.raises(ValueError, match="whitespace"):
        word_tokenizer(["very good"])
