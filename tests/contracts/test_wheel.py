"""The package as a user installs it: a wheel built with ``python -m build``,
installed (not editable) into a fresh virtual environment, imported and run
from outside the source tree.

Two venvs:

* default run: ``venv --system-site-packages``, so torch, captum, numpy, ... come
  from the machine (no multi-GB download, works offline); the wheel itself is
  installed with its dependency resolution (``pip install wheel[data]``), so a
  dependency missing from the machine or a broken requirement fails here;
* ``pytest -m slow``: an isolated venv that sees nothing of the machine's
  packages; torch==2.13.0 (the CPU build) is installed first, then the wheel
  pulls every other dependency from the package index.

Both check that ``captum_unified`` is imported from the venv, not from this
checkout or an editable install (setuptools' editable finder comes after the
venv's own site-packages, and the run's working directory is outside the tree).
"""

from __future__ import annotations

import email.parser
import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "captum_unified"

pytestmark = pytest.mark.wheel


def _clean_env(**extra):
    """The environment without PYTHONPATH/PYTHONHOME: with this checkout on
    PYTHONPATH (as the tests run), its ``captum_unified.egg-info`` would make
    the venv's pip think the package is installed already."""
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME"}}
    env.update(PYTHONNOUSERSITE="1", **extra)
    return env


def _run(cmd, timeout, **kw):
    kw.setdefault("env", _clean_env())
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, **kw)
    assert r.returncode == 0, f"{cmd} failed:\n{r.stdout[-3000:]}\n{r.stderr[-4000:]}"
    return r


def _clean_copy(dst: Path) -> Path:
    """The checkout's files (tracked, and untracked ones git does not ignore)
    copied to ``dst``: a build there cannot pick up a stale ``build/`` folder
    or other ignored leftovers (setuptools reuses ``build/lib``, so a module
    deleted from the source would still ship)."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True, check=True
        ).stdout.decode()
        files = [f for f in listed.split("\0") if f and (ROOT / f).is_file()]
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: copy all but build outputs
        skip = {"build", "dist", "_build", ".git", "__pycache__", ".venv", ".pytest_cache", ".hypothesis"}
        files = [
            p.relative_to(ROOT).as_posix()
            for p in ROOT.rglob("*")
            if p.is_file() and not skip & set(p.relative_to(ROOT).parts) and not p.name.endswith(".egg-info")
        ]
    for f in files:
        (dst / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / f, dst / f)
    return dst


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    return _clean_copy(tmp_path_factory.mktemp("src"))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory, source) -> Path:
    """``python -m build --wheel`` of a clean copy of this checkout.
    ``--no-isolation`` when the build backend is installed (the dev extras
    install it): offline and fast; otherwise build's isolated environment
    fetches setuptools."""
    out = tmp_path_factory.mktemp("dist")
    try:
        import setuptools  # noqa: F401

        isolation = ["--no-isolation"]
    except ImportError:
        isolation = []
    _run([sys.executable, "-m", "build", "--wheel", *isolation, "--outdir", out, source], timeout=300, cwd=source)
    wheels = list(out.glob("captum_unified-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def _source_version() -> str:
    ns: dict = {}
    for line in (PACKAGE / "__init__.py").read_text(encoding="utf-8").splitlines():
        if line.startswith("__version__"):
            exec(line, ns)  # noqa: S102 - our own one-line assignment
    return ns["__version__"]


def test_wheel_holds_the_package_and_nothing_else(wheel, source):
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names}
    dist_info = {t for t in top if t.endswith(".dist-info")}
    assert top - dist_info == {"captum_unified"}, f"only the package belongs in the wheel: {sorted(top)}"
    # every module and every data file of the source package is inside (package
    # data: anything loaded at run time); no caches
    in_tree = {
        p.relative_to(source).as_posix()
        for p in (source / "captum_unified").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix not in {".pyc", ".pyo"}
    }
    packaged = {n for n in names if n.startswith("captum_unified/")}
    assert in_tree - packaged == set(), f"files of captum_unified/ missing from the wheel: {sorted(in_tree - packaged)}"
    assert packaged - in_tree == set(), f"files in the wheel that are not in the source: {sorted(packaged - in_tree)}"
    assert "captum_unified/py.typed" in packaged
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)


def test_wheel_metadata(wheel):
    with zipfile.ZipFile(wheel) as z:
        meta_name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        meta = email.parser.Parser().parsestr(z.read(meta_name).decode())
        entry_points = z.read(meta_name.replace("METADATA", "entry_points.txt")).decode()
    assert meta["Name"].replace("-", "_") == "captum_unified"
    assert meta["Version"] == _source_version(), "version must come from captum_unified.__version__"
    requires = " ".join(meta.get_all("Requires-Dist"))
    for dep in ("torch", "captum", "numpy", "matplotlib", "tqdm"):
        assert dep in requires
    assert "captum-unified = captum_unified.cli:main" in entry_points


def _venv_python(path: Path) -> Path:
    return path / ("Scripts" if os.name == "nt" else "bin") / ("python.exe" if os.name == "nt" else "python")


def _check_installed(py: Path, wheel: Path, work: Path, timeout: int) -> str:
    """Import the installed package and run the main job's quick form from
    ``work`` (outside the source tree); return the command's output."""
    env = _clean_env(CAPTUM_UNIFIED_CACHE=str(work / "cache"), MPLBACKEND="Agg", OMP_NUM_THREADS="1")
    r = _run(
        [
            py,
            "-c",
            "import captum_unified as cu, importlib.metadata as m, sys; "
            "print(cu.__file__); print(cu.__version__, m.version('captum_unified')); "
            "print(sys.prefix)",
        ],
        timeout=120,
        cwd=work,
        env=env,
    )
    file, versions, prefix = r.stdout.strip().splitlines()
    assert Path(file).resolve().is_relative_to(Path(prefix).resolve()), (
        f"captum_unified imported from {file}, not from the venv {prefix}"
    )
    assert not Path(file).resolve().is_relative_to(ROOT), "imported from the source tree"
    assert Path(file).with_name("py.typed").is_file()
    v, meta_v = versions.split()
    assert v == meta_v == _source_version()
    bindir = _venv_python(Path(prefix)).parent
    r = _run(
        [bindir / "captum-unified", "reproduce", "ancona", "--quick", "--no-progress", "--out", "results"],
        timeout=timeout,
        cwd=work,
        env=env,
    )
    out = work / "results"
    for name in ("ancona_checks.csv", "ancona_sensitivity_n.csv", "ancona_figure4.png", "ancona_report.md"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    # every qualitative check of the paper the quick run evaluates passed
    import csv

    with open(out / "ancona_checks.csv", newline="") as fh:
        checks = list(csv.DictReader(fh))
    assert checks, "no checks written"
    # facts the wheel's code must reproduce (not just run): DeepLIFT (Rescale)
    # is complete, and epsilon-LRP equals Gradient*Input on ReLU models
    # up to float32 and the stabiliser (Ancona et al. 2018, Prop. 3)
    dl = [float(c["max_abs_delta"]) for c in checks if c["method"] == "deeplift"]
    assert dl and max(dl) < 1e-3, dl
    lrp_relu = [float(c["rel_diff_vs_gi"]) for c in checks if c["method"] == "lrp" and c["activation"] == "relu"]
    assert lrp_relu and max(lrp_relu) < 1e-2, lrp_relu  # float32 and the epsilon stabiliser
    return r.stdout


def test_wheel_installs_into_fresh_venv_and_reproduces(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True, system_site_packages=True).create(env_dir)
    py = _venv_python(env_dir)
    # the wheel, not the checkout: a plain (non-editable) install into the venv
    # (an editable install on the machine stays where it is, behind the venv's
    # own site-packages), its requirements resolved against what the machine
    # has (``pip check`` would also judge unrelated machine packages).
    # --force-reinstall: the machine's own (editable) captum_unified would
    # otherwise count as installed already.
    _run([py, "-m", "pip", "install", "--quiet", "--force-reinstall", "--no-deps", wheel], timeout=300)
    _run([py, "-m", "pip", "install", "--quiet", f"{wheel}[data]"], timeout=300)
    work = tmp_path / "user"
    work.mkdir()
    _check_installed(py, wheel, work, timeout=420)


@pytest.mark.slow
def test_wheel_in_isolated_venv_with_cpu_torch_first(wheel, tmp_path):
    """What a new user does: torch==2.13.0 (CPU) first, then the wheel; nothing
    from the machine's site-packages (a plain ``torch`` requirement would pull
    a multi-GB CUDA build, so torch is pinned before the wheel is installed)."""
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True, system_site_packages=False).create(env_dir)
    py = _venv_python(env_dir)
    _run([py, "-m", "pip", "install", "--quiet", "torch==2.13.0"], timeout=900)
    _run([py, "-m", "pip", "install", "--quiet", f"{wheel}[data]"], timeout=900)
    _run([py, "-m", "pip", "check"], timeout=120)
    work = tmp_path / "user"
    work.mkdir()
    _check_installed(py, wheel, work, timeout=600)
