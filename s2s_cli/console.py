"""Terminal output: results on stdout, progress and errors on stderr, JSON where asked."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from s2s_cli.rundir import Validation


def stdout() -> Console:
    return Console(file=sys.stdout, highlight=False, soft_wrap=True)


def stderr() -> Console:
    return Console(file=sys.stderr, highlight=False, soft_wrap=True)


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def error(message: str) -> None:
    stderr().print(f"[bold red]error:[/] {escape(message)}")


def warn(message: str) -> None:
    stderr().print(f"[yellow]warning:[/] {escape(message)}")


def info(message: str) -> None:
    stderr().print(escape(message))


def table(title: str, rows: list[tuple[str, Any]]) -> Table:
    out = Table(title=title, show_header=False, title_justify="left")
    out.add_column(style="bold")
    out.add_column(justify="right")
    for name, value in rows:
        out.add_row(name, str(value))
    return out


# TensorFlow's C++ start-up chatter on fd 2 that no environment variable turns off in current releases
NATIVE_NOISE = (
    r"^(?:[IW]\d{4} |E\d{4} .*(?:cuInit|cuda|CUDA|oneDNN)|WARNING: All log messages before absl::InitializeLog"
    r"|To enable the following instructions|.*rebuild TensorFlow with the appropriate compiler flags)"
)
# Runs in its own process, so that what a crashing process wrote last still reaches the terminal.
_FILTER = """
import re, sys
noise = re.compile(sys.argv[1])
for line in sys.stdin.buffer:
    if not noise.match(line.decode("utf-8", "replace")):
        sys.stdout.buffer.write(line)
        sys.stdout.flush()
"""


@contextlib.contextmanager
def native_logs_filtered() -> Iterator[None]:
    """Pass fd 2 through a filter that drops TensorFlow's start-up chatter and keeps everything else (a fatal
    error's message above all), while Python's sys.stderr writes to the real stderr. `--debug` leaves fd 2 alone;
    so does a test runner, where sys.stderr is not fd 2."""
    try:
        is_fd2 = sys.stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):
        is_fd2 = False
    if not is_fd2:
        yield
        return
    sys.stderr.flush()
    real_fd = os.dup(2)
    read_end, write_end = os.pipe()
    filter_process = subprocess.Popen(
        [sys.executable, "-c", _FILTER, NATIVE_NOISE], stdin=read_end, stdout=real_fd, close_fds=True
    )
    os.close(read_end)
    os.dup2(write_end, 2)
    os.close(write_end)
    real_stderr = os.fdopen(real_fd, "w", buffering=1, encoding=sys.stderr.encoding, errors="backslashreplace")
    saved, sys.stderr = sys.stderr, real_stderr
    try:
        yield
    finally:
        real_stderr.flush()
        os.dup2(real_fd, 2)  # the pipe's last writer closes: the filter sees its end
        sys.stderr = saved
        real_stderr.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            filter_process.wait(timeout=5)


SHADES = " ░▒▓█"


def alignment_grid(alignment) -> Table:
    """An alignment as a grid: a row per target token, a column per source token, darker for more attention."""
    grid = Table(show_header=True, box=None, pad_edge=False, padding=(0, 1))
    grid.add_column("")
    for token in alignment.source_tokens:
        grid.add_column(escape(token), justify="center")
    for token, row in zip(alignment.target_tokens, alignment.weights):
        grid.add_row(escape(token), *(SHADES[min(int(w * len(SHADES)), len(SHADES) - 1)] * 2 for w in row))
    return grid


def is_terminal() -> bool:
    """Is stderr a terminal (where progress bars go)?"""
    return sys.stderr.isatty()


class _Rate(ProgressColumn):
    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        return Text(f"{task.speed or 0:,.0f} {self.unit}/s")


class _Bars:
    """A rich Progress on stderr, started and stopped with the `with` block; None when stderr is not a terminal."""

    progress: Progress | None = None

    def __enter__(self):
        if self.progress:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress:
            self.progress.stop()


class CountBar(_Bars):
    """Progress through `total` items (or an open count) on stderr, with items/s and the time left; nothing when
    stderr is not a terminal. `advance(n)` counts n more done."""

    def __init__(self, total: int | None, unit: str, description: str = "") -> None:
        if is_terminal():
            columns = [TextColumn(description), BarColumn(), MofNCompleteColumn()] if total else [SpinnerColumn()]
            columns += [_Rate(unit), TimeElapsedColumn()] + (
                [TextColumn("ETA"), TimeRemainingColumn()] if total else []
            )
            # stdout stays the results': rich would otherwise print what is written to it above the bar
            self.progress = Progress(*columns, console=stderr(), transient=True, redirect_stdout=False)
            self.task = self.progress.add_task(description, total=total)

    def advance(self, count: int) -> None:
        if self.progress:
            self.progress.advance(self.task, count)


class PhaseBar(_Bars):
    """One bar per phase of a long job (reading, splitting, encoding...) on stderr, when it is a terminal:
    `update(phase, done, total)`."""

    def __init__(self) -> None:
        self.tasks: dict[str, Any] = {}
        if is_terminal():
            columns = [TextColumn("{task.description:<16}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
            columns += [TextColumn("ETA"), TimeRemainingColumn()]
            self.progress = Progress(*columns, console=stderr(), transient=True, redirect_stdout=False)

    def update(self, phase: str, done: int, total: int) -> None:
        if not self.progress:
            return
        if phase not in self.tasks:
            self.tasks[phase] = self.progress.add_task(phase, total=total or None)
        self.progress.update(self.tasks[phase], completed=done, total=total or None)


class TrainBar:
    """A rich progress bar for training: epoch, step, loss, target tokens/s, learning rate, ETA."""

    def __init__(self, max_steps: int = 0) -> None:
        self.max_steps = max_steps
        self.console = stderr()
        self.progress = Progress(
            TextColumn("epoch {task.fields[epoch]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.3f}  {task.fields[tps]:,.0f} tok/s  lr {task.fields[lr]:.2e}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self.task = None

    def __enter__(self) -> TrainBar:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def on_start(self, steps_per_epoch: int, epochs: int, step: int, epoch: int) -> None:
        total = steps_per_epoch * epochs
        total = min(total, self.max_steps) if self.max_steps else total
        self.task = self.progress.add_task(
            "train", total=total, completed=step, epoch=epoch + 1, loss=0.0, tps=0.0, lr=0.0
        )

    def on_step(self, step: int, epoch: int, loss: float, tokens_per_sec: float, lr: float) -> None:
        self.progress.update(self.task, completed=step, epoch=epoch + 1, loss=loss, tps=tokens_per_sec, lr=lr)

    def on_plan(self, total_steps: int) -> None:
        self.progress.update(self.task, total=total_steps)

    def on_validation(self, record: Validation) -> None:
        best = " *" if record.is_best else ""
        self.progress.console.print(
            f"validation step {record.step}: loss {record.valid_loss:.3f}  ppl {record.ppl:.2f}  "
            f"BLEU {record.bleu:.2f}  chrF {record.chrf:.2f}{best}"
        )
