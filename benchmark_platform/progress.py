"""Progress of long CLI work: a rich progress bar (counts and rate) on a terminal, plain log lines otherwise."""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

PLAIN_LINE_EVERY_SECONDS = 5.0
log = logging.getLogger(__name__)


class ProgressReporter:
    """``update(completed, total)`` as often as you like; on a terminal a bar redraws, elsewhere a line is written
    at most every few seconds (and once at the end), so CI logs stay readable."""

    def __init__(self, description: str, *, echo: Callable[[str], None] = print, interactive: bool | None = None):
        self.description = description
        self.echo = echo
        self.interactive = sys.stderr.isatty() if interactive is None else interactive
        self.completed = 0
        self.total = 0
        self._started = time.monotonic()
        self._last_line = 0.0
        self._first_completed: int | None = None
        self._bar: Progress | None = None
        self._task = None

    def __enter__(self) -> ProgressReporter:
        if self.interactive:
            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TaskProgressColumn(),
                TextColumn("{task.fields[rate]:.0f}/s"),
                TimeRemainingColumn(),
                transient=False,
            )
            self._bar.start()
            self._task = self._bar.add_task(self.description, total=None, rate=0.0)
        return self

    def rate(self) -> float:
        """Completions per second since the first update (work done before watching began does not count)."""
        done_here = self.completed - (self._first_completed or 0)
        return done_here / max(time.monotonic() - self._started, 1e-9)

    def update(self, completed: int, total: int) -> None:
        if self._first_completed is None:
            self._first_completed, self._started = completed, time.monotonic()
        self.completed, self.total = completed, total
        if self._bar is not None:
            self._bar.update(self._task, completed=completed, total=total or None, rate=self.rate())
        elif time.monotonic() - self._last_line >= PLAIN_LINE_EVERY_SECONDS:
            self._plain_line()

    def _plain_line(self) -> None:
        self._last_line = time.monotonic()
        share = f" ({100 * self.completed / self.total:.0f}%)" if self.total else ""
        self.echo(f"    {self.description}: {self.completed}/{self.total}{share}, {self.rate():.0f}/s")

    def __exit__(self, *exc_info) -> None:
        if self._bar is not None:
            self._bar.stop()
        else:
            self._plain_line()


@contextmanager
def watch_queue(
    engine: Engine,
    model_version_id,
    description: str,
    *,
    echo: Callable[[str], None] = print,
    hardware: str | None = None,
    interactive: bool | None = None,
    poll_seconds: float = 0.5,
) -> Iterator[None]:
    """Show a model version's queue draining (completed of total, optionally one hardware pool) while the body runs:
    a read-only poll from a background thread, so whoever does the work needs no callback."""
    from benchmark_platform import queue

    def counts() -> tuple[int, int]:
        progress = queue.progress(engine, model_version_id)
        statuses = progress.by_hardware.get(hardware, {}) if hardware else progress.by_status
        return statuses.get("completed", 0), sum(statuses.values())

    done = threading.Event()

    def update(reporter: ProgressReporter) -> None:
        try:
            reporter.update(*counts())
        except SQLAlchemyError as error:  # the database may be away for a while: the work goes on, so does the watch
            log.warning("progress poll failed (will retry): %s", getattr(error, "orig", None) or error)

    def poll() -> None:
        with ProgressReporter(description, echo=echo, interactive=interactive) as reporter:
            while not done.wait(poll_seconds):
                update(reporter)
            update(reporter)

    watcher = threading.Thread(target=poll, name="queue-progress", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join()
