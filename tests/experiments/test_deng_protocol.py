"""Deng et al.'s evaluation protocol, checked against hand computations and Captum.

* DeepLIFT's per-layer d (Table 3: "we compute the percentage change of each
  layer and then average them"): Theorem 4's relevance a_ij written out with
  explicit weight matrices, no autograd, on a small sigmoid MLP.
* Yeh et al.'s square-removal infidelity: equals ``captum.metrics.infidelity``
  with the same squares, scaled and unscaled; Yeh's square count.
* Table 2 as SPEC §6 states it.
"""

import pytest
import torch
from torch import nn

import captum_unified as cu
from captum_unified.experiments import deng
from captum_unified.experiments.yeh_infidelity import (
    square_infidelity,
    square_masks,
    square_sums,
    square_table,
)
from captum_unified.taylor import deeplift_layer_reformulation, deeplift_reformulation

torch.set_default_dtype(torch.float32)


def _mlp(seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 5), nn.Sigmoid(), nn.Linear(5, 3), nn.Sigmoid(), nn.Linear(3, 2)).double().eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def _sig(z):
    return 1 / (1 + torch.exp(-z))


def _hand(model, x, b, t):
    """Per-layer DeepLIFT relevances and their Theorem-4 reformulations, written out.

    Returns {layer: (deeplift, local reform, propagated reform)} for the input
    (layer 0) and the first hidden layer (layer 1)."""
    W1, b1, W2, b2, W3 = model[0].weight, model[0].bias, model[2].weight, model[2].bias, model[4].weight
    out = {}
    for i in range(len(x)):
        h0, g0 = x[i], b[i]
        y1, yb1 = W1 @ h0 + b1, W1 @ g0 + b1
        h1, g1 = _sig(y1), _sig(yb1)
        y2, yb2 = W2 @ h1 + b2, W2 @ g1 + b2
        h2, g2 = _sig(y2), _sig(yb2)
        w_top = W3[t[i]]  # relevance of h2_j per unit change of h2_j: the top layer is linear
        # layer 1 (h1 -> h2 through sigma_2): a_ij = (z_ji - zb_ji) / (sum_i' ...) * a_j
        a2 = w_top * (h2 - g2)  # DeepLIFT relevance of h2_j
        dz2 = W2 * (h1 - g1)[None, :]  # (j, i): z_ji - zb_ji
        dy2 = y2 - yb2
        dl_1 = (dz2 / dy2[:, None] * a2[:, None]).sum(0)
        s2 = _sig(y2)
        d1_2, d2_2 = s2 * (1 - s2), s2 * (1 - s2) * (1 - 2 * s2)
        # Theorem 4: sigma'(y_j) (z_ji - zb_ji) + (z_ji - zb_ji) / dy_j * T_j, T_j = -1/2 sigma''(y_j) dy_j^2
        per_unit = w_top  # a_j^(l+1) / Delta x_j^(l+1)
        rf_1 = ((d1_2[:, None] * dz2 + dz2 / dy2[:, None] * (-0.5 * d2_2 * dy2**2)[:, None]) * per_unit[:, None]).sum(0)
        # layer 0 (x -> h1 through sigma_1), with DeepLIFT's relevance of h1 (local) or the reformulated one
        dz1 = W1 * (h0 - g0)[None, :]
        dy1 = y1 - yb1
        s1 = _sig(y1)
        d1_1, d2_1 = s1 * (1 - s1), s1 * (1 - s1) * (1 - 2 * s1)
        dl_0 = (dz1 / dy1[:, None] * dl_1[:, None]).sum(0)
        step = d1_1[:, None] * dz1 + dz1 / dy1[:, None] * (-0.5 * d2_1 * dy1**2)[:, None]
        local_0 = (step * (dl_1 / (h1 - g1))[:, None]).sum(0)
        prop_0 = (step * (rf_1 / (h1 - g1))[:, None]).sum(0)
        for layer, vals in ((0, (dl_0, local_0, prop_0)), (1, (dl_1, rf_1, rf_1))):
            out.setdefault(layer, ([], [], []))
            for lst, v in zip(out[layer], vals):
                lst.append(v)
    return {k: tuple(torch.stack(v) for v in vs) for k, vs in out.items()}


def _d(o, r):
    return float(((o - r) ** 2).sum(1).div((o**2).sum(1)).mean() * 100)


@pytest.fixture
def case():
    model = _mlp()
    g = torch.Generator().manual_seed(1)
    x = torch.rand(6, 4, generator=g, dtype=torch.float64) * 3
    b = torch.zeros_like(x) - 0.5
    t = torch.tensor([0, 1, 0, 1, 1, 0])
    return model, x, b, t


def test_layer_deeplift_matches_theorem4_relevances(case):
    model, x, b, t = case
    hand = _hand(model, x, b, t)
    for layer, module in ((0, model[0]), (1, model[2])):
        ours = cu.LayerDeepLiftRescale(model, module).attribute(x, baselines=b, target=t, attribute_to_layer_input=True)
        torch.testing.assert_close(ours, hand[layer][0], atol=1e-10, rtol=1e-8)


@pytest.mark.parametrize("upstream, which", [("deeplift", 1), ("taylor", 2)])
def test_layer_reformulation_matches_hand(case, upstream, which):
    model, x, b, t = case
    hand = _hand(model, x, b, t)
    reform = deeplift_layer_reformulation(model, x, b, t, upstream=upstream)
    assert [m for m, _ in reform] == [model[0], model[2]]
    for layer, (_, a) in enumerate(reform):
        torch.testing.assert_close(a, hand[layer][which], atol=1e-10, rtol=1e-8)


@pytest.mark.parametrize("upstream, which", [("deeplift", 1), ("taylor", 2)])
def test_per_layer_d_equals_hand_computation(case, upstream, which):
    model, x, b, t = case
    hand = _hand(model, x, b, t)
    got = deng.deeplift_layer_d(model, x, -0.5, t, upstream=upstream)
    want = [_d(hand[k][0], hand[k][which]) for k in (0, 1)]
    assert [name for name, _ in got] == ["input", "after Sigmoid (module 1)", "output layer"]
    for (_, d), w in zip(got, want):
        assert d == pytest.approx(w, rel=1e-8, abs=1e-12)
    # the output layer: no nonlinearity follows, DeepLIFT's relevance w_cj (h_j - h_bar_j) is its reformulation
    assert got[2][1] < 1e-20
    assert min(want) > 1e-6  # a real, non-trivial second-order deviation
    # the Table-3 entry is their mean
    rows, layer_rows = deng.table3_rows(model, "M-sg", x, t, -0.5, 8, {"IG": torch.zeros_like(x) + 1}, methods=("DL",))
    mean = next(r for r in layer_rows if r["layer"] == "mean over layers" and r["upstream"] == "deeplift")
    assert rows[0]["d_percent"] == pytest.approx(sum(_d(hand[k][0], hand[k][1]) for k in (0, 1)) / 2, rel=1e-8)
    assert mean["d_percent"] == rows[0]["d_percent"]
    counted = next(r for r in layer_rows if r["layer"] == "mean over layers, output layer counted")
    assert counted["d_percent"] == pytest.approx(rows[0]["d_percent"] * 2 / 3, rel=1e-12)


def test_exact_remainder_reproduces_deeplift_at_every_layer(case):
    model, x, b, t = case
    for (module, a), ref_module in zip(
        deeplift_layer_reformulation(model, x, b, t, remainder="exact"), (model[0], model[2])
    ):
        assert module is ref_module
        ref = cu.LayerDeepLiftRescale(model, module).attribute(x, baselines=b, target=t, attribute_to_layer_input=True)
        torch.testing.assert_close(a, ref, atol=1e-10, rtol=1e-8)
    # at the input, the propagated reading is deeplift_reformulation
    prop = deeplift_layer_reformulation(model, x, b, t, upstream="taylor")[0][1]
    torch.testing.assert_close(prop, deeplift_reformulation(model, x, b, t), atol=1e-12, rtol=1e-10)


def test_layer_reformulation_rejects_bad_arguments(case):
    model, x, b, t = case
    with pytest.raises(ValueError, match="upstream"):
        deeplift_layer_reformulation(model, x, b, t, upstream="nope")
    with pytest.raises(TypeError, match="nn.Sequential"):
        deeplift_layer_reformulation(lambda z: z, x, b, t)


# ---------------------------------------------------------------- infidelity
def test_yeh_square_count_and_order():
    table = square_table(28, 28)
    assert len(table) == sum((29 - r) ** 2 for r in range(1, 11)) == 5605
    assert table[0].tolist() == [1, 0, 0] and table[1].tolist() == [1, 0, 1] and table[28].tolist() == [1, 1, 0]
    assert table[-1].tolist() == [10, 18, 18]
    with pytest.raises(ValueError, match="does not fit"):
        square_table(8, 8, (9,))


def test_square_sums_match_masks():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(2, 3, 7, 6, generator=g, dtype=torch.float64)
    sizes = (1, 3)
    table = square_table(7, 6, sizes)
    (m,) = square_masks(table, (3, 7, 6))(0, len(table))
    want = (m[:, 0].unsqueeze(1) * a.unsqueeze(0)).flatten(2).sum(-1).T  # (B, K)
    torch.testing.assert_close(square_sums(a, sizes), want)


@pytest.mark.parametrize("normalize", [True, False])
def test_square_infidelity_equals_captum(normalize):
    from captum.metrics import infidelity

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Sigmoid(), nn.Flatten(), nn.Linear(2 * 6 * 6, 3)).double().eval()
    g = torch.Generator().manual_seed(2)
    x = torch.rand(4, 1, 8, 8, generator=g, dtype=torch.float64)
    x[:, :, :2] = 0  # background rows: squares there change nothing (the engine skips them)
    a = torch.randn(4, 1, 8, 8, generator=g, dtype=torch.float64)
    t = torch.tensor([0, 1, 2, 0])
    sizes = (1, 2, 3)
    table = square_table(8, 8, sizes)
    masks = square_masks(table, (1, 8, 8))(0, len(table))[0][:, 0]  # (K, 1, 8, 8)

    def perturb(inputs, baselines=None):  # square k for row k (Captum repeats each sample K times)
        m = masks[torch.arange(inputs.shape[0]) % len(table)]
        return m.to(inputs.dtype), torch.where(m, torch.zeros_like(inputs), inputs)

    ref = infidelity(model, perturb, x, a, target=t, n_perturb_samples=len(table), normalize=normalize)
    ours = square_infidelity(model, x, {"a": a}, t, 0.0, sizes)["a"]["scaled" if normalize else "unscaled"]
    torch.testing.assert_close(ours, ref.double(), rtol=1e-9, atol=1e-12)


def test_table2_principles():
    t2 = {r["method"]: r for r in deng.table2_rows()}
    counts = {m: t2[m]["principles"] for m in ("GI", "Occ-1", "Occ-p", "DL", "eps-LRP", "IG", "EG")}
    assert counts == {"GI": 0, "Occ-1": 0.5, "Occ-p": 0.5, "DL": 1, "eps-LRP": 1, "IG": 2, "EG": 3}
    assert "partially" in t2["Occ-1"]["note"] and "partially" in t2["Occ-p"]["note"]
    assert t2["DL"]["low_approximation_error"] == 1 and t2["IG"]["correct_assignment"] == 1
    assert t2["EG"]["unbiased_baseline"] == 1
