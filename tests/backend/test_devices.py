"""Every public method (the registry), the perturbation engine, occlusion and
the metrics on every available device (CUDA where present, skipped otherwise)
give the CPU numbers; the CUDA memory budget of choose_chunk."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import captum_unified as cu
from captum_unified.metrics import (
    Infidelity,
    RegionPerturbation,
    SensitivityN,
    evaluate,
    infidelity,
    region_perturbation,
    sensitivity_n,
)
from captum_unified.perturbation import (
    CUDA_MEMORY_FRACTION,
    DEFAULT_MAX_BATCH_CUDA,
    choose_chunk,
)

DEVICES = [pytest.param("cpu")] + [
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"))
]
PIX = torch.arange(36).reshape(1, 1, 6, 6)


def _setup(device):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(4 * 36, 3)).double()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(5, 2, 6, 6, dtype=torch.float64, generator=g)
    x[:, :, :2] = 0.0  # some features at the baseline: skip-unchanged applies
    y = torch.tensor([0, 1, 2, 0, 1])
    return model.to(device).eval(), x.to(device), y.to(device)


@pytest.mark.parametrize("device", DEVICES)
def test_occlusion_and_metrics_on_device_equal_cpu(device):
    model, x, y = _setup(device)
    cpu_model, cpu_x, cpu_y = _setup("cpu")
    occ = cu.Occlusion1(model).attribute(x, target=y)
    ref = cu.Occlusion1(cpu_model).attribute(cpu_x, target=cpu_y)
    assert occ.device.type == device
    torch.testing.assert_close(occ.cpu(), ref, rtol=1e-9, atol=1e-10)
    patch = cu.OcclusionPatch(model).attribute(x, feature_mask=PIX.to(device), target=y)
    torch.testing.assert_close(
        patch.cpu(),
        cu.OcclusionPatch(cpu_model).attribute(cpu_x, feature_mask=PIX, target=cpu_y),
        rtol=1e-9,
        atol=1e-10,
    )
    sn = sensitivity_n(model, x, occ, n=[1, 5], target=y, feature_mask=PIX.to(device), n_subsets=5)
    sn_ref = sensitivity_n(cpu_model, cpu_x, ref, n=[1, 5], target=cpu_y, feature_mask=PIX, n_subsets=5)
    torch.testing.assert_close(sn.output_changes.cpu(), sn_ref.output_changes, rtol=1e-9, atol=1e-10)
    inf = infidelity(model, x, occ, patch_size=2, n_perturb_samples=3, target=y)
    torch.testing.assert_close(
        inf.cpu(),
        infidelity(cpu_model, cpu_x, ref, patch_size=2, n_perturb_samples=3, target=cpu_y),
        rtol=1e-9,
        atol=1e-12,
    )
    rp = region_perturbation(model, x, occ, target=y, feature_mask=PIX.to(device), n_steps=4)
    torch.testing.assert_close(
        rp.curves.cpu(),
        region_perturbation(cpu_model, cpu_x, ref, target=cpu_y, feature_mask=PIX, n_steps=4).curves,
        rtol=1e-9,
        atol=1e-10,
    )


@pytest.mark.parametrize("device", DEVICES)
def test_evaluate_on_device_equals_cpu(device):
    model, x, y = _setup("cpu")
    metrics = [
        SensitivityN(n=[1, 5], n_subsets=4),
        Infidelity(patch_size=2, n_perturb_samples=3),
        RegionPerturbation(n_steps=3),
    ]
    methods = {"gi": cu.GradientXInput(model)}
    ref = evaluate(model, methods, (x, y), metrics, batch_size=2)
    rows = evaluate(model.to(device), methods, (x, y), metrics, batch_size=2)  # batches go to the model's device
    assert [(r["method"], r["metric"], r["param"], r["sample_index"]) for r in rows] == [
        (r["method"], r["metric"], r["param"], r["sample_index"]) for r in ref
    ]
    for a, b in zip(rows, ref):
        assert a["value"] == pytest.approx(b["value"], abs=1e-9, nan_ok=True)


def test_cuda_budget_from_free_memory():
    x = (torch.randn(32, 3, 64, 64),)  # 1.5 MiB per copy of the batch
    per_row_inputs = 3 * 64 * 64 * 4
    act = 10 * 2**20  # 10 MiB of intermediate results per row
    free = 8 * 2**30
    rows = int(CUDA_MEMORY_FRACTION * free // (act + per_row_inputs))
    assert choose_chunk(10_000, x, activation_bytes_per_row=act, free_memory_bytes=free) == rows // 32
    # small rows: the row cap applies; tiny free memory: still one copy of the batch
    assert choose_chunk(10_000, x, activation_bytes_per_row=100, free_memory_bytes=free) == DEFAULT_MAX_BATCH_CUDA // 32
    assert choose_chunk(10_000, x, activation_bytes_per_row=act, free_memory_bytes=2**20) == 1
    # the user's bounds win
    assert choose_chunk(10_000, x, max_batch_size=64, activation_bytes_per_row=act, free_memory_bytes=free) == 2
    assert choose_chunk(10_000, x, perturbations_per_eval=7, free_memory_bytes=free) == 7


@pytest.mark.parametrize("device", DEVICES)
def test_every_public_method_runs_on_the_device_and_equals_cpu(device):
    """Every entry of the method registry (tests/registry.py) on the device:
    attributions live on the input's device, in its dtype, equal the CPU
    numbers (sampled methods: the same seed), and DeepLIFT-type deltas are
    complete there too."""
    from conftest import make_mlp, randn
    from registry import METHODS

    x_cpu = randn(4, 5, seed=3)
    for entry in METHODS:
        out = {}
        for dev in ("cpu", device):
            model = make_mlp((5, 7, 6, 3), act="tanh").to(dev)
            torch.manual_seed(0)
            out[dev] = entry.make(model).attribute(x_cpu.to(dev), target=1, **entry.kwargs)
        got = out[device]
        assert got.device.type == device and got.dtype == x_cpu.dtype, entry.name
        torch.testing.assert_close(got.cpu(), out["cpu"], atol=1e-10, rtol=1e-8, msg=entry.name)

    model = make_mlp((5, 7, 6, 3), act="tanh").to(device)
    x, base = x_cpu.to(device), randn(4, 5, seed=4).to(device)
    _, delta = cu.DeepLiftRescale(model).attribute(x, baselines=base, target=1, return_convergence_delta=True)
    assert delta.device.type == device and float(delta.abs().max()) < 1e-10
