import copy
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


_THREE = {
    "a": lambda i, t: i.clone(),
    "b": lambda i, t: 2 * i + 0.1 * i.pow(2),
    "c": lambda i, t: i.pow(3),
}


def _full_run(tmp_path, name="full.csv"):
    model, x, y = _setup()
    path = tmp_path / name
    kw = dict(n_list=[1, 8, 16, 25], n_subsets=6, seed=2, batch_size=3)
    full = evaluate(model, _THREE, (x, y), csv_path=path, **kw)
    return model, x, y, path, kw, full


@pytest.mark.filterwarnings("ignore::captum_unified.AttributionWarning")
def test_resume_after_cut_inside_pooled_block(tmp_path):
    # the run stopped right after the first pooled row of the last method
    model, x, y, path, kw, full = _full_run(tmp_path)
    assert len(full) == 3 * 4 * (7 + 1)
    lines = path.read_bytes().split(b"\r\n")
    cut = next(k for k, line in enumerate(lines) if line.startswith(b"c,1,pooled,"))
    path.write_bytes(b"\r\n".join(lines[: cut + 1]) + b"\r\n")
    again = {k: Counting(f) for k, f in _THREE.items()}
    resumed = evaluate(model, again, (x, y), csv_path=path, **kw)
    assert [again[k].calls for k in "abc"] == [0, 0, 3]
    assert _key(resumed) == _key(full)
    assert _key(evaluate(model, _THREE, (x, y), csv_path=path, **kw)) == _key(full)
    with open(path, newline="") as fh:
        assert len(list(csv.DictReader(fh))) == len(full)


@pytest.mark.filterwarnings("ignore::captum_unified.AttributionWarning")
def test_resume_discards_last_line_cut_mid_number(tmp_path):
    # a number cut mid-line parses (0.998982031 of 0.9989820312...): the missing
    # newline tells that the line is incomplete
    model, x, y, path, kw, full = _full_run(tmp_path)
    data = path.read_bytes()
    assert data.endswith(b"\r\n")
    last = data[:-2].rsplit(b"\r\n", 1)[1]
    assert last.startswith(b"c,25,pooled,") and len(last) > len(b"c,25,pooled,0.9")
    path.write_bytes(data[:-5])  # newline and three digits lost
    again = {k: Counting(f) for k, f in _THREE.items()}
    resumed = evaluate(model, again, (x, y), csv_path=path, **kw)
    assert [again[k].calls for k in "abc"] == [0, 0, 3]
    assert _key(resumed) == _key(full)
    assert path.read_bytes() == data  # the file is whole again
    # a cut inside a per-sample row of the first method
    lines = data.split(b"\r\n")
    path.write_bytes(b"\r\n".join(lines[:5]) + b"\r\n" + lines[5][:7])
    again = {k: Counting(f) for k, f in _THREE.items()}
    assert _key(evaluate(model, again, (x, y), csv_path=path, **kw)) == _key(full)
    assert [again[k].calls for k in "abc"] == [3, 3, 3]


@pytest.mark.filterwarnings("ignore::captum_unified.AttributionWarning")
def test_resume_with_other_settings_raises(tmp_path):
    model, x, y, path, kw, full = _full_run(tmp_path)
    with pytest.raises(ValueError, match="n_list"):
        evaluate(model, _THREE, (x, y), csv_path=path, **{**kw, "n_list": [1, 8, 16]})
    with pytest.raises(ValueError, match="samples"):
        evaluate(model, _THREE, (x[:5], y[:5]), csv_path=path, **kw)
    loader = DataLoader(TensorDataset(x[:6], y[:6]), batch_size=3)
    with pytest.raises(ValueError, match="samples"):
        evaluate(model, {**_THREE, "d": lambda i, t: -i}, loader, csv_path=path, **kw)


def test_pooled_tolerance_is_the_output_dtype_one():
    # float64 inputs, float32 outputs: nearly constant attributions (relative
    # spread 1e-9) are constant for float32 outputs (tolerance 100 eps of float32)
    model, x, y = _setup()
    m32 = copy.deepcopy(model).float()

    def f(inp):
        return m32(inp.float())

    def flat(i, t):
        return torch.ones_like(i) + 1e-9 * i

    with pytest.warns(Warning):
        rows = evaluate(f, {"flat": flat}, (x, y), n_list=[5], n_subsets=10, batch_size=7)
    with pytest.warns(Warning):
        res = sensitivity_n(f, x, flat(x, y), n=[5], target=y, feature_mask=torch.arange(25).reshape(1, 1, 5, 5),
                            n_subsets=10, seed=0)
    pooled = [r["correlation"] for r in rows if r["sample_index"] == "pooled"]
    assert math.isnan(float(res.pooled[0])) and len(pooled) == 1 and math.isnan(pooled[0])


class CountingModel(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model, self.calls = model, 0

    def forward(self, x):
        self.calls += 1
        return self.model(x)


def test_methods_share_the_perturbed_forwards():
    model, x, y = _setup()
    kw = dict(n_list=[1, 4, 20], n_subsets=8, seed=1, batch_size=4)
    counting = CountingModel(model)
    rows = evaluate(counting, _THREE, (x, y), **kw)
    calls_three = counting.calls
    for name, fn in _THREE.items():
        counting.calls = 0
        alone = evaluate(counting, {name: fn}, (x, y), **kw)
        assert counting.calls == calls_three  # three methods, the forwards of one
        assert _key(alone) == _key([r for r in rows if r["method"] == name])
