"""Where `s2s translate` reads: arguments, a file, a pipe (streamed: each line out as soon as it is translated),
or an interactive prompt with line editing and history."""

from __future__ import annotations

import contextlib
import queue
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import typer

STREAM_WAIT = 0.02  # seconds a pipe's batch waits for more lines once it has one


def chunks(lines: Iterator[str], size: int) -> Iterator[list[str]]:
    """Lists of `size` lines (the last one shorter)."""
    chunk: list[str] = []
    for line in lines:
        chunk.append(line)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def streamed(lines: Iterator[str], size: int, wait: float = STREAM_WAIT) -> Iterator[list[str]]:
    """Lists of up to `size` lines: as many as have arrived by `wait` seconds after the first of a list, so that a
    slow writer gets each line back at once and a fast one (a whole file) gets full lists."""
    arrived: queue.Queue = queue.Queue(maxsize=4 * size)
    end = object()

    def read() -> None:
        try:
            for line in lines:
                arrived.put(line)
        except BaseException as err:  # noqa: BLE001 - handed to the reading thread, which raises it
            arrived.put(err)
        arrived.put(end)

    threading.Thread(target=read, daemon=True, name="s2s-stdin").start()
    while True:
        item = arrived.get()
        chunk: list[str] = []
        while item is not end and not isinstance(item, BaseException):
            chunk.append(item)
            if len(chunk) == size:
                break
            try:
                item = arrived.get(timeout=wait)
            except queue.Empty:
                break
        if chunk:
            yield chunk
        if isinstance(item, BaseException):
            raise item
        if item is end:
            return


def sources(texts: list[str], input_file: Path | None) -> tuple[str, Iterator[str]]:
    """(kind, lines): "args", "file", "pipe" (stdin: `-`, or no text with stdin not a terminal) or "prompt"."""
    from s2s_cli.data.corpus import decode_lines, iter_lines, raw_lines

    if input_file is not None and texts:
        raise typer.BadParameter("give sentences or --input FILE, not both.")
    if input_file is not None:
        return "file", iter_lines(input_file)
    if texts and texts != ["-"]:
        return "args", iter(texts)
    if sys.stdin is None:
        raise typer.BadParameter("stdin is closed: give sentences or --input FILE.")
    if not texts and sys.stdin.isatty():
        return "prompt", prompt()
    return "pipe", decode_lines(raw_lines(sys.stdin.buffer), "stdin")


def prompt() -> Iterator[str]:
    """Lines typed at `> ` (arrow keys edit and recall earlier lines), until Ctrl-D."""
    with contextlib.suppress(ImportError):  # not on every platform
        import readline  # noqa: F401 - input() edits lines and keeps a history once it is loaded
    print("Type a sentence and press Enter; Ctrl-D quits.", file=sys.stderr)
    while True:
        try:
            yield input("> ")
        except EOFError:
            print(file=sys.stderr)
            return
