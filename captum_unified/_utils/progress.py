"""Progress of long loops (training, the reproductions' model rows): a tqdm bar
on a terminal, plain lines in a log.

tqdm redraws its bar with carriage returns and, for nested bars, cursor moves;
written to a file or a pipe that leaves one long line per bar and a blank line
per redraw of an inner bar. So the stream decides: on a terminal a bar (nested
bars stack, finished inner bars disappear), otherwise one line per item
started and finished, and for fast inner loops one line every
``min_interval`` seconds. Messages (early stopping, a model loaded from the
cache) are printed above the bars on a terminal and as lines in a log.
Everything goes to ``sys.stderr`` (tqdm's stream), results stay on stdout.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")

__all__ = ["Progress", "is_terminal", "iterate", "message", "seconds"]


def is_terminal(stream: IO[str] | None) -> bool:
    """Whether ``stream`` is an interactive terminal (a closed or odd stream is not)."""
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def seconds(s: float) -> str:
    """``12 s``, ``3 min 05 s``, ``1 h 02 min``."""
    s = int(round(s))
    if s < 60:
        return f"{s} s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m} min {s:02d} s"
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min"


def message(text: str, show: bool = True, stream: IO[str] | None = None) -> None:
    """A line that stays: above any tqdm bars on a terminal, a plain line in a log."""
    if not show:
        return
    stream = stream if stream is not None else sys.stderr
    if is_terminal(stream):
        tqdm.write(text, file=stream)
    else:
        print(text, file=stream, flush=True)


class Progress:
    """The progress of a loop of ``total`` steps named ``desc``.

    Args:
        total (int): the number of steps (the most, for a loop that may end
            early: :meth:`finish` says where it ended).
        desc (str): what is counted (``"models"``, ``"epochs"``).
        show (bool): ``False`` prints nothing at all.
        stream (file, optional): where to write (default ``sys.stderr``, read
            at construction); a terminal gets a tqdm bar, anything else lines.
        leave (bool): keep the finished bar on the terminal (inner loops: no).
        min_interval (float): in a log, the least seconds between two
            :meth:`step` lines (the first and the last step always print).
        indent (str): prefix of the log lines (nested loops indent theirs).
        unit (str): tqdm's unit.
    """

    def __init__(
        self,
        total: int,
        desc: str,
        show: bool = True,
        stream: IO[str] | None = None,
        leave: bool = True,
        min_interval: float = 30.0,
        indent: str = "",
        unit: str = "it",
    ) -> None:
        self.total, self.desc, self.show = int(total), desc, bool(show)
        self.stream = stream if stream is not None else sys.stderr
        self.tty = is_terminal(self.stream)
        self.min_interval, self.indent = float(min_interval), indent
        self.n, self.t0, self._last_line = 0, time.perf_counter(), -float("inf")
        self._bar: Any = None
        if self.show and self.tty:
            # mininterval 0: every step is drawn (the loops here have slow steps)
            self._bar = tqdm(
                total=self.total,
                desc=desc,
                leave=leave,
                file=self.stream,
                unit=unit,
                dynamic_ncols=True,
                mininterval=0.0,
            )

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def _line(self, text: str) -> None:
        print(self.indent + text, file=self.stream, flush=True)
        self._last_line = time.perf_counter()

    def write(self, text: str) -> None:
        """A message that stays: above the bars on a terminal, a line in a log."""
        message(self.indent + text, self.show, self.stream)

    def start(self, label: str) -> None:
        """Step ``n + 1`` begins on ``label`` (shown beside the bar, or a line)."""
        if not self.show:
            return
        if self._bar is not None:
            self._bar.set_postfix_str(label, refresh=True)
        else:
            self._line(f"{self.desc} {self.n + 1}/{self.total}: {label}")

    def step(self, status: str = "") -> None:
        """One step done; ``status`` (a loss, a time) beside the bar, or in the
        line (a log gets a line at most every ``min_interval`` seconds)."""
        self.n += 1
        if not self.show:
            return
        if self._bar is not None:
            if status:
                self._bar.set_postfix_str(status, refresh=False)
            self._bar.update(1)
        elif self.n in (1, self.total) or time.perf_counter() - self._last_line >= self.min_interval:
            self._line(
                f"{self.desc} {self.n}/{self.total}"
                + (f": {status}" if status else "")
                + f" (elapsed {seconds(self.elapsed)})"
            )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def iterate(
    items: Iterable[T],
    show: bool,
    desc: str,
    label: Callable[[T], str] = str,
    stream: IO[str] | None = None,
) -> Iterator[T]:
    """Yield ``items`` with a :class:`Progress` that names each item
    (``label(item)``) as it starts and, in a log, says how long it took."""
    items = list(items)
    p = Progress(len(items), desc, show=show, stream=stream, min_interval=0.0)
    try:
        for item in items:
            name = label(item)
            p.start(name)
            t = time.perf_counter()
            yield item
            p.step(f"{name} done in {seconds(time.perf_counter() - t)}")
        if show and not p.tty:
            p.write(f"{desc}: all {len(items)} done in {seconds(p.elapsed)}")
    finally:
        p.close()
