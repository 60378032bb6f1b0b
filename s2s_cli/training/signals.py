"""SIGINT and SIGTERM during training: before the first step they stop at once; in the loop they are recorded,
so that the trainer can save a checkpoint first."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Iterator

from s2s_cli.errors import TrainingInterrupted

SIGNAL_EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143}


@contextlib.contextmanager
def _handled(handler: Callable[[int, object], None]) -> Iterator[None]:
    previous = {}
    for sig in SIGNAL_EXIT:
        with contextlib.suppress(ValueError):  # not the main thread: leave handlers alone
            previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def stop_at_once() -> Iterator[None]:
    """A signal raises TrainingInterrupted where the program is (reading data, building the model)."""

    def stop(signum: int, frame: object) -> None:
        sig = signal.Signals(signum)
        raise TrainingInterrupted(f"{sig.name} received before training started; nothing was saved.", SIGNAL_EXIT[sig])

    with _handled(stop):
        yield


@contextlib.contextmanager
def recorded() -> Iterator[list[int]]:
    """Signals are appended to the yielded list instead of stopping the program."""
    received: list[int] = []
    with _handled(lambda signum, frame: received.append(signum)):
        yield received


def interrupted(signum: int, message: str) -> TrainingInterrupted:
    """The error that ends a training stopped by `signum`, with its exit code."""
    sig = signal.Signals(signum)
    return TrainingInterrupted(f"{sig.name} received: {message}", SIGNAL_EXIT[sig])
