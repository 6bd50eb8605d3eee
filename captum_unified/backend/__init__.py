r"""The unified backend: the modified chain rule of Ancona et al. (ICLR 2018, §3),
extended to every op a model calls (docs: *What the backend does with each op*).

One function, :func:`modified_gradients`, computes

.. math::

    \frac{\partial^g S_c(x)}{\partial x_i} = \sum_{p \in P_{ic}}
        \Big(\prod w_p \prod g(z)_p\Big),

the gradient of the selected output with every element-wise nonlinearity's
derivative replaced by a :class:`~captum_unified.rules.Rule`'s :math:`g`, every
product of two input-dependent values differentiated by the rule's product
policy, and composite ops (max-pooling, LayerNorm, softmax, LSTM/GRU/RNN,
attention, ...) decomposed into those. Gradient*Input, Integrated Gradients,
epsilon-LRP and DeepLIFT (Rescale) and their layer versions are all built on it.

The package in one picture
--------------------------

::

    attr/_core/*.py   AttributionCall (formatted once)
          |
          v
    gradients.py      modified_gradients(forward_func, call, rule, layer=...)
          |             baseline pass (recording)  ->  input pass (replaying)
          |             -> warnings -> one torch.autograd.grad -> BackendResult
          |           layers.py: LayerCapture hooks (layer methods), removed in finally
          v
    context.py        RuleContext (a TorchFunctionMode): one pass's state and the
          |             rule's application: elementwise / product / kmax / pooled_max
          |-- taint.py     TaintTracker: input-dependent tensors, masks, gates, rule outputs
          |-- tape.py      ReferenceTape: records of the baseline pass, paired in call order
          |-- report.py    Report: rule checks, product warnings, unknown ops, selections
          |-- ledger_pass.py  LedgerPass: relevance in / out per op (opt-in,
          |                relevance_ledger); ledger_hooks.py its autograd hooks,
          |                ledger.py the account (RelevanceLedger) and its warning
          v
    dispatch.py       dispatch(ctx, func, args, kwargs): one handler per OpKind;
          |             every op fact from the op table (captum_unified.ops)
          |-- calls.py     call normalisation: input= / inplace= / in-place methods,
          |                the tensor a call writes into, Python-level torch functions
          v
    functions.py      autograd functions: ElementwiseRule (grad * g), BilinearRule
                        (product policy), MaxRule / MaxPoolRule (DeepLIFT's max rule)

How a call flows: an attribution class formats its arguments once into an
:class:`~captum_unified._utils.call.AttributionCall` and calls
:func:`modified_gradients` with it and its rule. When the rule needs the
baseline's values (``needs_reference``) the model runs once on the baselines
inside a recording :class:`RuleContext` (a batch of one when the baseline is
shared), which records the inputs of every op the rule treats. Then the
model runs on the inputs inside a replaying :class:`RuleContext`: the mode
sees every torch call the model makes, however it makes it (``nn.ReLU``,
``F.relu``, ``torch.tanh(input=z)``, ``x.sigmoid_()``, one module used at
several places, a fused ``nn.LSTM``); the dispatcher classifies each call by
the :class:`~captum_unified.ops.OpTable` passed in and treats it:

* calls whose tensors do not depend on the inputs run untouched;
* meta and linear ops run untouched (ordinary gradient);
* element-wise ops run through :class:`~captum_unified.backend.functions.ElementwiseRule`,
  whose backward multiplies by the rule's :math:`g(z)` (with the paired
  baseline record when the rule needs one); in-place calls are computed out
  of place and copied back, so the model computes exactly what it computes
  without us;
* products of two input-dependent values run through
  :class:`~captum_unified.backend.functions.BilinearRule`, whose backward
  follows the rule's product policy;
* composite ops are computed by their decomposition with the mode active (or
  by a fused kernel that calls the rule where the decomposition would);
* Python-level torch functions (``F.multi_head_attention_forward``) are
  followed op by op;
* anything else is *unknown*: it keeps its gradient and the call warns once,
  naming it.

After the pass the context's warnings are raised, and one
:func:`torch.autograd.grad` of the selected outputs gives the gradients.

Nothing is attached to the model: no hooks on its modules (except a layer
hook that layer methods need, removed in ``finally``), no patched functions,
no changed flags; buffers a forward pass changes (BatchNorm running statistics
in train mode) are restored (:func:`~captum_unified._utils.state.preserve_model_state`).
Nothing global changes either: the rule, the op table and every mark of the
pass are values held by the context of one call.

Extending: a rule is :mod:`captum_unified.rules`' business (its file and one
registry line), an op the op table's (its row in :mod:`captum_unified.ops`);
neither touches this package.
"""

from captum_unified.backend.context import RuleContext
from captum_unified.backend.gradients import BackendResult, modified_gradients

__all__ = ["RuleContext", "modified_gradients", "BackendResult"]
