"""Interoperability with Captum's tooling: NoiseTunnel, metrics.infidelity and
visualization. Captum's own methods (fed the very same noise draws) or
brute-force formulas are the oracles."""

from __future__ import annotations

import warnings

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from captum.attr import LRP as CLRP  # noqa: E402
from captum.attr import DeepLift as CDeepLift  # noqa: E402
from captum.attr import InputXGradient as CInputXGradient  # noqa: E402
from captum.attr import IntegratedGradients as CIG  # noqa: E402
from captum.attr import NoiseTunnel  # noqa: E402
from captum.attr import Occlusion as COcclusion  # noqa: E402
from captum.attr import visualization as viz  # noqa: E402
from captum.metrics import infidelity  # noqa: E402
from conftest import DTYPE, assert_close, make_cnn, make_sequential_mlp, randn  # noqa: E402

import captum_unified as cu  # noqa: E402


def _pairs(model):
    """(name, ours, captum equivalent, kwargs for ours, kwargs for captum)."""
    return [
        ("gi", cu.GradientXInput(model), CInputXGradient(model), {}, {}),
        ("ig", cu.IntegratedGradients(model), CIG(model), {"n_steps": 8}, {"n_steps": 8}),
        ("lrp", cu.EpsilonLRP(model), CLRP(model), {}, {}),
        ("dl", cu.DeepLiftRescale(model), CDeepLift(model), {"baselines": 0.1}, {"baselines": 0.1}),
        (
            "occ",
            cu.Occlusion1(model),
            COcclusion(model),
            {"baselines": 0.1},
            {"baselines": 0.1, "sliding_window_shapes": (1,)},
        ),
    ]


@pytest.mark.parametrize("nt_type", ["smoothgrad", "smoothgrad_sq", "vargrad"])
def test_noise_tunnel_with_zero_stdev_equals_plain_method(nt_type):
    model = make_sequential_mlp((5, 6, 3), "relu", seed=1)
    x = randn(3, 5, seed=2)
    for name, ours, _, kw, _ in _pairs(model):
        plain = ours.attribute(x, target=1, **kw)
        nt = NoiseTunnel(ours).attribute(x, nt_type=nt_type, nt_samples=3, stdevs=0.0, target=1, **kw)
        assert nt.shape == x.shape, name
        expected = {"smoothgrad": plain, "smoothgrad_sq": plain**2, "vargrad": torch.zeros_like(plain)}[nt_type]
        assert_close(nt.to(DTYPE), expected, atol=1e-10, msg=name)


def test_noise_tunnel_with_noise_matches_captum_methods_under_same_seed():
    model = make_sequential_mlp((5, 6, 3), "relu", seed=3)
    x = randn(3, 5, seed=4)
    for name, ours, theirs, kw, kw_c in _pairs(model):
        torch.manual_seed(77)
        a = NoiseTunnel(ours).attribute(x, nt_type="smoothgrad", nt_samples=4, stdevs=0.3, target=2, **kw)
        torch.manual_seed(77)
        b = NoiseTunnel(theirs).attribute(x, nt_type="smoothgrad", nt_samples=4, stdevs=0.3, target=2, **kw_c)
        assert_close(a.to(DTYPE), b.detach().to(DTYPE), atol=1e-8, msg=name)
        # the noise really changed something
        assert (a - ours.attribute(x, target=2, **kw)).abs().max() > 1e-6, name


def test_noise_tunnel_tuple_inputs_and_delta():
    model = make_sequential_mlp((5, 6, 3), "tanh", seed=5)
    x = randn(2, 5, seed=6)
    nt = NoiseTunnel(cu.DeepLiftRescale(model))
    attr, delta = nt.attribute((x,), nt_samples=2, stdevs=0.0, target=0, baselines=0.0, return_convergence_delta=True)
    assert isinstance(attr, tuple) and attr[0].shape == x.shape
    assert delta.shape == (2 * 2,)
    assert delta.abs().max() < 1e-10


def _remove_everything(inputs):
    """Deterministic 'perturbation' I = x, perturbed input x - I = 0."""
    return inputs, torch.zeros_like(inputs)


def test_infidelity_accepts_results_and_matches_brute_force():
    model = make_sequential_mlp((5, 6, 3), "tanh", seed=7)
    x = randn(3, 5, seed=8)
    with torch.no_grad():
        gap = model(x)[:, 1] - model(torch.zeros_like(x))[:, 1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", cu.AttributionWarning)
        attrs = {
            "gi": cu.GradientXInput(model).attribute(x, target=1),
            "ig": cu.IntegratedGradients(model).attribute(x, target=1, n_steps=64),
            "lrp": cu.EpsilonLRP(model).attribute(x, target=1),
            "dl": cu.DeepLiftRescale(model).attribute(x, target=1),
            "occ": cu.Occlusion1(model).attribute(x, target=1),
        }
    for name, a in attrs.items():
        infid = infidelity(model, _remove_everything, x, a, target=1, n_perturb_samples=2)
        expected = ((x * a).sum(1) - gap) ** 2  # E[(I.a - (S(x) - S(x - I)))^2] with I = x
        assert infid.shape == (3,)
        assert_close(infid.to(DTYPE), expected, atol=1e-10, rtol=1e-6, msg=name)

    # With I = 1 (perturbed input x - 1), DeepLIFT with baseline x - 1 is
    # complete, so I.a = sum(a) = S(x) - S(x - 1): infidelity 0.
    def minus_one(inputs):
        return torch.ones_like(inputs), inputs - 1

    dl = cu.DeepLiftRescale(model).attribute(x, baselines=x - 1, target=1)
    assert infidelity(model, minus_one, x, dl, target=1).abs().max() < 1e-18
    gi = attrs["gi"]
    assert infidelity(model, minus_one, x, gi, target=1).abs().max() > 1e-6


def test_infidelity_with_random_perturbations_matches_brute_force():
    """Captum's infidelity with random (noise) perturbations on our results:
    the same draws, recorded, give the brute-force
    E[(I . a - (S(x) - S(x - I)))^2] per sample."""
    model = make_cnn("relu", "avg", seed=9)
    x = randn(2, 2, 6, 6, seed=10)
    gen = torch.Generator().manual_seed(5)
    for m in (cu.GradientXInput(model), cu.DeepLiftRescale(model), cu.Occlusion1(model)):
        a = m.attribute(x, target=0)
        drawn = []

        def perturb(inputs, drawn=drawn):
            noise = torch.randn(inputs.shape, generator=gen, dtype=inputs.dtype) * 0.1
            drawn.append((inputs.detach().clone(), noise))
            return noise, inputs - noise

        infid = infidelity(model, perturb, x, a, target=0, n_perturb_samples=4)
        errors = [[] for _ in range(x.shape[0])]
        with torch.no_grad():
            for inputs, noise in drawn:
                for row in range(inputs.shape[0]):
                    j = next(k for k in range(x.shape[0]) if torch.equal(inputs[row], x[k]))
                    xi, ni = inputs[row : row + 1], noise[row : row + 1]
                    change = model(xi)[0, 0] - model(xi - ni)[0, 0]
                    errors[j].append(float(((ni * a[j : j + 1]).sum() - change) ** 2))
        assert all(len(e) == 4 for e in errors), [len(e) for e in errors]
        expected = torch.tensor([sum(e) / len(e) for e in errors], dtype=DTYPE)
        assert_close(infid.to(DTYPE), expected, atol=1e-12, rtol=1e-6, msg=type(m).__name__)
        assert expected.min() > 0  # a noise perturbation is no exact Taylor step: nonzero, finite


def _captum_heat_map(attr_hwc, sign, outlier_perc=2):
    """Brute force of what visualize_image_attr draws as the heat map: the
    channel sum, the sign's transform, divided by the value at which the
    sorted absolute values reach (100 - outlier_perc) % of their total, clipped
    to [-1, 1]."""
    s = attr_hwc.sum(axis=2)
    s = {"all": s, "positive": np.maximum(s, 0), "absolute_value": np.abs(s)}[sign]
    vals = np.sort(np.abs(s).ravel())
    cum = np.cumsum(vals)
    scale = vals[np.nonzero(cum >= cum[-1] * (100 - outlier_perc) / 100)[0][0]]
    return np.clip(s / scale, -1, 1)


@pytest.mark.parametrize("method", ["heat_map", "blended_heat_map", "masked_image"])
@pytest.mark.parametrize("sign", ["all", "absolute_value", "positive"])
def test_visualize_image_attr_draws_our_results(method, sign):
    """captum.attr.visualization draws exactly our attribution, normalised as
    Captum documents it (checked against a brute-force normalisation)."""
    model = make_cnn("relu", "avg", seed=11)
    x = randn(1, 2, 6, 6, seed=12)
    img = np.concatenate([x[0].permute(1, 2, 0).numpy(), np.zeros((6, 6, 1))], axis=2)
    img = (img - img.min()) / (img.max() - img.min())
    drawn = 0
    for m in (
        cu.GradientXInput(model),
        cu.IntegratedGradients(model),
        cu.EpsilonLRP(model),
        cu.DeepLiftRescale(model),
        cu.Occlusion1(model),
    ):
        a = m.attribute(x, target=1)
        a_img = a[0].permute(1, 2, 0).detach().numpy()
        a_img = np.concatenate([a_img, np.zeros((6, 6, 1))], axis=2)  # 3 channels
        if method == "masked_image" and sign == "all":
            with pytest.raises(AssertionError, match="both positive and negative"):
                viz.visualize_image_attr(a_img, img, method=method, sign=sign, use_pyplot=False)
            continue  # Captum refuses signed masks by design
        if sign == "positive" and not (a_img.sum(axis=2) > 0).any():
            continue
        fig, ax = viz.visualize_image_attr(
            a_img,
            original_image=img,
            method=method,
            sign=sign,
            use_pyplot=False,
        )
        expected = _captum_heat_map(a_img, sign)
        shown = np.asarray(ax.images[-1].get_array())
        if method == "masked_image":
            # Captum scales an image in [0, 1] to [0, 255] (as int) before masking
            original = np.clip((img * 255).astype(int), 0, 255)
            np.testing.assert_array_equal(shown, np.clip((original * expected[..., None]).astype(int), 0, 255))
        else:
            np.testing.assert_allclose(shown, expected, rtol=1e-6, atol=1e-9)
            assert len(ax.images) == (2 if method == "blended_heat_map" else 1)
        drawn += 1
        fig.clear()
    if (method, sign) != ("masked_image", "all"):
        assert drawn >= 3, f"only {drawn} methods drawn"
