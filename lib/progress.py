"""What a headless run shows while it goes: the notebook section it has reached, and bars of its
training and scoring steps.

Two sides, with one file of JSON lines (``<run>/progress.jsonl``) between them:

- In the kernel, training and scoring loops report their steps through ``Bar``, ``track`` and
  ``trainer_callback``. They append to the file that ``LANGADAPT_PROGRESS`` names, a few times a
  second at most; without that variable (JupyterLab, scripts) they do nothing.
- In the parent (``python -m lib run`` / ``sweep``), ``terminal`` prints each markdown heading as
  the notebook reaches it (nbclient's ``on_cell_start`` hook), tails the file into tqdm bars, and
  sends the Jupyter machinery's own logs and warnings (papermill, nbclient, jupyter_client) to the
  run's ``kernel.log``.

Why a file and not the kernel's stderr: inside a kernel the Trainer draws its bar as HTML display
updates, and a tqdm line is text for eyes, not events; the kernel's stderr keeps going into the
executed notebook (and ``kernel.log``) as before. On a terminal the bars redraw in place; elsewhere
(CI, nohup, a pipe) no carriage returns: a bar that lasts says how far it is at each quarter, and
every bar ends with one summary line.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
import sys
import threading
import time
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import IO, Any, TypeVar

CHANNEL_ENV = "LANGADAPT_PROGRESS"
PROGRESS_FILE = "progress.jsonl"
REPORT_EVERY_S = 0.5  # kernel side: a bar writes at most this often (plus its start and its end)
POLL_S = 0.2  # parent side: how often the file is read
PLAIN_AFTER_S = 10.0  # off a terminal: a bar still going after this long says how far it is...
PLAIN_EVERY_S = 300.0  # ...at each quarter, and at least this often (every bar ends with one line)
MACHINERY_LOGGERS = ("papermill", "nbclient", "jupyter_client", "traitlets", "py.warnings")

T = TypeVar("T")


# ---------------------------------------------------------------- kernel side: report steps


class Bar:
    """The steps of one loop, reported to the run's progress file (a no-op without one)."""

    _ids = itertools.count()

    def __init__(self, desc: str, total: int | None = None, *, unit: str = "it", initial: int = 0):
        self.total = total
        self.n = initial
        self._path = os.environ.get(CHANNEL_ENV) or None
        self._id = f"{os.getpid()}-{next(Bar._ids)}"
        self._written_at = 0.0
        self._write(desc=desc, total=total, unit=unit)

    def update(self, steps: int = 1) -> None:
        self.moveto(self.n + steps)

    def moveto(self, n: int) -> None:
        self.n = n
        finished = self.total is not None and n >= self.total
        if self._path and (finished or time.monotonic() - self._written_at >= REPORT_EVERY_S):
            self._write()

    def close(self) -> None:
        if self._path:
            self._write(done=True)
            self._path = None

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write(self, **fields: Any) -> None:
        if not self._path:
            return
        try:
            with open(self._path, "a", encoding="utf-8") as channel:
                channel.write(json.dumps({"id": self._id, "n": self.n, **fields}, ensure_ascii=False) + "\n")
        except OSError:
            self._path = None  # a display must never stop the run it displays
        self._written_at = time.monotonic()


def track(iterable: Iterable[T], desc: str, *, total: int | None = None, unit: str = "it") -> Iterator[T]:
    """Iterate ``iterable``, reporting each finished item as a step of the bar ``desc``."""
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    with Bar(desc, total, unit=unit) as bar:
        for item in iterable:
            yield item
            bar.update()


def trainer_callback():
    """A transformers ``TrainerCallback`` reporting optimizer steps as the bar ``train`` (first
    process only; a resumed run starts at its checkpoint's step). transformers is imported here,
    not at the top: the parent process, which only draws, never loads it."""
    from transformers import TrainerCallback

    class TrainerSteps(TrainerCallback):
        bar: Bar | None = None

        def on_train_begin(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
                self.bar = Bar("train", state.max_steps, unit="step", initial=state.global_step)

        def on_step_end(self, args, state, control, **kwargs):
            if self.bar is not None:
                self.bar.moveto(state.global_step)

        def on_train_end(self, args, state, control, **kwargs):
            if self.bar is not None:
                self.bar.close()
                self.bar = None

    return TrainerSteps()


# ---------------------------------------------------------------- parent side: read and draw

_ATX_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")


def last_heading(markdown: str) -> str | None:
    """The last ATX heading of a markdown cell (``## Train``), as written; None if it has none.
    Lines inside fenced code blocks are code, not headings."""
    heading, fenced = None, False
    for line in markdown.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            continue
        match = None if fenced else _ATX_HEADING.match(line)
        if match and match.group(2):
            heading = f"{match.group(1)} {match.group(2).strip()}"
    return heading


def clock(seconds: float) -> str:
    return str(timedelta(seconds=int(max(seconds, 0))))


class Tail:
    """The events appended to a progress file since the last ``read`` (a half-written last line
    waits for its end; a line that is not a JSON object is skipped)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._offset = 0
        self._partial = b""

    def read(self) -> list[dict[str, Any]]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return []
        self._offset += len(data)
        *lines, self._partial = (self._partial + data).split(b"\n")
        events = []
        for line in lines:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and "id" in event:
                events.append(event)
        return events


@dataclass
class _Shown:
    desc: str
    total: int | None
    unit: str
    n: int
    initial: int
    started: float
    said_at: float
    said_quarter: int = 0
    bar: Any = None  # a tqdm on a terminal


class Display:
    """Sections and bars of one run on ``stream``: tqdm bars on a terminal, plain lines elsewhere.
    ``tail`` is the run's progress file, read by ``drain`` (from a reader thread and before each
    heading, so a bar that ended in the previous section is shown there)."""

    def __init__(self, stream: IO[str], tail: Tail | None = None, *, live: bool | None = None):
        self.stream = stream
        self.tail = tail
        self.live = stream.isatty() if live is None else live
        self.started = time.monotonic()
        self._bars: dict[str, _Shown] = {}
        self._lock = threading.RLock()

    def on_cell_start(self, cell, cell_index: int | None = None, **_: Any) -> None:
        """nbclient's hook, called for every cell (markdown ones too) before it runs."""
        if cell.get("cell_type") == "markdown":
            heading = last_heading("".join(cell.get("source", "")))
            if heading:
                with self._lock:
                    self.drain()  # the previous cell has finished: all it reported is in the file
                    self.say(f"[{clock(time.monotonic() - self.started)}] {heading}")

    def drain(self) -> None:
        with self._lock:
            for event in self.tail.read() if self.tail else ():
                self.apply(event)

    def say(self, line: str) -> None:
        with self._lock:
            if self.live:
                from tqdm import tqdm

                tqdm.write(line, file=self.stream)  # above the open bars, which redraw below it
            else:
                print(line, file=self.stream, flush=True)

    def apply(self, event: dict[str, Any]) -> None:
        with self._lock:
            key, now = str(event["id"]), time.monotonic()
            n = event.get("n") if isinstance(event.get("n"), int) else 0
            if "desc" in event:
                total = event.get("total") if isinstance(event.get("total"), int) else None
                shown = _Shown(str(event["desc"]), total, str(event.get("unit") or "it"), n, n, now, now)
                self._bars[key] = shown
                if self.live:
                    from tqdm import tqdm

                    shown.bar = tqdm(desc=f"    {shown.desc}", total=total, unit=shown.unit, initial=n,
                                     file=self.stream, leave=False, dynamic_ncols=True)
            shown = self._bars.get(key)
            if shown is None:
                return  # the start of this bar was not seen
            self._advance(shown, n, now)
            if event.get("done"):
                del self._bars[key]
                if shown.bar is not None:
                    shown.bar.close()
                self.say(self._summary(shown, now))

    def close(self) -> None:
        """Remove the bars still open (a kernel that died or was stopped never closes them)."""
        with self._lock:
            for shown in self._bars.values():
                if shown.bar is not None:
                    shown.bar.close()
            self._bars.clear()

    def _advance(self, shown: _Shown, n: int, now: float) -> None:
        shown.n = n
        if shown.bar is not None:  # on a terminal: tqdm keeps the rate and the time left
            if n >= shown.bar.n:
                shown.bar.update(n - shown.bar.n)
            else:
                shown.bar.n = n
                shown.bar.refresh()
            return
        if now - shown.started < PLAIN_AFTER_S:  # off a terminal: a short bar says only how it ended
            return
        if shown.total and n < shown.total:
            quarter = 4 * n // shown.total
            if quarter > shown.said_quarter or now - shown.said_at >= PLAIN_EVERY_S:
                shown.said_quarter, shown.said_at = max(quarter, shown.said_quarter), now
                self.say(f"    {shown.desc}: {100 * n // shown.total}% ({n}/{shown.total}) "
                         f"{clock(now - shown.started)}")
        elif not shown.total and now - shown.said_at >= PLAIN_EVERY_S:
            shown.said_at = now
            self.say(f"    {shown.desc}: {n} {shown.unit} {clock(now - shown.started)}")

    @staticmethod
    def _summary(shown: _Shown, now: float) -> str:
        seconds = now - shown.started
        done = f"{shown.n}/{shown.total}" if shown.total else str(shown.n)
        stopped = " stopped at" if shown.total and shown.n < shown.total else ""
        steps = shown.n - shown.initial  # a resumed run's steps before it are not this run's
        rate = f" ({steps / seconds:.3g} {shown.unit}/s)" if seconds > 0 and steps > 0 else ""
        return f"    {shown.desc}:{stopped} {done} in {clock(seconds)}{rate}"


_quiet = False
QUIET_ENV = "LANGADAPT_QUIET"  # --quiet reaches a parallel sweep's worker processes through it


def set_quiet(quiet: bool) -> None:
    """``--quiet``: runs show no sections and no bars (errors still reach the terminal), here and in
    the worker processes this one starts (they inherit the environment)."""
    global _quiet
    _quiet = bool(quiet)
    if _quiet:
        os.environ[QUIET_ENV] = "1"
    else:
        os.environ.pop(QUIET_ENV, None)


def is_quiet() -> bool:
    return _quiet or os.environ.get(QUIET_ENV) == "1"


@contextmanager
def terminal(run_dir: Path, kernel_log: Path, stream: IO[str] | None = None) -> Iterator[dict[str, Any]]:
    """Around ``papermill.execute_notebook``: yields the keyword arguments to pass it (nbclient's
    ``on_cell_start``), sets ``LANGADAPT_PROGRESS`` for the kernel it starts, and draws the run's
    sections and bars on ``stream`` (default stderr; nothing under ``set_quiet``) until it ends.
    The machinery's logs and warnings go to ``kernel_log`` meanwhile."""
    with _machinery_logged_to(kernel_log):
        if is_quiet():
            yield {}
            return
        channel = Path(run_dir) / PROGRESS_FILE
        channel.write_text("")  # a resumed run starts a fresh display
        display, stop = Display(stream or sys.stderr, Tail(channel)), threading.Event()

        def follow() -> None:
            while not stop.wait(POLL_S):
                display.drain()

        reader = threading.Thread(target=follow, name="progress", daemon=True)
        previous = os.environ.get(CHANNEL_ENV)
        os.environ[CHANNEL_ENV] = str(channel)
        reader.start()
        try:
            yield {"on_cell_start": display.on_cell_start}
        finally:
            stop.set()
            reader.join()
            display.drain()  # what the kernel wrote last
            display.close()
            if previous is None:
                os.environ.pop(CHANNEL_ENV, None)
            else:
                os.environ[CHANNEL_ENV] = previous


@contextmanager
def _machinery_logged_to(path: Path) -> Iterator[None]:
    """Papermill's INFO lines, nbclient's and jupyter_client's warnings and Python warnings raised
    while the notebook runs go to ``path``, not the terminal (papermill's ``log_output`` copy of the
    notebook's output too); the loggers are restored afterwards."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s | %(message)s"))
    saved = []
    for name in MACHINERY_LOGGERS:
        logger = logging.getLogger(name)
        saved.append((logger, logger.handlers[:], logger.propagate, logger.level))
        logger.handlers, logger.propagate = [handler], False
        logger.setLevel(logging.INFO)

    def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
        text = warnings.formatwarning(message, category, filename, lineno, line).rstrip()
        logging.getLogger("py.warnings").warning(text)

    try:
        with warnings.catch_warnings():
            warnings.showwarning = show_warning
            yield
    finally:
        for logger, handlers, propagate, level in saved:
            logger.handlers, logger.propagate = handlers, propagate
            logger.setLevel(level)
        handler.close()
