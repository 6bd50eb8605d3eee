r"""LLMGradientAttribution: Captum's LLM wrapper for every layer attribution."""

from __future__ import annotations

from copy import copy
from typing import Any, Literal, cast

import torch
from captum._utils.typing import TokenizerLike
from captum.attr import LLMAttributionResult
from captum.attr import LLMGradientAttribution as _CaptumLLMGradientAttribution
from captum.attr._core.llm_attr import GradientForwardFunc
from captum.attr._utils.attribution import Attribution, LayerAttribution
from captum.attr._utils.interpretable_input import InterpretableInput
from torch import Tensor, nn

__all__ = ["LLMGradientAttribution", "EXPLAINED_QUANTITIES"]

#: what an attribution explains for each generated token ``t`` at its position:
#: a function of the model's last-position logits ``z`` (shape ``(batch, vocab)``)
#: and ``t``, giving one number per sample.
EXPLAINED_QUANTITIES = {
    "log_prob": lambda z, t: torch.log_softmax(z, dim=-1)[..., t],
    "logit": lambda z, t: z[..., t],
}

Explained = Literal["log_prob", "logit"]


class LLMGradientAttribution(_CaptumLLMGradientAttribution):
    r"""Captum's :class:`~captum.attr.LLMGradientAttribution` for any layer
    attribution: this package's :class:`~captum_unified.LayerDeepLiftRescale`,
    :class:`~captum_unified.LayerEpsilonLRP` and
    :class:`~captum_unified.LayerGradientXInput`, and every Captum
    :class:`~captum.attr._utils.attribution.LayerAttribution`
    (``LayerIntegratedGradients``, ``LayerGradientXActivation``, ...). Captum's
    own accepts only ``LayerGradientShap``, ``LayerGradientXActivation`` and
    ``LayerIntegratedGradients``.

    For each generated token :math:`y_k` the wrapped method attributes
    :math:`S_k = \log p(y_k \mid x, y_{<k})` (``explain="log_prob"``, Captum's)
    or the logit :math:`S_k = z_{y_k}(x, y_{<k})` (``explain="logit"``)
    to the output of the layer (the token-embedding layer), and the
    row of the result sums the attribution over the embedding dimensions, one
    column per prompt token. The baseline is Captum's: every prompt token
    replaced by the :class:`~captum.attr.TextTokenInput`'s ``baselines`` token
    (default id 0), the already generated tokens :math:`y_{<k}` kept. With a
    complete method (DeepLIFT, IG with enough steps) row :math:`k` sums to
    :math:`S_k(x) - S_k(\bar x)`. The logit is what LRP's conservation is
    about (:math:`\sum R = z` for a bias-free model); a log-probability
    subtracts the log-sum-exp of all logits, which LRP's rules do not conserve.

    The result is Captum's :class:`~captum.attr.LLMAttributionResult`, so
    ``plot_token_attr`` and ``plot_seq_attr`` work. ``seq_attr`` is the sum of
    the rows (Captum's): the log-probability of the whole target with
    ``explain="log_prob"``, a plain sum of logits with ``"logit"``.

    Args:
        attr_method (LayerAttribution): a layer attribution built on the model
            and its token-embedding layer, e.g.
            ``LayerDeepLiftRescale(model, model.get_input_embeddings())``; one
            layer (not a list). The model follows Hugging Face's conventions
            (``model(input_ids)`` returns ``.logits``, or the logits tensor, of
            shape ``(batch, seq, vocab)``; ``model.generate`` when no target is
            given).
        tokenizer (TokenizerLike): the model's tokenizer.
        explain (str, optional): ``"log_prob"`` (default, Captum's) or
            ``"logit"``: the quantity attributed for each generated token.

    Example::

        >>> import captum_unified as cu
        >>> from captum.attr import TextTokenInput
        >>> llm_attr = cu.LLMGradientAttribution(
        ...     cu.LayerDeepLiftRescale(model, model.get_input_embeddings()), tokenizer)
        >>> result, deltas = llm_attr.attribute(
        ...     TextTokenInput("the cat sat on the", tokenizer), target="mat",
        ...     return_convergence_delta=True)
        >>> result.plot_token_attr()
    """

    # Every layer attribution works: Captum's wrapper only calls
    # ``attr_method.attribute(inputs, additional_forward_args=..., **kwargs)``
    # and sums the result over the embedding dimension.
    SUPPORTED_METHODS = (LayerAttribution,)

    def __init__(self, attr_method: Attribution, tokenizer: TokenizerLike, explain: Explained = "log_prob") -> None:
        if not isinstance(attr_method, LayerAttribution):
            raise TypeError(
                "LLMGradientAttribution needs a layer attribution on the model's token-embedding layer, "
                f"e.g. LayerDeepLiftRescale(model, model.get_input_embeddings()); got {type(attr_method).__name__}. "
                "(A method on the inputs cannot be used: the inputs are token ids.)"
            )
        if not isinstance(attr_method.layer, nn.Module):
            raise ValueError(
                "LLMGradientAttribution needs a layer attribution on one layer (the token-embedding layer), "
                f"got a {type(attr_method.layer).__name__} of layers."
            )
        if explain not in EXPLAINED_QUANTITIES:
            raise ValueError(f"explain must be one of {sorted(EXPLAINED_QUANTITIES)}, got {explain!r}.")
        super().__init__(cast(Any, attr_method), tokenizer)
        self.explain = explain
        # Captum's GradientForwardFunc hard-codes the log-softmax of the target
        # token; ours builds the same model input and explains ``explain``.
        self.attr_method.forward_func = _ExplainedTokenForward(self, explain)
        # Captum's DeepLift family (LayerDeepLift, LayerDeepLiftShap) runs
        # ``self.model``, not ``forward_func``: point it at the wrapper too (on
        # this object's shallow copy of the method; the user's is unchanged).
        if getattr(self.attr_method, "model", None) is self.model:
            self.attr_method.model = self.attr_method.forward_func

    def attribute(
        self,
        inp: InterpretableInput,
        target: str | Tensor | None = None,
        gen_args: dict[str, Any] | None = None,
        return_convergence_delta: bool = False,
        **kwargs: Any,
    ) -> LLMAttributionResult | tuple[LLMAttributionResult, Tensor]:
        r"""
        Args:
            inp (TextTokenInput): the prompt.
            target (str or Tensor, optional): the response to explain (text, or
                its token ids). If None, the model generates it with
                ``gen_args``. Default: None.
            gen_args (dict, optional): arguments of ``model.generate`` when
                ``target`` is None (Captum's defaults: 25 new tokens, greedy).
            return_convergence_delta (bool, optional): also return the wrapped
                method's convergence delta for each generated token (its own
                convention: :math:`\sum R - (S(x) - S(\bar x))` for DeepLIFT
                and IG, :math:`S(x) - \sum R` for epsilon-LRP). The delta
                covers every position the layer sees, the already generated
                tokens included (a row leaves those out; their DeepLIFT
                attribution is 0, since they are the same in the baseline).
                Default: False.
            **kwargs: passed to the wrapped method's ``attribute`` (e.g.
                ``n_steps`` for ``LayerIntegratedGradients``).

        Returns:
            **result** (:class:`~captum.attr.LLMAttributionResult`):
            ``token_attr`` of shape ``(n_generated, n_prompt_tokens)``,
            ``seq_attr`` the sum of its rows; and **deltas** (Tensor of shape
            ``(n_generated,)``) if ``return_convergence_delta``.
        """
        if not return_convergence_delta:
            return super().attribute(inp, target, gen_args, **kwargs)
        if not self.attr_method.has_convergence_delta():
            raise ValueError(
                f"{type(self.attr_method).__name__} has no convergence delta; use a method that has one "
                "(LayerDeepLiftRescale, LayerEpsilonLRP, LayerIntegratedGradients) or return_convergence_delta=False."
            )
        # Captum's loop calls ``attr_method.attribute(...).detach()``, which
        # fails on the ``(attributions, delta)`` pair a delta comes in. Rather
        # than copy the loop, it runs on a per-call view of this object whose
        # method asks for the delta, keeps it and hands the loop the
        # attributions alone; this object is not changed.
        collector = _DeltaCollector(self.attr_method)
        view = copy(self)
        view.attr_method = cast(Any, collector)
        result = _CaptumLLMGradientAttribution.attribute(view, inp, target, gen_args, **kwargs)
        return result, torch.cat([d.reshape(-1) for d in collector.deltas])


class _ExplainedTokenForward(GradientForwardFunc):
    """Captum's forward wrapper with the explained quantity as a choice.

    Captum's ``GradientForwardFunc.forward`` applies ``log_softmax`` inside, so
    the model input is built here the same way (the prompt with perturbed
    tokens replaced by the baseline token, then the already generated tokens)
    and the quantity applied to the last position's logits.
    """

    def __init__(self, attr: LLMGradientAttribution, explain: Explained) -> None:
        super().__init__(attr)
        self.explain = explain

    def forward(
        self, perturbed_tensor: Tensor, inp: InterpretableInput, target_tokens: Tensor, cur_target_idx: int
    ) -> Tensor:
        ids = self.attr._format_model_input(inp.to_model_input(perturbed_tensor))["input_ids"]
        if cur_target_idx:
            generated = target_tokens[:cur_target_idx].unsqueeze(0).expand(ids.size(0), -1).to(self.attr.device)
            ids = torch.cat([ids, generated], dim=1)
        out = self.model(ids)
        logits = out if isinstance(out, Tensor) else getattr(out, "logits", None)
        if logits is None:
            logits = out[0]
        return EXPLAINED_QUANTITIES[self.explain](logits[:, -1], target_tokens[cur_target_idx])


class _DeltaCollector:
    """Stands in for the wrapped method during one call with deltas."""

    def __init__(self, method: Attribution) -> None:
        self.method = method
        self.deltas: list[Tensor] = []

    def attribute(self, *args: Any, **kwargs: Any) -> Tensor:
        attr, delta = self.method.attribute(*args, return_convergence_delta=True, **kwargs)
        self.deltas.append(delta.detach())
        return attr
