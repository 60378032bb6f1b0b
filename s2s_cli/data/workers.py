"""Work on a stream of items spread over fresh processes, the results coming back in order."""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any


def in_order(
    work: Callable[[Any], Any],
    items: Iterable[Any],
    workers: int,
    initializer: Callable[..., None] | None = None,
    initargs: tuple = (),
) -> Iterator[tuple[Any, Any]]:
    """(item, work(item)) of each item, in order; on `workers` fresh processes, each first running
    `initializer(*initargs)` (with one worker, all in this process). At most two items a worker are in flight, so
    memory stays flat however long the stream. `work` and `initializer` must be module-level functions (or partials
    of them): they are sent to the workers by name."""
    if workers <= 1:
        if initializer is not None:
            initializer(*initargs)
        yield from ((item, work(item)) for item in items)
        return
    # spawn, not fork: the parent may run TensorFlow's threads, which a forked child would inherit stopped
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=initializer, initargs=initargs) as pool:
        pending: deque = deque()
        for item in items:
            pending.append((item, pool.submit(work, item)))
            if len(pending) >= 2 * workers:
                item, future = pending.popleft()
                yield item, future.result()
        while pending:
            item, future = pending.popleft()
            yield item, future.result()
