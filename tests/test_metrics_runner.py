import csv
import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import captum_unified as cu
from captum_unified.metrics import FIELDS, evaluate, sensitivity_n


def _setup():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 5 * 5, 3)).double()
    g = torch.Generator().manual_seed(3)
    x = torch.randn(7, 1, 5, 5, dtype=torch.float64, generator=g)
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0])
    return model, x, y


class Counting:
    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def __call__(self, inputs, target):
        self.calls += 1
        return self.fn(inputs, target)


def _key(rows):
    return [(r["method"], r["n"], r["sample_index"], repr(r["correlation"])) for r in rows]


def test_rows_match_sensitivity_n_and_captum_objects():
    model, x, y = _setup()
    gxi = cu.GradientXInput(model)
    state = torch.get_rng_state()
    rows = evaluate(model, {"gxi": gxi, "input": lambda i, t: i.clone()},
                    (x, y), n_list=[1, 4, 20], n_subsets=10, batch_size=4)
    assert torch.equal(state, torch.get_rng_state())
    assert all(tuple(r) == FIELDS for r in rows)
    per = [r for r in rows if r["method"] == "gxi" and r["sample_index"] != "pooled"]
    assert len(per) == 3 * 7 and sorted({r["sample_index"] for r in per}) == list(range(7))
    pooled = [r for r in rows if r["method"] == "gxi" and r["sample_index"] == "pooled"]
    assert [r["n"] for r in pooled] == [1, 4, 20]
    # batch 1 (samples 4..6) equals a direct call with the runner's seed
    res = sensitivity_n(model, x[4:], gxi.attribute(x[4:], target=y[4:]), n=[1, 4, 20], target=y[4:],
                        feature_mask=torch.arange(25).reshape(1, 1, 5, 5), n_subsets=10, seed=1)
    got = {(r["n"], r["sample_index"]): r["correlation"] for r in per}
    for j, n in enumerate([1, 4, 20]):
        for i in range(3):
            assert got[(n, 4 + i)] == pytest.approx(float(res.correlations[i, j]), nan_ok=True)


def test_resume_skips_finished_methods(tmp_path):
    model, x, y = _setup()
    loader = DataLoader(TensorDataset(x, y), batch_size=3)
    gxi = cu.GradientXInput(model)
    fns = {
        "a": lambda i, t: gxi.attribute(i, target=t),
        "b": lambda i, t: 2 * gxi.attribute(i, target=t) + 0.1 * i,
        "c": lambda i, t: i.clone(),
    }
    kw = dict(n_list=[1, 5], n_subsets=8, seed=4)
    full = evaluate(model, {k: Counting(f) for k, f in fns.items()}, loader, **kw)

    path = tmp_path / "rows.csv"
    first = {k: Counting(fns[k]) for k in ("a", "b")}
    part = evaluate(model, first, loader, csv_path=path, **kw)
    assert _key(part) == _key(full[: len(part)])
    # simulate a crash in the middle of method "c": a few rows without its pooled rows
    with open(path, "a", newline="") as fh:
        csv.writer(fh).writerow(["c", 1, 0, 0.5])
        fh.write("c,1,1")  # truncated line
    again = {k: Counting(f) for k, f in fns.items()}
    resumed = evaluate(model, again, loader, csv_path=path, **kw)
    assert again["a"].calls == 0 and again["b"].calls == 0 and again["c"].calls == 3
    assert _key(resumed) == _key(full)
    with open(path, newline="") as fh:
        on_disk = list(csv.DictReader(fh))
    assert len(on_disk) == len(full)
    # all done: nothing recomputed, identical rows
    third = {k: Counting(f) for k, f in fns.items()}
    assert _key(evaluate(model, third, loader, csv_path=path, **kw)) == _key(full)
    assert all(c.calls == 0 for c in third.values())


def test_nan_round_trip_and_bad_file(tmp_path):
    model, x, y = _setup()
    zero = {"zero": lambda i, t: torch.zeros_like(i)}
    path = tmp_path / "z.csv"
    with pytest.warns(Warning):
        rows = evaluate(model, zero, (x, y), n_list=[2], n_subsets=5, csv_path=path)
    again = evaluate(model, zero, (x, y), n_list=[2], n_subsets=5, csv_path=path)
    assert all(math.isnan(r["correlation"]) for r in again) and _key(again) == _key(rows)
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError):
        evaluate(model, zero, (x, y), n_list=[2], n_subsets=5, csv_path=bad)
