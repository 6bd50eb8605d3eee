"""Bounding-box accuracy (Schulz et al. 2020) on constructed maps with hand-computed values,
ties checked against brute force over every order of the tied pixels."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from captum_unified.metrics import bounding_box_accuracy, boxes_to_mask

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def test_box_convention_is_exclusive_like_slices():
    m = boxes_to_mask([[1, 2, 3, 5]], 4, 6)
    ref = torch.zeros(1, 4, 6, dtype=torch.bool)
    ref[0, 1:3, 2:5] = True
    assert torch.equal(m, ref)
    assert int(m.sum()) == (3 - 1) * (5 - 2)


@pytest.mark.parametrize("device", DEVICES)
def test_hand_computed_values(device):
    # 4x4 image, box rows 0..1 x cols 0..1 (4 pixels). Sample 0: the four hottest pixels
    # are the box -> 1. Sample 1: hottest 4 pixels = 3 inside + 1 outside -> 3/4.
    # Sample 2: hottest 4 pixels all outside -> 0.
    a = torch.zeros(3, 1, 4, 4, device=device)
    a[0, 0, :2, :2] = torch.tensor([[4.0, 3.0], [2.0, 1.0]])
    a[1, 0, 0, 0], a[1, 0, 0, 1], a[1, 0, 1, 0], a[1, 0, 3, 3] = 5.0, 4.0, 3.0, 6.0
    a[2, 0, 3, :] = torch.tensor([1.0, 2.0, 3.0, 4.0])
    boxes = torch.tensor([[0, 0, 2, 2]] * 3)
    acc = bounding_box_accuracy(a, boxes)
    assert acc.dtype == torch.float64 and acc.device.type == device
    assert acc.tolist() == [1.0, 0.75, 0.0]


def test_channels_are_summed_and_reduce_channels_false():
    # Channel 0 says "inside", channel 1 cancels it: the sum ranks the outside pixel first.
    a = torch.zeros(1, 2, 3, 3)
    a[0, 0, 0, 0] = 2.0
    a[0, 1, 0, 0] = -1.5  # pixel (0,0): 0.5
    a[0, 0, 2, 2] = 1.0  # pixel (2,2): 1.0
    box = [[0, 0, 1, 1]]  # one pixel
    assert bounding_box_accuracy(a, box).item() == 0.0
    assert bounding_box_accuracy(a[:, 0], box, reduce_channels=False).item() == 1.0


def test_boolean_mask_equals_box_and_unions():
    torch.manual_seed(0)
    a = torch.randn(5, 3, 8, 8)
    boxes = torch.tensor([[0, 0, 3, 3], [2, 1, 7, 4], [0, 0, 8, 8], [5, 5, 6, 6], [1, 3, 4, 8]])
    assert torch.equal(bounding_box_accuracy(a, boxes), bounding_box_accuracy(a, boxes_to_mask(boxes, 8, 8)))
    assert torch.equal(bounding_box_accuracy(a, boxes), bounding_box_accuracy(a, boxes_to_mask(boxes, 8, 8)[:, None]))
    # whole-image box: every pixel is inside
    assert bounding_box_accuracy(a, boxes)[2].item() == 1.0
    # union of two boxes as a mask: the two hottest pixels are the two one-pixel boxes
    b = torch.zeros(1, 1, 4, 4)
    b[0, 0, 0, 0], b[0, 0, 3, 3] = 2.0, 1.0
    mask = torch.zeros(1, 4, 4, dtype=torch.bool)
    mask[0, 0, 0] = mask[0, 3, 3] = True
    assert bounding_box_accuracy(b, mask).item() == 1.0


def _brute_force_expected(a, inside):
    """Mean of m/n over every order of the pixels tied at the n-th value (flat tensors)."""
    n = int(inside.sum())
    vals = sorted(a.tolist(), reverse=True)
    t = vals[n - 1]
    above = [i for i in range(a.numel()) if a[i] > t]
    tied = [i for i in range(a.numel()) if a[i] == t]
    scores = []
    for perm in itertools.permutations(tied):
        chosen = above + list(perm[: n - len(above)])
        scores.append(sum(bool(inside[i]) for i in chosen) / n)
    return sum(scores) / len(scores)


def test_ties_expected_equals_brute_force_and_constant_map_is_chance():
    g = torch.Generator().manual_seed(3)
    for trial in range(20):
        a = torch.randint(0, 3, (1, 1, 3, 3), generator=g).double()  # many ties
        top, left = int(torch.randint(0, 2, (1,), generator=g)), int(torch.randint(0, 2, (1,), generator=g))
        box = [[top, left, top + 2, left + 1 + trial % 2]]
        inside = boxes_to_mask(box, 3, 3)[0].reshape(-1)
        got = bounding_box_accuracy(a, box).item()
        assert math.isclose(got, _brute_force_expected(a.reshape(-1), inside), rel_tol=0, abs_tol=1e-12)
    const = torch.ones(2, 3, 6, 6)
    acc = bounding_box_accuracy(const, [[0, 0, 2, 3], [3, 3, 6, 6]])
    assert torch.allclose(acc, torch.tensor([6 / 36, 9 / 36], dtype=torch.float64))


def test_ties_first_takes_row_major_order():
    # Constant map, box at the bottom-right: row-major order fills the top rows first -> 0;
    # box at the top-left -> 1.
    const = torch.ones(2, 1, 4, 4)
    acc = bounding_box_accuracy(const, [[2, 2, 4, 4], [0, 0, 1, 4]], ties="first")
    assert acc.tolist() == [0.0, 1.0]
    # a tie at the threshold: values 2 (inside), 1 (inside), 1 (outside, earlier in row-major order)
    a = torch.zeros(1, 1, 2, 2)
    a[0, 0, 0, 0] = 1.0  # outside, earlier
    a[0, 0, 1, 0] = 2.0  # inside
    a[0, 0, 1, 1] = 1.0  # inside, later
    box = [[1, 0, 2, 2]]  # bottom row: 2 pixels
    assert bounding_box_accuracy(a, box, ties="first").item() == 0.5
    assert bounding_box_accuracy(a, box).item() == 0.75  # 1 + (1 slot) * (1 of 2 tied inside) = 1.5 / 2


def test_max_box_fraction_rule_gives_nan():
    a = torch.rand(3, 1, 10, 10)
    boxes = [[0, 0, 5, 6], [0, 0, 3, 10], [0, 0, 10, 10]]  # 30%, 30%, 100% of the image
    acc = bounding_box_accuracy(a, boxes, max_box_fraction=0.33)
    assert not math.isnan(acc[0]) and not math.isnan(acc[1]) and math.isnan(acc[2])
    # the rule is strict: a box of exactly the fraction is excluded
    acc = bounding_box_accuracy(a, [[0, 0, 5, 10]] * 3, max_box_fraction=0.5)
    assert bool(acc.isnan().all())
    full = bounding_box_accuracy(a, boxes)
    assert torch.equal(full[:2], bounding_box_accuracy(a, boxes, max_box_fraction=0.33)[:2])
    assert torch.nanmean(bounding_box_accuracy(a, boxes, max_box_fraction=0.33)) == full[:2].mean()


def test_box_for_all_samples_and_integer_attributions():
    a = torch.zeros(2, 1, 3, 3, dtype=torch.int64)
    a[:, 0, 1, 1] = 7
    acc = bounding_box_accuracy(a, torch.tensor([1, 1, 2, 2]))
    assert acc.tolist() == [1.0, 1.0]


@pytest.mark.parametrize(
    "kwargs, boxes, match",
    [
        ({}, [[0, 0, 0, 2]], "empty or outside"),
        ({}, [[0, 0, 2, 5]], "empty or outside"),
        ({}, [[-1, 0, 2, 2]], "empty or outside"),
        ({}, [[0, 0, 2]], r"shape \(batch, 4\)"),
        ({}, [[0, 0, 2, 2], [0, 0, 2, 2]], "2 boxes for 1 samples"),
        ({"max_box_fraction": 0.0}, [[0, 0, 2, 2]], "max_box_fraction"),
        ({"ties": "random"}, [[0, 0, 2, 2]], "ties"),
        ({}, torch.zeros(1, 4, 4, dtype=torch.bool), "empty"),
        ({}, torch.ones(1, 3, 4, dtype=torch.bool), "does not fit"),
    ],
)
def test_clear_errors(kwargs, boxes, match):
    with pytest.raises(ValueError, match=match):
        bounding_box_accuracy(torch.rand(1, 1, 4, 4), boxes, **kwargs)


def test_errors_on_attributions():
    with pytest.raises(ValueError, match="0 samples"):
        bounding_box_accuracy(torch.rand(0, 1, 4, 4), torch.zeros(0, 4, dtype=torch.long))
    a = torch.rand(2, 1, 4, 4)
    a[1, 0, 2, 2] = float("nan")
    with pytest.raises(ValueError, match="sample 1 contain NaN"):
        bounding_box_accuracy(a, [[0, 0, 2, 2]] * 2)
    with pytest.raises(ValueError, match=r"\(batch, channels, height, width\)"):
        bounding_box_accuracy(torch.rand(2, 4, 4), [[0, 0, 2, 2]] * 2)
    with pytest.raises(ValueError, match="tuple of 2"):
        bounding_box_accuracy((a, a), [[0, 0, 2, 2]] * 2)
    with pytest.raises(TypeError, match="integer pixel indices"):
        bounding_box_accuracy(torch.rand(1, 1, 4, 4), [[0.5, 0, 2, 2]])
