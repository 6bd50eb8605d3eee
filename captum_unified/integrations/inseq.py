r"""This package's methods inside `inseq <https://github.com/inseq-team/inseq>`_.

Importing this module registers the methods below with inseq (inseq finds its
methods by walking its registry's ``__subclasses__()``, so defining the classes
is the registration)::

    import inseq
    import captum_unified.integrations.inseq  # noqa: F401  (registers the methods)

    model = inseq.load_model(hf_model, "unified_deeplift", tokenizer=tokenizer)
    out = model.attribute("the cat sat", "the cat sat on the mat",
                          attribution_args={"return_convergence_delta": True})

.. list-table::
   :header-rows: 1

   * - inseq name
     - method
     - attributes to
   * - ``unified_deeplift``
     - :class:`~captum_unified.DeepLiftRescale` (baseline: inseq's, the UNK token's embedding)
     - the input embeddings
   * - ``unified_lrp``, ``unified_lrp_gate``, ``unified_lrp_gradient``
     - :class:`~captum_unified.EpsilonLRP` with ``products="uniform"`` / ``"gate"`` / ``"gradient"``
     - the input embeddings
   * - ``unified_gradient_x_input``
     - :class:`~captum_unified.GradientXInput`
     - the input embeddings
   * - ``unified_layer_deeplift``, ``unified_layer_lrp``, ``unified_layer_lrp_gate``,
       ``unified_layer_lrp_gradient``, ``unified_layer_gradient_x_input``
     - the layer versions (:class:`~captum_unified.LayerDeepLiftRescale`, ...)
     - the output of the token-embedding layer (``target_layer=``: another
       layer); for encoder-decoder models the encoder's

Keyword arguments of ``inseq.load_model`` go to the method's constructor
(``epsilon=``, ``products=``, ``norm=``, ``multiply_by_inputs=``, ...). The
explained quantity is inseq's ``attributed_fn`` (default: the target token's
probability; ``attributed_fn="logit"`` is what LRP conserves). With
``attribution_args={"return_convergence_delta": True}`` each step's delta is
in ``step_scores["deltas"]`` (the method's own convention: :math:`\sum R -
(S(x) - S(\bar x))` for DeepLIFT, :math:`S(x) - \sum R` for epsilon-LRP).

inseq's layer route and its baselines
-------------------------------------

For layer methods inseq hands Captum the token ids to attribute (the input's,
or the baseline's in the baseline pass) as the forward function's first
argument, but its forward builds the model's batch from the fixed
``input_ids`` passed among the additional arguments
(``DecoderOnlyInputFormatter.format_forward_args``; the encoder-decoder
formatter does the same with ``encoder_input_ids``). The baseline pass then
runs the real input: the layer's baseline activations equal the input's, and
every layer attribution that uses a baseline is zero (inseq 0.7.1's own
``layer_integrated_gradients`` and ``layer_deeplift`` included). The layer
methods here call inseq's forward through :class:`LayerRouteForward`, which
passes the attributed ids in both places; nothing of inseq is patched, the fix
lives in the method object. The proposed upstream change, with a reproduction,
is in ``docs/upstream/inseq_layer_baselines.md``.

With transformers 5 the encoder of an encoder-decoder model (T5, BART, Marian)
holds its own embedding module (sharing the weight of
``get_input_embeddings()``, which the forward pass no longer calls), so the
layer methods here default to ``model.get_encoder().get_input_embeddings()``
there (inseq's own layer methods fail with "Forward hook did not obtain any
outputs for given layer"). inseq refuses ``attribute_target=True`` for layer
methods: use the methods on the input embeddings for that.
"""

from __future__ import annotations

from typing import Any, ClassVar

try:
    from inseq.attr.attribution_decorators import set_hook
    from inseq.attr.feat.gradient_attribution import GradientAttributionRegistry
    from inseq.utils import Registry
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "captum_unified.integrations.inseq needs inseq: pip install 'captum_unified[inseq]' (or pip install inseq)."
    ) from exc

from captum_unified.attr import (
    DeepLiftRescale,
    EpsilonLRP,
    GradientXInput,
    LayerDeepLiftRescale,
    LayerEpsilonLRP,
    LayerGradientXInput,
)

__all__ = [
    "UnifiedAttribution",
    "LayerRouteForward",
    "DeepLiftRescaleAttribution",
    "EpsilonLRPAttribution",
    "EpsilonLRPGateAttribution",
    "EpsilonLRPGradientAttribution",
    "GradientXInputAttribution",
    "LayerDeepLiftRescaleAttribution",
    "LayerEpsilonLRPAttribution",
    "LayerEpsilonLRPGateAttribution",
    "LayerEpsilonLRPGradientAttribution",
    "LayerGradientXInputAttribution",
]


class LayerRouteForward:
    """inseq's forward for the layer route, fed the ids being attributed.

    Captum calls it with the ids to attribute (the input's or the baseline's)
    first, then inseq's additional arguments; inseq's forward builds its batch
    from the fixed ids among those (decoder-only: ``input_ids``, the first;
    encoder-decoder: ``encoder_input_ids``, the second after the decoder
    embeddings). Passing the attributed ids there too makes the baseline pass
    run the baseline.
    """

    def __init__(self, attribution_model: Any) -> None:
        self.attribution_model = attribution_model

    def __call__(self, ids: Any, *args: Any) -> Any:
        if self.attribution_model.is_encoder_decoder:
            # (encoder ids, decoder embeddings, encoder_input_ids, decoder_input_ids, ...)
            return self.attribution_model(ids, args[0], ids, *args[2:])
        # (decoder ids, input_ids, target_ids, ...)
        return self.attribution_model(ids, ids, *args[1:])


class UnifiedAttribution(GradientAttributionRegistry, Registry):
    """A method of this package as an inseq attribution method.

    A subclass names the inseq ``method_name``, the Captum-style class
    (``factory``), whether it is a layer method, whether it takes baselines,
    and the constructor defaults. (Like inseq's own registry bases it also
    derives from ``Registry`` directly, which keeps this base out of inseq's
    list of methods.)
    """

    method_name: ClassVar[str]
    factory: ClassVar[type]
    layer: ClassVar[bool] = False
    baselines: ClassVar[bool] = False
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, attribution_model: Any, **kwargs: Any) -> None:
        options = {**self.defaults, **kwargs}
        if self.layer:
            super().__init__(attribution_model, hook_to_model=False)
            self.attribute_batch_ids = True
            self.forward_batch_embeds = False
            hook_kwargs = {"target_layer": options.pop("target_layer")} if "target_layer" in options else {}
            self.hook(**hook_kwargs)
            self.method = self.factory(LayerRouteForward(self.attribution_model), self.target_layer, **options)
        else:
            super().__init__(attribution_model)  # inseq's hook: the model takes embeddings
            self.method = self.factory(self.attribution_model, **options)
        self.use_baselines = self.baselines

    @set_hook
    def hook(self, **kwargs: Any) -> None:
        """inseq's hook; on encoder-decoder models the layer methods default to
        the encoder's embedding module (the one its forward calls)."""
        if self.layer and "target_layer" not in kwargs and self.attribution_model.is_encoder_decoder:
            kwargs["target_layer"] = self.attribution_model.model.get_encoder().get_input_embeddings()
        super().hook(**kwargs)


# -- on the input embeddings ---------------------------------------------------


class DeepLiftRescaleAttribution(UnifiedAttribution):
    """DeepLIFT (Rescale), complete through attention and norms: :class:`~captum_unified.DeepLiftRescale`."""

    method_name = "unified_deeplift"
    factory = DeepLiftRescale
    baselines = True


class EpsilonLRPAttribution(UnifiedAttribution):
    """epsilon-LRP, products split uniformly (AttnLRP): :class:`~captum_unified.EpsilonLRP`."""

    method_name = "unified_lrp"
    factory = EpsilonLRP
    defaults = {"products": "uniform"}


class EpsilonLRPGateAttribution(UnifiedAttribution):
    """epsilon-LRP, gates and attention weights as constants (CP-LRP): :class:`~captum_unified.EpsilonLRP`."""

    method_name = "unified_lrp_gate"
    factory = EpsilonLRP
    defaults = {"products": "gate"}


class EpsilonLRPGradientAttribution(UnifiedAttribution):
    """epsilon-LRP, the ordinary product rule (Ancona et al.): :class:`~captum_unified.EpsilonLRP`."""

    method_name = "unified_lrp_gradient"
    factory = EpsilonLRP
    defaults = {"products": "gradient"}


class GradientXInputAttribution(UnifiedAttribution):
    """Gradient*Input: :class:`~captum_unified.GradientXInput`."""

    method_name = "unified_gradient_x_input"
    factory = GradientXInput


# -- layer methods (the token-embedding layer by default) ----------------------


class LayerDeepLiftRescaleAttribution(UnifiedAttribution):
    """Layer DeepLIFT (Rescale): :class:`~captum_unified.LayerDeepLiftRescale`."""

    method_name = "unified_layer_deeplift"
    factory = LayerDeepLiftRescale
    layer = True
    baselines = True


class LayerEpsilonLRPAttribution(UnifiedAttribution):
    """Layer epsilon-LRP, uniform products: :class:`~captum_unified.LayerEpsilonLRP`."""

    method_name = "unified_layer_lrp"
    factory = LayerEpsilonLRP
    layer = True
    defaults = {"products": "uniform"}


class LayerEpsilonLRPGateAttribution(UnifiedAttribution):
    """Layer epsilon-LRP, gate products: :class:`~captum_unified.LayerEpsilonLRP`."""

    method_name = "unified_layer_lrp_gate"
    factory = LayerEpsilonLRP
    layer = True
    defaults = {"products": "gate"}


class LayerEpsilonLRPGradientAttribution(UnifiedAttribution):
    """Layer epsilon-LRP, gradient products: :class:`~captum_unified.LayerEpsilonLRP`."""

    method_name = "unified_layer_lrp_gradient"
    factory = LayerEpsilonLRP
    layer = True
    defaults = {"products": "gradient"}


class LayerGradientXInputAttribution(UnifiedAttribution):
    """Layer Gradient*Activation: :class:`~captum_unified.LayerGradientXInput`."""

    method_name = "unified_layer_gradient_x_input"
    factory = LayerGradientXInput
    layer = True
