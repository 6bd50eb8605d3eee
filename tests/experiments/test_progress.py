"""Progress of long work (issue 21): the models loop names the model being
worked on, training shows early stopping as it happens and says how it ended,
and a log (stderr not a terminal) gets clean lines: no carriage returns, no
cursor moves, no blank lines. The terminal case runs under a pseudo-terminal
with a real window size, as a user's shell would give it."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from captum_unified._utils.progress import Progress, is_terminal, iterate, seconds

ROOT = Path(__file__).resolve().parents[2]

#: A run shaped like ``reproduce``: a models loop with two ModelSpecs, each
#: trained with early stopping. The first has lr 0, so its validation loss never
#: improves after epoch 1 and early stopping must end it after epoch 1 + patience.
#: The child runs it twice (one torch start-up): with stderr as given (a
#: pseudo-terminal), then with stderr a log file (``sys.argv[1]``), as
#: ``2> log`` gives it.
SCRIPT = r"""
import sys, torch
from torch import nn
from captum_unified.experiments.common import ModelSpec, progress
from captum_unified.models import TrainingRecipe, train

def run():
    torch.manual_seed(0)
    x = torch.randn(120, 6)
    y = (x[:, 0] > 0).long()
    specs = [ModelSpec("stuck", "relu", "Stuck MLP"), ModelSpec("learns", "tanh", "Learning MLP")]
    for spec in progress(specs, True):
        model = nn.Sequential(nn.Linear(6, 4), nn.Tanh(), nn.Linear(4, 2))
        lr = 0.0 if spec.name == "stuck" else 1e-2
        recipe = TrainingRecipe("adam", lr=lr, epochs=12, patience=3, batch_size=40)
        train(model, (x, y), recipe=recipe, val_data=(x[:40], y[:40]), show_progress=True, label=spec.label)
    print("results on stdout", flush=True)

run()
terminal, sys.stderr = sys.stderr, open(sys.argv[1], "w")
run()
sys.stderr.close()
sys.stderr = terminal
"""

EARLY_STOP = (
    "Stuck MLP: early stopping after epoch 4 of at most 12: no lower validation loss for 3 epochs; kept epoch 1"
)


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    """(what the terminal showed, the log file, stdout) of one run of SCRIPT."""
    if not hasattr(os, "openpty"):
        pytest.skip("needs a pseudo-terminal (POSIX)")
    import fcntl
    import struct
    import termios

    log = tmp_path_factory.mktemp("progress") / "log.txt"
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1")
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))  # a 160-column window
    p = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(log)], stdout=subprocess.PIPE, stderr=slave, env=env, cwd=ROOT
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    stdout = p.communicate(timeout=600)[0].decode()
    screen = b"".join(chunks).decode("utf-8", errors="replace")
    assert p.returncode == 0, screen[-3000:]
    return screen, log.read_text(), stdout


def test_progress_stays_off_stdout(outputs):
    assert outputs[2] == "results on stdout\n" * 2


def test_a_log_gets_clean_lines_naming_the_model_and_the_early_stop(outputs):
    log = outputs[1]
    assert "\r" not in log and "\x1b" not in log, repr(log)
    lines = log.splitlines()
    assert all(line.strip() for line in lines), f"blank lines in the log:\n{log}"
    assert "models 1/2: Stuck MLP" in lines and "models 2/2: Learning MLP" in lines, log
    assert any(line.strip().startswith(EARLY_STOP) for line in lines), log
    assert any(re.match(r"\s*Learning MLP: all 12 epochs; kept epoch \d+", line) for line in lines), log
    assert re.search(r"models 1/2: Stuck MLP done in \d+", log) and lines[-1].startswith("models: all 2 done in"), log
    assert len(lines) < 20, f"a line per epoch instead of one per 30 s:\n{log}"


def test_a_terminal_gets_bars_with_the_model_name_and_early_stopping_as_it_happens(outputs):
    screen = outputs[0]
    # the models bar names the model being worked on
    assert re.search(r"\rmodels:\s+0%\|[^\r]*0/2 \[[^\r]*Stuck MLP\]", screen), repr(screen[:2000])
    assert re.search(r"\rmodels:\s+50%\|[^\r]*1/2 \[[^\r]*Learning MLP\]", screen), repr(screen[:4000])
    # every epoch redraws the epochs bar: the epochs without a lower validation loss, of the patience
    for k in range(1, 4):
        assert re.search(rf"\repochs:[^\r]*{k + 1}/12 \[[^\r]*best [0-9.]+@1 no gain {k}/3", screen), repr(screen)
    # and the early stop is written above the bars, where it stays
    assert EARLY_STOP in screen


def test_progress_in_a_log_prints_at_most_one_step_line_per_interval():
    out = io.StringIO()
    assert not is_terminal(out)
    p = Progress(50, "epochs", stream=out, min_interval=3600)
    for k in range(50):
        p.step(f"loss {k}")
    p.close()
    lines = out.getvalue().splitlines()
    assert [ln.split(" (elapsed")[0] for ln in lines] == ["epochs 1/50: loss 0", "epochs 50/50: loss 49"]
    p = Progress(3, "epochs", stream=out, min_interval=0.0)
    for _ in range(3):
        p.step()
    assert len(out.getvalue().splitlines()) == 5


def test_no_progress_prints_nothing():
    out = io.StringIO()
    assert list(iterate(range(3), False, "models", stream=out)) == [0, 1, 2]
    p = Progress(3, "epochs", show=False, stream=out)
    p.start("x")
    p.step("y")
    p.write("z")
    p.close()
    assert out.getvalue() == ""


def test_iterate_names_each_item_and_the_total_time():
    out = io.StringIO()
    assert list(iterate(["a", "b"], True, "models", label=str.upper, stream=out)) == ["a", "b"]
    lines = out.getvalue().splitlines()
    assert lines[0] == "models 1/2: A" and lines[2] == "models 2/2: B", lines
    assert lines[1].startswith("models 1/2: A done in") and lines[-1].startswith("models: all 2 done in"), lines


@pytest.mark.parametrize("s, text", [(4.4, "4 s"), (65, "1 min 05 s"), (3720, "1 h 02 min")])
def test_seconds(s, text):
    assert seconds(s) == text
