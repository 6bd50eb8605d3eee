"""The VADER sentiment task: ground truth consistent with labels, a classifier that learns it."""

import copy

import pytest

pytest.importorskip("transformers")
pytest.importorskip("vaderSentiment")

import torch

from captum_unified.text import (
    NEUTRAL_WORDS,
    SentimentSize,
    attention_statistics,
    generate_sentiment_data,
    ground_truth_rank_correlation,
    load_or_train_sentiment,
    polar_words,
    vader_lexicon,
    word_tokenizer,
)

# Measured (one thread): the quick BERT classifier reaches 0.993 test accuracy with seed 0
# (seeds 1 and 2: 0.992, 0.990; majority 0.5); the threshold leaves a margin for other thread
# counts and versions.
QUICK_BERT_ACCURACY = 0.95

TINY = SentimentSize(n_words=10, n_train=200, n_test=100, width=16, n_head=2, batch_size=16, steps=3)


@pytest.fixture(scope="module")
def quick():
    return load_or_train_sentiment("bert", "quick")


def test_lexicon_is_vaders():
    import os

    import vaderSentiment

    lex = vader_lexicon()
    assert len(lex) > 7000
    path = os.path.join(os.path.dirname(vaderSentiment.__file__), "vader_lexicon.txt")
    first = open(path, encoding="utf-8").readline().split("\t")
    assert lex[first[0]] == float(first[1])
    # VADER's own analyser scores a lexicon word by its valence
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    assert SentimentIntensityAnalyzer().lexicon["good"] == lex["good"] > 0
    assert not set(NEUTRAL_WORDS) & set(lex)


def test_polar_words_are_seeded_and_balanced():
    a, b, c = polar_words(20, seed=0), polar_words(20, seed=0), polar_words(20, seed=1)
    assert a == b and a != c
    values = list(a.values())
    assert sum(v > 0 for v in values) == sum(v < 0 for v in values) == 20
    lex = vader_lexicon()
    assert all(lex[w] == v and abs(v) >= 0.8 and w.isalpha() for w, v in a.items())
    with pytest.raises(ValueError, match="eligible"):
        polar_words(100_000)


def test_generated_ground_truth_is_consistent_with_labels():
    lexicon = polar_words(30, seed=0)
    data = generate_sentiment_data(400, lexicon, seed=3, margin=0.5)
    assert len(data) == 400 and int(data.labels.sum()) == 200
    sums = data.contributions.sum(1)
    assert torch.equal(data.labels, (sums > 0).long())
    assert (sums.abs() >= 0.5 - 1e-9).all()
    tok = word_tokenizer(tuple(lexicon) + NEUTRAL_WORDS)
    enc = tok(data.sentences, padding=True, return_tensors="pt")
    assert torch.equal(enc["input_ids"], data.input_ids) and torch.equal(enc["attention_mask"], data.attention_mask)
    for i in range(0, 400, 37):
        words = data.sentences[i].split()
        # each token's contribution is its word's valence (0 for fillers, [CLS], padding)
        expected = [0.0] + [lexicon.get(w, 0.0) for w in words]
        expected += [0.0] * (data.input_ids.shape[1] - len(expected))
        assert data.contributions[i].tolist() == expected
        n_polar = sum(w in lexicon for w in words)
        assert 1 <= n_polar <= 3 and 4 <= len(words) <= 12
        assert data.labels[i] == int(sum(lexicon.get(w, 0.0) for w in words) > 0)
    again = generate_sentiment_data(400, lexicon, seed=3, margin=0.5)
    assert again.sentences == data.sentences
    with pytest.raises(ValueError, match="even"):
        generate_sentiment_data(3, lexicon)


def test_rank_correlation_against_scipy():
    stats = pytest.importorskip("scipy.stats")
    data = generate_sentiment_data(20, polar_words(10, seed=0), seed=0)
    # the ground truth itself scores 1 (where defined), its negative -1
    perfect = ground_truth_rank_correlation(data.contributions, data)
    defined = ~perfect.isnan()
    assert defined.sum() >= 15
    torch.testing.assert_close(perfect[defined], torch.ones(int(defined.sum()), dtype=torch.float64))
    flipped = ground_truth_rank_correlation(data.contributions, data, target=0)
    torch.testing.assert_close(flipped[defined], -torch.ones(int(defined.sum()), dtype=torch.float64))
    # random scores: scipy's Spearman over the words (ties averaged)
    attr = torch.randn(data.input_ids.shape, generator=torch.Generator().manual_seed(0))
    rho = ground_truth_rank_correlation(attr, data)
    for i in range(len(data)):
        n = int(data.attention_mask[i].sum())
        ref = stats.spearmanr(attr[i, 1:n].numpy(), data.contributions[i, 1:n].numpy()).statistic
        assert rho[i].item() == pytest.approx(ref, abs=1e-12, nan_ok=True)
    with pytest.raises(ValueError, match="one score per token"):
        ground_truth_rank_correlation(attr[:, :3], data)


def test_quick_classifier_learns_the_valence_sum(quick):
    import transformers

    assert type(quick.model) is transformers.BertForSequenceClassification
    m = quick.metrics
    assert m["test_accuracy"] > QUICK_BERT_ACCURACY, m
    test = quick.info["test"]
    # accuracy recomputed from the logits on the held-out sentences, read through the tokenizer
    enc = quick.tokenizer(test.sentences[:300], padding=True, return_tensors="pt")
    with torch.no_grad():
        pred = quick.model(**enc).logits.argmax(-1)
    assert (pred == test.labels[:300]).float().mean() > QUICK_BERT_ACCURACY
    # occluding a word (its id set to [PAD]) moves the logit difference the way its valence says
    ids, mask = test.input_ids[:200], test.attention_mask[:200]
    with torch.no_grad():
        diff = quick.model(input_ids=ids, attention_mask=mask).logits.diff(dim=-1)[:, 0]
        attr = torch.zeros(ids.shape, dtype=torch.float64)
        for j in range(1, ids.shape[1]):
            x = ids.clone()
            x[:, j] = quick.tokenizer.pad_token_id
            attr[:, j] = (diff - quick.model(input_ids=x, attention_mask=mask).logits.diff(dim=-1)[:, 0]).double()
    rho = ground_truth_rank_correlation(
        attr, type(test)(test.sentences[:200], ids, mask, test.labels[:200], test.contributions[:200])
    )
    assert rho.nanmedian() > 0.2


def test_quick_classifier_float64_and_attention(quick):
    test = quick.info["test"]
    ids, mask = test.input_ids[:8], test.attention_mask[:8]
    with torch.no_grad():
        out32 = quick.model(input_ids=ids, attention_mask=mask).logits
        out64 = copy.deepcopy(quick.model).double()(input_ids=ids, attention_mask=mask).logits
    assert out64.dtype == torch.float64
    torch.testing.assert_close(out64.float(), out32, atol=1e-4, rtol=1e-4)
    stats = attention_statistics(quick.model, ids, "zero", attention_mask=mask)
    assert len(stats.gap) == 2 * 4 * int(mask.sum()) and torch.isfinite(stats.gap).all()


def test_sentiment_cache_determinism_and_gpt2_arch(tmp_path):
    import transformers

    a = load_or_train_sentiment("gpt2", TINY, cache_dir=tmp_path / "a")
    b = load_or_train_sentiment("gpt2", TINY, cache_dir=tmp_path / "a")
    c = load_or_train_sentiment("gpt2", TINY, cache_dir=tmp_path / "c")
    assert type(a.model) is transformers.GPT2ForSequenceClassification
    assert not a.from_cache and b.from_cache and not c.from_cache
    sa, sc = a.model.state_dict(), c.model.state_dict()
    assert all(torch.equal(sa[k], sc[k]) for k in sa)
    assert b.metrics == a.metrics and set(a.metrics) == {"test_accuracy", "test_loss", "majority_accuracy"}
    # the GPT-2 classifier reads the last word before the padding
    test = a.info["test"]
    with torch.no_grad():
        full = a.model(input_ids=test.input_ids[:4], attention_mask=test.attention_mask[:4]).logits
        n = int(test.attention_mask[0].sum())
        alone = a.model(input_ids=test.input_ids[:1, :n]).logits
    torch.testing.assert_close(full[:1], alone, atol=1e-5, rtol=1e-5)
