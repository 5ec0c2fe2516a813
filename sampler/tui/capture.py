"""Output that must not reach the terminal while `--live` draws on it: the launched target's
stdout and stderr, and anything heatline itself writes to stderr. Each goes to an unlinked
temporary file and is shown once the terminal is restored (its last lines, when it is long)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from typing import BinaryIO, Iterator

from sampler.output_path import point_at_devnull

TAIL_LINES = 50
TAIL_BYTES = 64 * 1024


def write_tail(source: BinaryIO, stream: BinaryIO, what: str) -> None:
    """Copy the end of `source` (at most TAIL_LINES lines of its last TAIL_BYTES) to `stream`,
    saying first how much was left out, if anything."""
    size = source.seek(0, os.SEEK_END)
    if size == 0:
        return
    start = max(0, size - TAIL_BYTES)
    source.seek(start)
    data = source.read()
    lines = data.splitlines(keepends=True)
    if start > 0:
        lines = lines[1:]  # the first one was cut in the middle
    cut = start > 0 or len(lines) > TAIL_LINES
    lines = lines[-TAIL_LINES:]
    stream.flush()
    if cut:
        stream.write(f"[heatline: {what} wrote {size:,} bytes during --live; its last {len(lines)} lines:]\n"
                     .encode())
    stream.writelines(lines)
    if lines and not lines[-1].endswith(b"\n"):
        stream.write(b"\n")
    stream.flush()


class TargetOutput:
    """A `run --live` target's stdin (nothing: the keys are heatline's), stdout and stderr."""

    def __init__(self) -> None:
        self._out = tempfile.TemporaryFile()
        self._err = tempfile.TemporaryFile()
        self._shown = False

    @property
    def stdio(self) -> tuple[int, int, int]:
        return subprocess.DEVNULL, self._out.fileno(), self._err.fileno()

    def show(self) -> None:
        """Once, after the terminal is restored: the target's stdout to ours, its stderr to ours."""
        if self._shown:
            return
        self._shown = True
        for held, stream, what in ((self._out, sys.stdout, "the target's stdout"),
                                   (self._err, sys.stderr, "the target's stderr")):
            try:
                stream.flush()
                write_tail(held, stream.buffer, what)
            except OSError:  # our terminal hung up (SIGHUP, then EIO): nobody is left to read it
                point_at_devnull(stream)
            held.close()


@contextmanager
def stderr_held() -> Iterator[None]:
    """heatline's own stderr (file descriptor 2: Python warnings, a C library's message) goes to
    a temporary file while the block runs, and is written out after it."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            write_tail(held, sys.stderr.buffer, "heatline")
