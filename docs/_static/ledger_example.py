"""The relevance-ledger example of docs/pages/01_unified_backend.rst (its output
there is written by docs/_static/make_ledger_example.py from running this file)."""

import textwrap
import warnings

import torch
from torch import nn

import captum_unified as cu

torch.manual_seed(0)


class GatedMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.inp, self.gate = nn.Linear(6, 8), nn.Linear(6, 8)
        self.norm = nn.LayerNorm(8)
        self.out = nn.Linear(8, 3)

    def forward(self, x):
        h = torch.relu(self.inp(x)) * torch.sigmoid(self.gate(x))  # a gated unit
        return self.out(self.norm(h))


model = GatedMLP().eval()
x = torch.randn(4, 6)

lrp = cu.EpsilonLRP(model, products="gate")
with cu.relevance_ledger(lrp) as ledger:
    attr = lrp.attribute(x, target=1)
print(ledger)
print(f"sum of attributions: {attr.sum():.6g}")

lrp = cu.EpsilonLRP(model, products="gate", norm="gradient")
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    with cu.relevance_ledger(lrp) as ledger:
        lrp.attribute(x, target=1)
for w in caught:
    print(textwrap.fill(f"{w.category.__name__}: {w.message}", 88, subsequent_indent="  "))
