"""A one-line progress bar on stderr for long conversions (only when stderr is a terminal)."""

from __future__ import annotations

import time
from typing import TextIO


class ProgressBar:
    def __init__(self, total: int, stream: TextIO, width: int = 40) -> None:
        self.total = max(total, 1)
        self.stream = stream
        self.width = width
        self.enabled = stream.isatty()
        self._last = 0.0

    def update(self, done: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < 0.1 and done < self.total:
            return
        self._last = now
        frac = min(done / self.total, 1.0)
        filled = int(frac * self.width)
        self.stream.write(f"\r[{'#' * filled}{'.' * (self.width - filled)}] {frac * 100:5.1f}% {done:,}/{self.total:,}")
        self.stream.flush()

    def finish(self) -> None:
        if self.enabled:
            self.update(self.total)
            self.stream.write("\n")
            self.stream.flush()
