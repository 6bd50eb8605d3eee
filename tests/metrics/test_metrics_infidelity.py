import pytest
import torch
from captum.metrics import infidelity as captum_infidelity
from torch import nn

import captum_unified as cu
from captum_unified.metrics import infidelity, square_masks, square_removal_perturbation


def _cnn():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 6 * 6, 4)).double()


def _linear_img():
    torch.manual_seed(1)
    return nn.Sequential(nn.Flatten(), nn.Linear(2 * 6 * 6, 4)).double()


def _replay(squares, multiply_by_inputs, baseline=0.0):
    """A Captum perturb_func removing our squares: Captum expands the inputs with
    repeat_interleave (row i * T + t) when all T perturbations go in one pass."""
    m = squares.transpose(0, 1).reshape((-1,) + tuple(squares.shape[2:]))

    def perturb(x, baselines=None):
        b = torch.as_tensor(baseline, dtype=x.dtype)
        xp = torch.where(m, b, x)
        if multiply_by_inputs:
            return (m & (x != b)).to(x.dtype), xp
        return x - xp, xp

    return perturb


def test_equals_captum_for_the_same_squares():
    model = _cnn()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 2, 6, 6, dtype=torch.float64, generator=g)
    a = torch.randn(3, 2, 6, 6, dtype=torch.float64, generator=g)
    (squares,) = square_masks((x,), 3, 7, seed=5)
    assert squares.shape == (7, 3, 1, 6, 6)
    for normalize in (False, True):
        for mbi in (True, False):
            ref = captum_infidelity(
                model, _replay(squares, mbi), x, a, target=1, n_perturb_samples=7, normalize=normalize
            )
            for mepb in (None, 6):
                ours = infidelity(
                    model,
                    x,
                    a,
                    patch_size=3,
                    n_perturb_samples=7,
                    target=1,
                    seed=5,
                    normalize=normalize,
                    max_examples_per_batch=mepb,
                    multiply_by_inputs=mbi,
                )
                torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
    # another seed gives other squares
    other = infidelity(model, x, a, patch_size=3, n_perturb_samples=7, target=1, seed=6)
    assert not torch.equal(other, infidelity(model, x, a, patch_size=3, n_perturb_samples=7, target=1, seed=5))


def test_squares_depend_on_the_sample_index_not_the_batch():
    x = torch.randn(6, 1, 9, 9, dtype=torch.float64)
    (full,) = square_masks((x,), 3, 5, seed=2)
    (part,) = square_masks((x[2:4],), 3, 5, seed=2, sample_ids=[2, 3])
    assert torch.equal(full[:, 2:4], part)
    model = _cnn()
    x = torch.randn(6, 2, 6, 6, dtype=torch.float64)
    a = torch.randn_like(x)
    whole = infidelity(model, x, a, patch_size=3, target=0, seed=1)
    halves = torch.cat(
        [
            infidelity(model, x[:3], a[:3], patch_size=3, target=0, seed=1),
            infidelity(model, x[3:], a[3:], patch_size=3, target=0, seed=1, sample_ids=[3, 4, 5]),
        ]
    )
    torch.testing.assert_close(whole, halves, rtol=1e-12, atol=1e-12)


def test_complete_attribution_on_linear_model_is_zero():
    model = _linear_img()
    x = torch.randn(4, 2, 6, 6, dtype=torch.float64)
    target = torch.tensor([0, 1, 2, 3])
    a = cu.GradientXInput(model).attribute(x, target=target)
    inf = infidelity(model, x, a, patch_size=4, n_perturb_samples=20, target=target)
    assert inf.shape == (4,)
    assert torch.all(inf.abs() < 1e-20)
    # with a nonzero baseline, Gradient * (x - baseline) is the complete one
    base = torch.full((1, 2, 6, 6), 0.3, dtype=torch.float64)
    grads = torch.stack([model[1].weight[t].reshape(2, 6, 6) for t in target.tolist()]).detach()
    a_b = grads * (x - base)
    inf_b = infidelity(model, x, a_b, patch_size=4, n_perturb_samples=20, target=target, baselines=base)
    assert torch.all(inf_b.abs() < 1e-20)
    # gradient-like attributions with Yeh et al.'s perturbation I = x - x~ (multiply_by_inputs=False)
    inf_g = infidelity(
        model, x, grads, patch_size=4, n_perturb_samples=20, target=target, baselines=base, multiply_by_inputs=False
    )
    assert torch.all(inf_g.abs() < 1e-20)
    # and a wrong attribution is not
    assert torch.all(infidelity(model, x, 2 * a, patch_size=4, n_perturb_samples=20, target=target) > 1e-6)


def test_square_shape_and_border():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(400, 3, 5, 7, dtype=torch.float64) + 10.0
    pert, xp = square_removal_perturbation(3, baselines=0.0, generator=gen, multiply_by_inputs=False)(x)
    removed = xp == 0
    # all channels removed together, exactly a 3x3 square per row
    assert torch.equal(removed, removed[:, :1].expand_as(removed))
    m = removed[:, 0]
    assert torch.all(m.sum((1, 2)) == 9)
    rows = m.any(2).int()
    cols = m.any(1).int()
    assert torch.all(rows.sum(1) == 3) and torch.all(cols.sum(1) == 3)
    # contiguous
    assert torch.all((rows.diff(dim=1) != 0).sum(1) <= 2) and torch.all((cols.diff(dim=1) != 0).sum(1) <= 2)
    # squares touching each border are drawn, and every pixel is covered sometimes
    assert m[:, 0, :].any() and m[:, -1, :].any() and m[:, :, 0].any() and m[:, :, -1].any()
    assert m.any(0).all()
    # Captum's sign convention: perturbed input = x - I
    torch.testing.assert_close(x - pert, xp, rtol=0, atol=0)
    torch.testing.assert_close(pert, torch.where(removed, x, torch.zeros_like(x)))
    ind, xp2 = square_removal_perturbation(3, seed=1)(x)
    assert set(ind.unique().tolist()) == {0.0, 1.0} and torch.all(ind.sum((1, 2, 3)) == 27)


def test_patch_larger_than_image_and_tuple_inputs():
    f = square_removal_perturbation(10, baselines=(1.0, torch.tensor(2.0)), seed=0, multiply_by_inputs=False)
    x1 = torch.zeros(2, 1, 4, 4)
    x2 = torch.zeros(2, 6)
    (p1, p2), (y1, y2) = f((x1, x2))
    assert torch.all(y1 == 1.0) and torch.all(y2 == 2.0)
    assert torch.all(p1 == -1.0) and torch.all(p2 == -2.0)
    with pytest.raises(ValueError):
        square_removal_perturbation(0)


def test_per_sample_baselines_and_no_global_rng():
    model = _cnn()
    x = torch.randn(3, 2, 6, 6, dtype=torch.float64)
    a = torch.randn_like(x)
    base = torch.randn(3, 2, 6, 6, dtype=torch.float64)
    state = torch.get_rng_state()
    r = infidelity(model, x, a, n_perturb_samples=5, target=0, baselines=base)
    assert torch.equal(state, torch.get_rng_state())
    assert r.shape == (3,) and torch.isfinite(r).all()
