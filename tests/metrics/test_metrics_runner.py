"""evaluate(): methods x metrics over a data set as tidy rows; rows equal the metric
functions on the same samples; per-sample seeds (batching does not matter);
resume at batch level; shared forwards; CSV / Parquet round trip."""

import json
import math
import os
import warnings

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import captum_unified as cu
from captum_unified.metrics import (
    FIELDS,
    BoundingBoxAccuracy,
    Infidelity,
    RegionPerturbation,
    SensitivityN,
    bounding_box_accuracy,
    evaluate,
    infidelity,
    read_rows,
    region_perturbation,
    sensitivity_n,
)

PIX = torch.arange(25).reshape(1, 1, 5, 5)


def _setup():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(2 * 5 * 5, 3)).double()
    g = torch.Generator().manual_seed(3)
    x = torch.randn(7, 1, 5, 5, dtype=torch.float64, generator=g)
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0])
    return model.eval(), x, y


class Counting:
    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def __call__(self, inputs, target):
        self.calls += 1
        return self.fn(inputs, target)


def _three(model):
    return {
        "gxi": lambda i, t: cu.GradientXInput(model).attribute(i, target=t),
        "occ": lambda i, t: cu.Occlusion1(model).attribute(i, target=t),
        "input": lambda i, t: i.clone(),
    }


def _metrics():
    return [
        SensitivityN(n=[1, 4, 20], n_subsets=6),
        Infidelity(patch_size=2, n_perturb_samples=4),
        RegionPerturbation(n_steps=5),
    ]


def _key(rows):
    return [(r["method"], r["metric"], r["param"], r["sample_index"], repr(r["value"])) for r in rows]


def _close(rows_a, rows_b, atol=1e-10):
    assert [k[:4] for k in _key(rows_a)] == [k[:4] for k in _key(rows_b)]
    for a, b in zip(rows_a, rows_b):
        assert a["value"] == pytest.approx(b["value"], abs=atol, nan_ok=True), (a, b)


def test_rows_equal_the_metric_functions_on_the_same_samples():
    model, x, y = _setup()
    gxi = cu.GradientXInput(model)
    state = torch.get_rng_state()
    rows = evaluate(model, {"gxi": gxi}, (x, y), _metrics(), batch_size=4, seed=3)
    assert torch.equal(state, torch.get_rng_state())
    assert all(tuple(r) == FIELDS for r in rows)
    by = {(r["metric"], r["param"], r["sample_index"]): r["value"] for r in rows}
    a = gxi.attribute(x, target=y)
    # the whole data in one call, with the global sample indices as seeds
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sn = sensitivity_n(model, x, a, n=[1, 4, 20], target=y, feature_mask=PIX, n_subsets=6, seed=3)
    inf = infidelity(model, x, a, patch_size=2, n_perturb_samples=4, target=y, seed=3)
    rp = region_perturbation(model, x, a, target=y, feature_mask=PIX, n_steps=5)
    for i in range(7):
        for j, n in enumerate([1, 4, 20]):
            assert by[("sensitivity_n", n, i)] == pytest.approx(float(sn.correlations[i, j]), abs=1e-10)
        assert by[("infidelity", None, i)] == pytest.approx(float(inf[i]), rel=1e-10)
        assert by[("aopc", None, i)] == pytest.approx(float(rp.aopc[i]), abs=1e-12)
        for j, k in enumerate(rp.k):
            assert by[("region_perturbation", k, i)] == pytest.approx(float(rp.curves[i, j]), abs=1e-12)
    for j, n in enumerate([1, 4, 20]):  # pooled over the data set = one call over all samples
        assert by[("sensitivity_n", n, "pooled")] == pytest.approx(float(sn.pooled[j]), abs=1e-12)
    order = [(r["metric"], r["sample_index"] == "pooled") for r in rows]
    assert order.index(("sensitivity_n", True)) < order.index(("infidelity", False))


def test_batching_and_data_forms_do_not_change_rows():
    model, x, y = _setup()
    methods = {"gxi": cu.GradientXInput(model)}
    ref = evaluate(model, methods, (x, y), _metrics(), batch_size=7)
    for data, bs in (((x, y), 3), (TensorDataset(x, y), 2), (DataLoader(TensorDataset(x, y), batch_size=5), 99)):
        _close(evaluate(model, methods, data, _metrics(), batch_size=bs), ref)
    # the same batches give bitwise the same rows
    assert _key(evaluate(model, methods, TensorDataset(x, y), _metrics(), batch_size=3)) == _key(
        evaluate(model, methods, (x, y), _metrics(), batch_size=3)
    )


def test_methods_share_the_perturbed_forwards_and_rows_do_not_depend_on_the_others():
    model, x, y = _setup()

    class CountingModel(nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m, self.calls = m, 0

        def forward(self, inp):
            self.calls += 1
            return self.m(inp)

    counting = CountingModel(model)
    methods = {"gxi": cu.GradientXInput(model), "input": lambda i, t: i.clone()}
    metrics = [SensitivityN(n=[1, 4], n_subsets=5), Infidelity(patch_size=2, n_perturb_samples=3)]
    rows = evaluate(counting, methods, (x, y), metrics, batch_size=4, perturbations_per_eval=2)
    both = counting.calls
    counting.calls = 0
    alone = evaluate(counting, {"input": methods["input"]}, (x, y), metrics, batch_size=4, perturbations_per_eval=2)
    assert counting.calls == both  # two methods, the forwards of one
    assert _key(alone) == _key([r for r in rows if r["method"] == "input"])


def test_resume_computes_only_what_is_missing(tmp_path):
    model, x, y = _setup()
    out = tmp_path / "rows.csv"
    fns = {k: Counting(f) for k, f in _three(model).items()}
    kw = dict(metrics=_metrics(), batch_size=2, out=out)
    full = evaluate(model, {k: f for k, f in fns.items()}, (x, y), **kw)
    assert _key(read_rows(out)) == _key(full)
    assert fns["gxi"].calls == 4

    # a run that dies in batch 2: batches 0 and 1 are kept
    out2 = tmp_path / "cut.csv"

    class Dies(Exception):
        pass

    calls = [0]

    def dying(i, t):
        calls[0] += 1
        if calls[0] == 3:
            raise Dies()
        return fns["gxi"].fn(i, t)

    with pytest.raises(Dies):
        evaluate(model, {"gxi": dying}, (x, y), **{**kw, "out": out2})
    assert not out2.exists() and sorted(os.listdir(str(out2) + ".parts")) == [
        "batch_0000000.json",
        "batch_0000001.json",
        "manifest.json",
    ]
    again = Counting(fns["gxi"].fn)
    resumed = evaluate(model, {"gxi": again}, (x, y), **{**kw, "out": out2})
    assert again.calls == 2  # batches 2 and 3 only
    assert _key(resumed) == _key([r for r in full if r["method"] == "gxi"])
    # adding a method computes only it; adding a metric computes only it
    extra = Counting(lambda i, t: -i)
    more = evaluate(model, {"gxi": again, "neg": extra}, (x, y), **{**kw, "out": out2})
    assert again.calls == 2 and extra.calls == 4
    box = torch.tensor([[0, 0, 3, 3]] * 7)
    bba = evaluate(
        model,
        {"gxi": again, "neg": extra},
        (x, y, box),
        **{**kw, "out": out2, "metrics": _metrics() + [BoundingBoxAccuracy()]},
    )
    assert again.calls == 6 and extra.calls == 8  # attributions for the new metric only
    assert _key([r for r in bba if r["metric"] != "bounding_box_accuracy"]) == _key(more)
    acc = [r["value"] for r in bba if r["method"] == "gxi" and r["metric"] == "bounding_box_accuracy"]
    torch.testing.assert_close(torch.tensor(acc, dtype=torch.float64), bounding_box_accuracy(fns["gxi"].fn(x, y), box))


def test_resume_with_other_settings_raises(tmp_path):
    model, x, y = _setup()
    out = tmp_path / "rows.csv"
    evaluate(model, {"input": lambda i, t: i}, (x, y), [SensitivityN(n=[2], n_subsets=4)], out=out, batch_size=4)
    with pytest.raises(ValueError, match="seed"):
        evaluate(
            model, {"input": lambda i, t: i}, (x, y), [SensitivityN(n=[2], n_subsets=4)], out=out, batch_size=4, seed=1
        )
    with pytest.raises(ValueError, match="sensitivity_n"):
        evaluate(model, {"input": lambda i, t: i}, (x, y), [SensitivityN(n=[3], n_subsets=4)], out=out, batch_size=4)
    with pytest.raises(ValueError, match="baselines"):
        evaluate(
            model,
            {"input": lambda i, t: i},
            (x, y),
            [SensitivityN(n=[2], n_subsets=4)],
            out=out,
            batch_size=4,
            baselines=0.5,
        )


def test_nan_and_round_trip_csv_and_parquet(tmp_path):
    model, x, y = _setup()
    x[0] = 0.0  # equal to the baseline: correlations undefined
    rows = evaluate(
        model,
        {"zero": lambda i, t: torch.zeros_like(i), "gxi": cu.GradientXInput(model)},
        (x, y),
        [SensitivityN(n=[2, 25], n_subsets=4)],
        out=tmp_path / "r.csv",
        batch_size=3,
    )
    assert any(math.isnan(r["value"]) for r in rows)
    back = read_rows(tmp_path / "r.csv")
    assert _key(back) == _key(rows)
    with open(tmp_path / "r.csv") as fh:
        assert fh.readline().strip() == ",".join(FIELDS)
    pytest.importorskip("pyarrow")
    evaluate(
        model,
        {"gxi": cu.GradientXInput(model)},
        (x, y),
        [SensitivityN(n=[2], n_subsets=4)],
        out=tmp_path / "r.parquet",
        batch_size=3,
    )
    assert _key(read_rows(tmp_path / "r.parquet")) == _key(
        [r for r in back if r["method"] == "gxi" and r["param"] == 2]
    )


def test_errors():
    model, x, y = _setup()
    with pytest.raises(ValueError, match="methods is empty"):
        evaluate(model, {}, (x, y))
    with pytest.raises(ValueError, match="metrics is empty"):
        evaluate(model, {"a": lambda i, t: i}, (x, y), [])
    with pytest.raises(ValueError, match="unknown metric"):
        evaluate(model, {"a": lambda i, t: i}, (x, y), ["nope"])
    with pytest.raises(ValueError, match="data is empty"):
        evaluate(model, {"a": lambda i, t: i}, (x[:0], y[:0]))
    with pytest.raises(ValueError, match="different numbers"):
        evaluate(model, {"a": lambda i, t: i}, (x, y[:3]))
    with pytest.raises(TypeError, match="callable"):
        evaluate(model, {"a": 3}, (x, y))
    with pytest.raises(ValueError, match="boxes"):
        evaluate(model, {"a": lambda i, t: i}, (x, y), ["bounding_box_accuracy"])
    with pytest.raises(ValueError, match="NaN"):
        evaluate(model, {"a": lambda i, t: i * float("nan")}, (x, y), [SensitivityN(n=[2], n_subsets=3)])


def test_a_registry_name_whose_metric_needs_an_argument_says_which():
    from captum_unified.metrics.registry import METRICS, make_metric

    model, x, y = _setup()
    for spec in (
        lambda: make_metric("percentage_change"),
        lambda: evaluate(model, {"a": lambda i, t: i}, (x, y), ["percentage_change"]),
    ):
        with pytest.raises(
            ValueError, match=r"'percentage_change' .*needs `references`.*PercentageChange\(references=\.\.\.\)"
        ):
            spec()
    for name in METRICS:  # every other name gives default settings
        if name != "percentage_change":
            assert make_metric(name).name == name


def test_manifest_records_the_settings(tmp_path):
    model, x, y = _setup()
    evaluate(
        model,
        {"a": lambda i, t: i},
        (x, y),
        [SensitivityN(n=[2], n_subsets=4), "infidelity"],
        out=tmp_path / "r.csv",
        batch_size=4,
        seed=9,
    )
    with open(tmp_path / "r.csv.parts" / "manifest.json") as fh:
        man = json.load(fh)
    assert man["seed"] == 9 and man["batch_size"] == 4
    assert man["metrics"]["sensitivity_n"] == {"n": [2], "n_subsets": 4}
    assert man["metrics"]["infidelity"]["patch_size"] == 4


def test_percentage_change_metric_against_a_reference():
    from captum_unified.metrics import PercentageChange
    from captum_unified.taylor import gradient_x_input_reformulation, percentage_change

    model, x, y = _setup()
    methods = {"gxi": cu.GradientXInput(model), "input": lambda i, t: i.clone()}
    refs = {"gxi": lambda i, t: gradient_x_input_reformulation(model, i, target=t), "input": lambda i, t: 2 * i}
    rows = evaluate(model, methods, (x, y), [PercentageChange(refs)], batch_size=3)
    by = {(r["method"], r["sample_index"]): r["value"] for r in rows}
    assert all(by[("input", i)] == pytest.approx(100.0) for i in range(7))  # |a - 2a|^2 / |a|^2
    gxi = [by[("gxi", i)] for i in range(7)]
    assert max(gxi) < 1e-10  # GI is its own first-order reformulation (Deng Table 3: d = 0)
    a = cu.GradientXInput(model).attribute(x, target=y)
    assert sum(gxi) / 7 == pytest.approx(
        percentage_change(a, gradient_x_input_reformulation(model, x, target=y)), abs=1e-10
    )
    with pytest.raises(ValueError, match="references"):
        PercentageChange({})


def test_resume_on_other_data_raises_and_same_data_resumes(tmp_path):
    """A finished batch is reused only for the same data: other samples, labels or a
    longer data set with other samples in the first batches raise; the same data resume."""
    model, x, y = _setup()
    out = tmp_path / "rows.csv"
    kw = dict(metrics=[Infidelity(patch_size=2, n_perturb_samples=3)], batch_size=4, out=out)
    gxi = Counting(lambda i, t: cu.GradientXInput(model).attribute(i, target=t))
    first = evaluate(model, {"gxi": gxi}, (x[:5], y[:5]), **kw)
    assert gxi.calls == 2
    # more samples, not a prefix-extension: batch 0 holds other digits now
    x2, y2 = torch.cat([x[5:], x[:5]]), torch.cat([y[5:], y[:5]])
    with pytest.raises(ValueError, match="data changed.*new `out`.*delete"):
        evaluate(model, {"gxi": gxi}, (x2, y2), **kw)
    with pytest.raises(ValueError, match="data changed"):  # same inputs, other labels
        evaluate(model, {"gxi": gxi}, (x[:5], (y[:5] + 1) % 3), **kw)
    with pytest.raises(ValueError, match="batch 1"):  # batch 0 unchanged, batch 1 has other samples
        evaluate(model, {"gxi": gxi}, (torch.cat([x[:4], x[6:]]), torch.cat([y[:4], y[6:]])), **kw)
    calls = gxi.calls
    assert _key(evaluate(model, {"gxi": gxi}, (x[:5], y[:5]), **kw)) == _key(first)  # unchanged: resumed
    assert gxi.calls == calls
    # extras may be added for a new metric (bounding boxes), but not changed afterwards
    box = torch.tensor([[0, 0, 3, 3]] * 5)
    bkw = {**kw, "metrics": kw["metrics"] + [BoundingBoxAccuracy()]}
    evaluate(model, {"gxi": gxi}, (x[:5], y[:5], box), **bkw)
    evaluate(model, {"gxi": gxi}, (x[:5], y[:5], box), **bkw)
    assert gxi.calls == calls + 2  # once per batch, for the new metric only
    with pytest.raises(ValueError, match="data changed"):
        evaluate(model, {"gxi": gxi}, (x[:5], y[:5], box + 1), **bkw)
    # a fresh `out` on the other data gives that data's rows
    fresh = evaluate(model, {"gxi": gxi}, (x2, y2), **{**kw, "out": tmp_path / "fresh.csv"})
    assert _key(fresh) == _key(evaluate(model, {"gxi": gxi}, (x2, y2), **{**kw, "out": None}))
