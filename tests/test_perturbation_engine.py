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
    ours = cu.Occlusion1(model).attribute(x, target=target, additional_forward_args=(scale,),
                                          perturbations_per_eval=7)
    rows_ours = model.rows
    model.rows = 0
    theirs = Occlusion(model).attribute(x, sliding_window_shapes=(1, 1, 1), target=target,
                                        additional_forward_args=(scale,), perturbations_per_eval=7)
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
