r"""``captum-unified reproduce transformers``: methods compared on trained transformers (issue #18).

Three trained, unmodified Hugging Face models of :mod:`captum_unified.text`:

* the character-level ``GPT2LMHeadModel`` and its ``LlamaForCausalLM`` twin (RMSNorm, SiLU
  gate, rotary positions), trained on the standard library's ``help()`` prose; the explained
  quantity is :math:`\log p(c_{t+1} \mid \langle bos \rangle, c_1 \dots c_t)`, the
  log-probability of the true next character of a seeded random window of the validation
  text;
* the sentiment ``BertForSequenceClassification`` trained on sentences made of VADER-lexicon
  words with known valences; the explained quantity is the true class's logit, and the
  ground truth of a word is its valence (sign flipped for the negative class).

A feature is a token: the input is the tokens' embedding vectors (the model is fed
``inputs_embeds``; ``<bos>`` / ``[CLS]`` fixed in front, position embeddings added inside the
model, so a removed token keeps its position), a token is removed by setting its whole
embedding vector to 0 (the baseline of every method that takes one), and its attribution is
the sum over its vector. Methods (:data:`METHODS`): this package's DeepLIFT (Rescale),
epsilon-LRP with the ``"uniform"`` and ``"gate"`` product policies (inside
:func:`~captum_unified.canonizers.canonize`, so GELU and RMS norms are one op each, as LRP's
rules mean) and Gradient*Input; Captum's ``LayerIntegratedGradients`` (16, 64 and 256 steps)
on the token-embedding input and ``FeatureAblation`` (one token at a time); LXT's AttnLRP and
CP-LRP (:data:`LXT_METHODS`) when an interpreter where LXT imports is there (``--lxt-python``,
or this one): LXT patches transformers' classes for the whole process, so its attributions
come from worker processes (:mod:`~captum_unified.experiments.lxt_worker`) on this run's
weights and samples, and are measured here like the others; otherwise their rows say why not.

Measured per model and method (:func:`run` writes the files of
:data:`captum_unified.registry.PAPERS` ``["transformers"]``):

* completeness: :math:`\sum_i R_i` against :math:`S(x) - S(\bar x)` and (LRP's conservation)
  against :math:`S(x)`, both from forward passes of the untouched model;
* token deletion (:func:`~captum_unified.metrics.region_perturbation`): the explained
  quantity as tokens are removed most relevant first (MoRF) and least relevant first (LeRF),
  and the deletion score, the mean over the curve of LeRF minus MoRF (higher is better);
* Sensitivity-n over tokens (:func:`~captum_unified.metrics.sensitivity_n`, the same subsets
  for every method);
* on the sentiment task, Spearman's rank correlation of each sentence's word attributions
  with the words' valences;
* seconds of one call on the batch of all samples (after a warm-up call on one sample), as
  a multiple of a plain gradient (:func:`torch.autograd.grad` of the same outputs; the
  fastest of three calls after a warm-up) timed in the same run.
"""

from __future__ import annotations

from captum_unified.experiments.language_models.figure import STYLES, deletion_figure
from captum_unified.experiments.language_models.measure import N_POINTS, _measure, _method_rows
from captum_unified.experiments.language_models.methods import (
    IG_BATCH,
    LXT_METHODS,
    METHODS,
    LMMethod,
    _lrp,
    _lxt_attributions,
    _lxt_status,
)
from captum_unified.experiments.language_models.pipeline import (
    DEFAULTS,
    QUICK_DEFAULTS,
    _lxt_report_line,
    _model_rows,
    run,
)
from captum_unified.experiments.language_models.sentences import MIN_SAMPLES, findings_sentences, lxt_sentences
from captum_unified.experiments.language_models.tasks import (
    CONTEXT,
    MODELS,
    _frozen,
    _sentiment_task,
    _Task,
    check_samples,
)
from captum_unified.experiments.token_models import NextTokenLogProb, TokenModel

# the private names: the tests reach the pipeline's parts through this module
__all__ = [
    "DEFAULTS",
    "QUICK_DEFAULTS",
    "METHODS",
    "LXT_METHODS",
    "MODELS",
    "LMMethod",
    "TokenModel",
    "NextTokenLogProb",
    "check_samples",
    "run",
    "deletion_figure",
    "findings_sentences",
    "lxt_sentences",
    "CONTEXT",
    "N_POINTS",
    "IG_BATCH",
    "MIN_SAMPLES",
    "STYLES",
    "_Task",
    "_frozen",
    "_lrp",
    "_lxt_attributions",
    "_lxt_report_line",
    "_lxt_status",
    "_measure",
    "_method_rows",
    "_model_rows",
    "_sentiment_task",
]
