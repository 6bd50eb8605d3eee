"""Targets, the same in every registered method (driven by the registry):

* checks report the user's numbers (a method that repeats the batch, over
  integration steps or baselines, checks the target before it does);
* negative targets follow Captum 0.9's behaviour, checked here against Captum
  itself: a single index (an int, a tuple of ints, a one-element tensor) counts
  from the end as in Python (``target=-1`` explains the last output); a
  negative entry of a per-sample list or tensor, which Captum's
  ``torch.gather`` rejects with an index error, is a clear ``ValueError``.
"""

from __future__ import annotations

import pytest
import torch
from conftest import DTYPE, make_mlp
from registry import METHODS, ids

X = torch.tensor([[0.5, -1.0, 0.25, 2.0], [1.5, 0.75, -0.5, 0.0]], dtype=DTYPE)


def _attribute(case, target):
    model = make_mlp((4, 6, 5, 3), "tanh", seed=3)
    return case.make(model).attribute(X, target=target, **case.call_kwargs(model))


@pytest.mark.parametrize("case", METHODS, ids=ids(METHODS))
def test_wrong_target_counts_report_the_users_batch(case):
    with pytest.raises(ValueError, match=r"target list has 3 entries for a batch of 2; give one target per sample"):
        _attribute(case, [0, 1, 2])
    with pytest.raises(
        ValueError, match=r"target tensor has shape \(3,\); give one target per sample \(shape \(2,\)\)"
    ):
        _attribute(case, torch.tensor([0, 1, 2]))
    with pytest.raises(IndexError, match=r"target 3 is out of range .* 3 values per sample \(valid: 0..2, or -3..-1"):
        _attribute(case, 3)


@pytest.mark.parametrize("case", METHODS, ids=ids(METHODS))
def test_a_single_negative_index_counts_from_the_end(case):
    last = _attribute(case, 2)
    for target in (-1, (-1,), torch.tensor(-1), torch.tensor([-1])):
        torch.testing.assert_close(_attribute(case, target), last)
    torch.testing.assert_close(_attribute(case, -3), _attribute(case, 0))


@pytest.mark.parametrize("case", METHODS, ids=ids(METHODS))
def test_negative_per_sample_targets_are_a_clear_error(case):
    for target, what in ((torch.tensor([1, -1]), "tensor"), ([1, -1], "list")):
        with pytest.raises(
            ValueError, match=rf"target {what} holds -1 \(sample 1\); per-sample targets must be 0..2.*Use 2"
        ):
            _attribute(case, target)


@pytest.mark.parametrize(
    "case", [c for c in METHODS if c.entry.captum], ids=ids([c for c in METHODS if c.entry.captum])
)
def test_the_rule_is_captums(case):
    """Captum 0.9 itself: a single negative index is Python-indexed, a negative
    per-sample entry fails (in torch.gather)."""
    model = make_mlp((4, 6, 5, 3), "tanh", seed=3)
    twin = case.twin(model)
    kw = case.call_kwargs(model)
    torch.testing.assert_close(twin.attribute(X, target=-1, **kw), twin.attribute(X, target=2, **kw))
    torch.testing.assert_close(_attribute(case, -1), twin.attribute(X, target=-1, **kw), rtol=1e-6, atol=1e-7)
    for target in (torch.tensor([1, -1]), [1, -1]):
        with pytest.raises((RuntimeError, IndexError)):
            twin.attribute(X, target=target, **kw)
