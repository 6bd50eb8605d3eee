"""The perturbation engine skips occluded copies that equal their input."""

import torch
from captum.attr import Occlusion
from torch import nn

import captum_unified as cu


class CountingModel(nn.Module):
    """A small CNN taking a per-sample scale as additional argument; counts rows."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Conv2d(1, 3, 3), nn.Tanh(), nn.Flatten(), nn.Linear(3 * 4 * 4, 4))
        self.rows = 0

    def forward(self, x, scale):
        self.rows += x.shape[0]
        return self.net(x).double() * scale.view(-1, 1)


def sparse_images():
    torch.manual_seed(1)
    x = torch.rand(5, 1, 6, 6)
    x[x < 0.6] = 0.0  # most pixels equal the zero baseline
    x[0] = 0.0  # one image is entirely baseline
    return x


def test_skipped_rows_give_captum_results_with_fewer_forward_rows():
    x = sparse_images()
    scale = torch.arange(1, 6, dtype=torch.float64)
    target = [0, 1, 2, 3, 1]
    model = CountingModel()
    ours = cu.Occlusion1(model).attribute(x, target=target, additional_forward_args=(scale,), perturbations_per_eval=7)
    rows_ours = model.rows
    model.rows = 0
    theirs = Occlusion(model).attribute(
        x, sliding_window_shapes=(1, 1, 1), target=target, additional_forward_args=(scale,), perturbations_per_eval=7
    )
    torch.testing.assert_close(ours.double(), theirs.double(), atol=1e-6, rtol=1e-5)
    changed = int((x != 0).sum())
    assert rows_ours == x.shape[0] + changed  # one unperturbed pass + one row per changed pixel
    assert model.rows > rows_ours
    assert torch.count_nonzero(ours[0]) == 0


def test_all_changed_uses_plain_path():
    torch.manual_seed(2)
    x = torch.rand(3, 1, 6, 6) + 0.1
    scale = torch.ones(3, dtype=torch.float64)
    model = CountingModel()
    cu.Occlusion1(model).attribute(x, target=2, additional_forward_args=(scale,))
    assert model.rows == 3 + 3 * 36


def _conv_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 16, 3), nn.ReLU(), nn.Flatten(), nn.Linear(16 * 26 * 26, 10)).eval()


def test_engine_measures_activation_bytes_and_leaves_no_mode():
    from captum_unified._utils.call import AttributionCall
    from captum_unified.perturbation import PerturbationEngine

    model = _conv_model()
    x = torch.randn(4, 1, 28, 28)
    engine = PerturbationEngine(model, AttributionCall.format(x, target=3))
    assert torch.equal(engine.original, model(x)[:, 3])
    per_row = engine.activation_bytes_per_row
    # conv output + relu output (16*26*26 float32 each), flatten view, linear output
    conv = 16 * 26 * 26 * 4
    assert 2 * conv <= per_row <= 3 * conv + 10 * 4 + 64
    assert torch._C._len_torch_function_stack() == 0

    def broken(inp):
        torch.relu(inp)
        raise RuntimeError("model failed")

    try:
        _ = PerturbationEngine(broken, AttributionCall.format(x, target=0)).original
    except RuntimeError:
        pass
    assert torch._C._len_torch_function_stack() == 0
    assert torch.is_grad_enabled()


def test_choose_chunk_bounds_rows_by_activations_on_cpu_unless_max_batch_size_given():
    from captum_unified.perturbation import DEFAULT_MAX_ACTIVATION_MB, DEFAULT_MAX_BATCH, choose_chunk

    x = (torch.randn(32, 1, 28, 28),)
    budget = int(DEFAULT_MAX_ACTIVATION_MB * 2**20)
    # a CNN-like working set: a few rows per pass
    assert choose_chunk(784, x, activation_bytes_per_row=budget // 100) == 100 // 32
    # a tiny MLP: the row bound applies
    assert choose_chunk(784, x, activation_bytes_per_row=1000) == DEFAULT_MAX_BATCH // 32
    # huge activations: still one copy of the batch per pass
    assert choose_chunk(784, x, activation_bytes_per_row=budget) == 1
    # an explicit max_batch_size is the user's choice
    assert choose_chunk(784, x, max_batch_size=512, activation_bytes_per_row=budget) == 16
    assert choose_chunk(784, x, perturbations_per_eval=5, activation_bytes_per_row=budget) == 5


def test_activation_bound_does_not_change_occlusion_results():
    model = _conv_model()
    x = torch.randn(3, 1, 28, 28, dtype=torch.float64)
    model = model.double()
    auto = cu.Occlusion1(model).attribute(x, target=2)
    big = cu.Occlusion1(model).attribute(x, target=2, max_batch_size=1024)
    theirs = Occlusion(model).attribute(x, sliding_window_shapes=(1, 1, 1), target=2, perturbations_per_eval=64)
    torch.testing.assert_close(auto, big, rtol=0, atol=1e-10)
    # Captum 0.9 accumulates this case in float32
    torch.testing.assert_close(auto, theirs.to(auto.dtype), rtol=1e-5, atol=1e-6)
