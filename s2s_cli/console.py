"""Terminal output: results on stdout, progress and errors on stderr, JSON where asked."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

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


@contextlib.contextmanager
def native_logs_silenced() -> Iterator[None]:
    """Send fd 2 to /dev/null while Python's sys.stderr keeps writing to the real stderr.

    TensorFlow's C++ runtime prints absl/oneDNN/CUDA lines to fd 2 that no environment variable turns off in
    current releases; `--debug` keeps them. Under a test runner, where sys.stderr is not fd 2, nothing changes.
    """
    try:
        is_fd2 = sys.stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):
        is_fd2 = False
    if not is_fd2:
        yield
        return
    sys.stderr.flush()
    real_stderr = os.fdopen(os.dup(2), "w", buffering=1, encoding=sys.stderr.encoding, errors="backslashreplace")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    saved, sys.stderr = sys.stderr, real_stderr
    try:
        yield
    finally:
        real_stderr.flush()
        os.dup2(real_stderr.fileno(), 2)
        sys.stderr = saved
        real_stderr.close()


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

    def on_validation(self, record: Validation) -> None:
        best = " *" if record.is_best else ""
        self.progress.console.print(
            f"validation step {record.step}: loss {record.valid_loss:.3f}  ppl {record.ppl:.2f}  "
            f"BLEU {record.bleu:.2f}  chrF {record.chrf:.2f}{best}"
        )
