"""What the README, the docs pages and the tutorials name exists (issue 21).

* every repository path they name (``tests/...``, ``scripts/...``,
  ``docs/_static/...``, ``captum_unified/...``, ``benchmarks/...``,
  ``tutorials/...``, ``.ci/run``) is a file or folder of the repository, and a
  test named as ``path::test_name`` is defined in that file;
* every ``captum_unified.<name>`` they cite (Sphinx roles, whose unresolved
  targets the build only ignores, and ``cu.<name>`` in the README's code)
  imports;
* every ``captum-unified ...`` / ``python -m captum_unified ...`` command
  they show parses with the real parser (:func:`captum_unified.cli.build_parser`),
  options, choices and values included, and every option they name on its
  own (````--samples````) is an option of one of its subcommands;
* every ``python scripts/X.py`` / ``benchmarks/X.py`` command names options
  that script defines;
* every output file they say a reproduction writes (``ancona_report.md``) is
  named in the code that writes it.

No build needed: the sources are read as text. The checks are shown to fail on
planted mistakes (the ``test_the_checks_*`` tests).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.docs


def sources() -> list[Path]:
    """The text a reader reads: README, the docs' pages and the tutorials."""
    files = [ROOT / "README.md", ROOT / "docs" / "index.rst"]
    files += sorted((ROOT / "docs" / "pages").glob("*.rst")) + sorted((ROOT / "docs" / "pages").glob("*.csv"))
    files += sorted((ROOT / "tutorials").glob("*.py")) + sorted((ROOT / "tutorials").glob("*.rst"))
    return [f for f in files if f.is_file()]


def _where(path: Path, text: str, pos: int) -> str:
    name = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name
    return f"{name}:{text.count(chr(10), 0, pos) + 1}"


# ------------------------------------------------------------------ paths

_TOP = r"(?:\.ci|captum_unified|tests|scripts|docs|tutorials|benchmarks)"
_PATH = re.compile(rf"(?<![\w/.~$-]){_TOP}/[\w./{{}},*<>-]*[\w/}}*>](?:::\w+)?")
#: paths that a build or a run makes (git-ignored), not files of the repository
_GENERATED = ("docs/_build", "docs/tutorials/", "docs/sg_execution_times.rst")
#: placeholders the docs use, checked as the glob they stand for (also any ``<word>``:
#: ``tests/rules/test_<name>.py`` is checked as ``tests/rules/test_*.py``)
_PLACEHOLDERS = {"tutorials/NN_name.py": "tutorials/[0-9][0-9]_*.py"}
_ANGLE = re.compile(r"<\w+>")
#: a toctree's entries are Sphinx document names (the build checks them), not paths
_TOCTREE = re.compile(r"^([ \t]*)\.\. toctree::.*\n(?:\1[ \t]+.*\n|[ \t]*\n)+", re.M)


def _expand(path: str) -> list[str]:
    m = re.search(r"\{([^{}]*)\}", path)
    if not m:
        return [path]
    return [p for alt in m.group(1).split(",") for p in _expand(path[: m.start()] + alt + path[m.end() :])]


def path_problems(path_text: str, root: Path = ROOT) -> list[str]:
    """Why ``path_text`` (``a/b.py`` or ``a/b.py::test_x``) does not name
    something in the repository (empty: it does)."""
    path_text, _, name = path_text.partition("::")
    problems = []
    for p in _expand(path_text):
        if p.startswith(_GENERATED):
            continue
        p = _ANGLE.sub("*", _PLACEHOLDERS.get(p, p))
        hits = sorted(root.glob(p)) if "*" in p else ([root / p] if (root / p).exists() else [])
        if not hits:
            problems.append(f"{p} does not exist")
        elif name and not re.search(rf"^\s*(?:async\s+)?(?:def|class)\s+{name}\b", hits[0].read_text(), re.M):
            problems.append(f"{p} defines no {name}")
    return problems


def named_paths(path: Path) -> list[tuple[str, str]]:
    text = path.read_text(encoding="utf-8")
    text = _TOCTREE.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)  # blanked, lines kept
    return [(_where(path, text, m.start()), m.group(0).rstrip(".")) for m in _PATH.finditer(text)]


def test_every_named_path_exists():
    found, bad = 0, []
    for src in sources():
        for where, p in named_paths(src):
            found += 1
            bad += [f"{where}: {problem}" for problem in path_problems(p)]
    assert found > 20, f"only {found} paths found: the scanner is broken"
    assert not bad, "the docs name paths that do not exist:\n" + "\n".join(bad)


# ------------------------------------------------------------------ Python names

_ROLE = re.compile(r":(?:py:)?(?:func|class|mod|meth|attr|data|exc|obj):`~?(captum_unified(?:\.\w+)+)`")
_CU = re.compile(r"(?<![\w.])cu\.((?:[A-Za-z_]\w*)(?:\.[A-Za-z_]\w*)*)")


def resolve(dotted: str):
    """Import ``captum_unified.a.b.C.meth`` (modules imported as needed)."""
    parts = dotted.split(".")
    obj = importlib.import_module(parts[0])
    for k, part in enumerate(parts[1:], start=1):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            obj = importlib.import_module(".".join(parts[: k + 1]))
    return obj


def test_every_cited_python_name_exists():
    found, bad = 0, []
    for src in sources():
        text = src.read_text(encoding="utf-8")
        names = [(m.start(), m.group(1)) for m in _ROLE.finditer(text)]
        if src.suffix == ".md":  # the README's code uses `import captum_unified as cu`
            names += [(m.start(), "captum_unified." + m.group(1)) for m in _CU.finditer(text)]
        for pos, name in names:
            found += 1
            try:
                resolve(name)
            except (ImportError, AttributeError) as e:
                bad.append(f"{_where(src, text, pos)}: {name} ({type(e).__name__}: {e})")
    assert found > 20, f"only {found} names found: the scanner is broken"
    assert not bad, "the docs cite names that do not exist:\n" + "\n".join(bad)


# ------------------------------------------------------------------ commands

_FENCE = re.compile(r"^```(?:bash|sh|shell|console)\s*$(.*?)^```", re.M | re.S)
_RST_BLOCK = re.compile(
    r"^([ \t]*)\.\. code-block:: (?:bash|sh|shell|console)[ \t]*\n((?:\1[ \t]+.*\n|[ \t]*\n)+)", re.M
)
_INLINE = re.compile(r"``(.+?)``|(?<!`)`([^`\n]+)`(?!`)", re.S)


def shell_lines(path: Path) -> list[tuple[str, str]]:
    """(where, line) of every shell line the file shows: code blocks (with
    backslash continuations joined) and inline literals (rST ````...````,
    Markdown and tutorial comments `...`)."""
    text = path.read_text(encoding="utf-8")
    out = []
    blocks = [(m.start(2), m.group(2)) for m in _RST_BLOCK.finditer(text)]
    blocks += [(m.start(1), m.group(1)) for m in _FENCE.finditer(text)]
    for start, body in blocks:
        body = re.sub(r"\\\n\s*", " ", body)
        for k, line in enumerate(body.splitlines()):
            line = re.sub(r"^\s*\$\s+", "", line).strip()
            if line:
                out.append((_where(path, text, start) + f" (block line {k + 1})", line))
    prose = _FENCE.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)  # fences blanked, lines kept
    for m in _INLINE.finditer(prose):
        literal = " ".join((m.group(1) or m.group(2)).split())
        out.append((_where(path, text, m.start()), literal))
    return out


def _segments(line: str) -> list[list[str]]:
    """The commands of a shell line (split at ``&&``, ``||``, ``;``, ``|``;
    ``#`` comments dropped)."""
    try:
        tokens = shlex.split(line, comments=True)
    except ValueError:  # an unbalanced quote: not a command
        return []
    segs, cur = [], []
    for t in tokens:
        if t in ("&&", "||", ";", "|"):
            segs.append(cur)
            cur = []
        else:
            cur.append(t)
    return [s for s in segs + [cur] if s]


def cli_argv(tokens: list[str]) -> list[str] | None:
    """The arguments given to ``captum-unified`` in a command, or None."""
    if "captum-unified" in tokens:
        return tokens[tokens.index("captum-unified") + 1 :]
    for k in range(len(tokens) - 1):
        if tokens[k] == "-m" and tokens[k + 1] == "captum_unified":
            return tokens[k + 2 :]
    return None


def parse_problem(argv: list[str]) -> str | None:
    """None if the real parser accepts ``argv`` (``--help`` included), else its message."""
    from captum_unified.cli import build_parser

    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            build_parser().parse_args(argv)
    except SystemExit as e:
        if e.code not in (0, None):
            return err.getvalue().strip().splitlines()[-1] if err.getvalue().strip() else f"exit {e.code}"
    return None


def cli_options() -> set[str]:
    """Every option string of every ``captum-unified`` subcommand."""
    from captum_unified.cli import build_parser

    options: set[str] = set()
    parsers = [build_parser()]
    while parsers:
        p = parsers.pop()
        for action in p._actions:  # argparse has no public walk over subparsers
            options.update(s for s in action.option_strings if s.startswith("--"))
            if isinstance(action, argparse._SubParsersAction):
                parsers += list(action.choices.values())
    return options


def script_options(script: Path) -> set[str]:
    """The options a script's argparse defines (read from its source)."""
    return set(re.findall(r"add_argument\(\s*[\"'](--[\w-]+)", script.read_text(encoding="utf-8")))


def script_problems(tokens: list[str]) -> list[str]:
    """A ``python [-X] path/to/script.py --opt ...`` command: the script exists
    and defines each ``--opt``."""
    if not tokens or not re.fullmatch(r"python[\d.]*", tokens[0]):
        return []
    args = [t for t in tokens[1:] if not t.startswith("-") or t.startswith("--")]
    script = next((t for t in args if t.endswith(".py")), None)
    if script is None or "/" not in script or not script.startswith(("scripts/", "benchmarks/", "tutorials/")):
        return []
    missing = path_problems(script)
    if missing or "*" in _PLACEHOLDERS.get(script, script):
        return missing
    known = script_options(ROOT / script)
    given = {t.split("=")[0] for t in tokens[tokens.index(script) + 1 :] if t.startswith("--")}
    return [f"{script} has no option {o}" for o in sorted(given - known)]


def test_every_shown_command_parses():
    n_cli, n_scripts, bad = 0, 0, []
    for src in sources():
        for where, line in shell_lines(src):
            for tokens in _segments(line):
                argv = cli_argv(tokens)
                if argv:  # a bare ``captum-unified`` names the program, runs nothing
                    n_cli += 1
                    problem = parse_problem(argv)
                    if problem:
                        bad.append(f"{where}: captum-unified {shlex.join(argv)}: {problem}")
                problems = script_problems(tokens)
                n_scripts += bool(tokens and tokens[0].startswith("python") and any(".py" in t for t in tokens))
                bad += [f"{where}: {p}" for p in problems]
    assert n_cli >= 8 and n_scripts >= 5, f"{n_cli} CLI and {n_scripts} script commands found: the scanner is broken"
    assert not bad, "commands in the docs that would not run:\n" + "\n".join(bad)


_LONE_OPTION = re.compile(r"^(--[a-z][\w-]*)(?:[ =]\S+)?$")
#: options of other programs that the docs name on their own
_FOREIGN = {"--nproc_per_node", "--standalone", "--nnodes", "--index-url", "--no-deps"}


def test_every_option_named_on_its_own_exists():
    """````--samples```` in a sentence is an option of some subcommand (of
    ``captum-unified``, or of a script of the repository)."""
    known = cli_options() | _FOREIGN
    for folder in ("scripts", "benchmarks"):
        for script in (ROOT / folder).glob("*.py"):
            known |= script_options(script)
    found, bad = 0, []
    for src in sources():
        text = src.read_text(encoding="utf-8")
        for m in _INLINE.finditer(text):
            literal = " ".join((m.group(1) or m.group(2)).split())
            lone = _LONE_OPTION.match(literal)
            if lone:
                found += 1
                if lone.group(1) not in known:
                    bad.append(f"{_where(src, text, m.start())}: {lone.group(1)}")
    assert found >= 5, f"only {found} options found: the scanner is broken"
    assert not bad, "options named in the docs that no parser has:\n" + "\n".join(bad)


# ------------------------------------------------------------------ outputs

_OUTPUT = re.compile(r"\b((?:ancona|deng)_[a-z0-9_]+\.(?:csv|png|md))\b")


def test_every_named_output_file_is_written_by_the_code():
    writers = [*(ROOT / "captum_unified").rglob("*.py"), *(ROOT / "scripts").glob("*.py")]
    code = "\n".join(p.read_text(encoding="utf-8") for p in writers)
    written = set(re.findall(r"[\"'](?:\{?\w*\}?)?((?:ancona|deng)_[\w{}]+\.(?:csv|png|md))[\"']", code))
    patterns = [re.compile("^" + re.sub(r"\\\{\w*\\\}", r"\\w+", re.escape(w)) + "$") for w in written]
    found, bad = 0, []
    for src in sources():
        text = src.read_text(encoding="utf-8")
        for m in _OUTPUT.finditer(text):
            found += 1
            if not any(p.match(m.group(1)) for p in patterns):
                bad.append(f"{_where(src, text, m.start())}: {m.group(1)}")
    assert found >= 4, f"only {found} output names found: the scanner is broken"
    assert not bad, "output files the docs name that no code writes:\n" + "\n".join(bad)


# ------------------------------------------------------------------ the checks can fail


def test_the_checks_find_planted_mistakes(tmp_path):
    assert path_problems("tests/docs/test_docs.py") == []
    assert path_problems("tests/docs/test_docs.py::test_math_is_served_from_the_build") == []
    assert path_problems("docs/_static/results/{ancona,deng}") == []
    assert path_problems("tests/test_docs_pages.py") == ["tests/test_docs_pages.py does not exist"]
    assert path_problems("tests/docs/test_docs.py::test_nothing") == ["tests/docs/test_docs.py defines no test_nothing"]
    assert path_problems("docs/_static/results/{ancona,nobody}") == ["docs/_static/results/nobody does not exist"]
    assert path_problems("captum_unified/rules/<name>.py") == []
    assert path_problems("tests/nowhere/test_<name>.py") == ["tests/nowhere/test_*.py does not exist"]
    with pytest.raises((ImportError, AttributeError)):
        resolve("captum_unified.NoSuchMethod")
    assert resolve("captum_unified.metrics.sensitivity_n") is not None

    assert parse_problem(["reproduce", "ancona", "--quick"]) is None
    assert parse_problem(["reproduce", "--help"]) is None
    assert parse_problem(["reproduce", "ancona", "--quik"])
    assert parse_problem(["reproduce", "imagenet"])
    assert parse_problem(["attribute", "--method", "gi", "shap"])
    assert script_problems(["python3", "scripts/make_results.py", "--ablation"]) == []
    assert script_problems(["python3", "scripts/make_results.py", "--fast"]) == [
        "scripts/make_results.py has no option --fast"
    ]
    assert script_problems(["python", "scripts/nothing.py"]) == ["scripts/nothing.py does not exist"]

    page = tmp_path / "p.rst"
    page.write_text(
        "Run ``captum-unified reproduce\n   ancona --threads 1``.\n\n.. code-block:: bash\n\n"
        "   captum-unified evaluate --methods gi \\\n       --out x.csv   # a comment\n\n"
        "Also `python3 scripts/make_results.py --only ancona`.\n"
    )
    lines = [" ".join(line.split()) for _, line in shell_lines(page)]
    assert "captum-unified evaluate --methods gi --out x.csv # a comment" in lines, lines
    assert "captum-unified reproduce ancona --threads 1" in lines, lines
    assert [cli_argv(s) for s in _segments("bash scripts/install.sh && captum-unified reproduce ancona")] == [
        None,
        ["reproduce", "ancona"],
    ]
    assert cli_argv(["torchrun", "--standalone", "-m", "captum_unified", "evaluate"]) == ["evaluate"]
