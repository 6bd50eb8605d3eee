"""Trained language models to explain, made from text that ships with Python (issues #17, #18).

* :mod:`~captum_unified.text.corpus`: character corpora from the standard library
  (the ``help()`` topics' prose, or a fixed list of module sources), normalised and split.
* :mod:`~captum_unified.text.tokenization`: Hugging Face fast tokenizers built in code,
  character-level and word-level, that Captum's LLM API and inseq take.
* :mod:`~captum_unified.text.char_lm`: a 2-layer character-level ``GPT2LMHeadModel`` and
  its ``LlamaForCausalLM`` twin (RMSNorm, SiLU gate, rotary positions), trained on the CPU
  and cached.
* :mod:`~captum_unified.text.sentiment`: sentences from the VADER lexicon with known word
  valences, each token's ground-truth contribution, and a small trained classifier.
* :mod:`~captum_unified.text.attention`: how peaked a model's attention is against an
  embedding baseline (the softmax gap of SPEC §5b).

``transformers``, ``tokenizers`` and ``vaderSentiment`` (the ``text`` extra) are imported
only inside the functions that need them, so importing this package stays light.
"""

from captum_unified.text._training import TrainedTextModel
from captum_unified.text.attention import AttentionStatistics, attention_statistics
from captum_unified.text.char_lm import (
    CHAR_LM_ARCHS,
    CHAR_LM_SIZES,
    CharLMSize,
    build_char_lm,
    encode_text,
    evaluate_char_lm,
    load_or_train_char_lm,
    ngram_baselines,
)
from captum_unified.text.corpus import CORPORA, Corpus, load_corpus, normalise_text
from captum_unified.text.sentiment import (
    NEUTRAL_WORDS,
    SENTIMENT_ARCHS,
    SENTIMENT_SIZES,
    SentimentData,
    SentimentSize,
    build_sentiment_model,
    generate_sentiment_data,
    ground_truth_rank_correlation,
    load_or_train_sentiment,
    polar_words,
    vader_lexicon,
)
from captum_unified.text.tokenization import CHARACTERS, char_tokenizer, char_vocab, word_tokenizer

__all__ = [
    "TrainedTextModel",
    "AttentionStatistics",
    "attention_statistics",
    "CHAR_LM_ARCHS",
    "CHAR_LM_SIZES",
    "CharLMSize",
    "build_char_lm",
    "encode_text",
    "evaluate_char_lm",
    "load_or_train_char_lm",
    "ngram_baselines",
    "CORPORA",
    "Corpus",
    "load_corpus",
    "normalise_text",
    "NEUTRAL_WORDS",
    "SENTIMENT_ARCHS",
    "SENTIMENT_SIZES",
    "SentimentData",
    "SentimentSize",
    "build_sentiment_model",
    "generate_sentiment_data",
    "ground_truth_rank_correlation",
    "load_or_train_sentiment",
    "polar_words",
    "vader_lexicon",
    "CHARACTERS",
    "char_tokenizer",
    "char_vocab",
    "word_tokenizer",
]
