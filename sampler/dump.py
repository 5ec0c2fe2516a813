"""`heatline dump PID`: one sample of every thread, printed like a Python traceback."""

from __future__ import annotations

import os
from typing import Iterable

from sampler.model import (
    GIL_REQUESTED,
    HAS_EXCEPTION,
    HAS_GIL,
    MAIN_THREAD,
    ON_CPU,
    UNKNOWN,
    ThreadSample,
)
from sampler.target.files import TargetFiles
from sampler.target.maps import process_start_time

_LABELS = (
    (MAIN_THREAD, "main thread"),
    (HAS_GIL, "has GIL"),
    (ON_CPU, "on CPU"),
    (GIL_REQUESTED, "waiting for GIL"),
    (HAS_EXCEPTION, "has exception"),
)


def status_labels(status: int) -> list[str]:
    labels = [text for flag, text in _LABELS if status & flag]
    if not status & (HAS_GIL | GIL_REQUESTED | HAS_EXCEPTION | UNKNOWN | ON_CPU):
        labels.append("idle")
    return labels


class SourceLines:
    """Source lines as the target sees its files (its root and cwd), flagged when edited since."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.started = process_start_time(pid)
        self._cache: dict[str, list[str] | None] = {}
        self._files = TargetFiles(pid)

    def _path(self, filename: str) -> str:
        return self._files.path(filename)

    def line(self, filename: str, lineno: int) -> str | None:
        if filename.startswith("<") or lineno <= 0:
            return None
        if filename not in self._cache:
            path = self._path(filename)
            try:
                if self.started is not None and os.stat(path).st_mtime > self.started + 1:
                    self._cache[filename] = None
                    return "[source file changed after process started]"
                with open(path, encoding="utf-8", errors="replace") as fh:
                    self._cache[filename] = fh.read().splitlines()
            except OSError:
                self._cache[filename] = []
        lines = self._cache[filename]
        if lines is None:
            return "[source file changed after process started]"
        return lines[lineno - 1].strip() if 0 < lineno <= len(lines) else None


def display_path(filename: str) -> str:
    if os.path.isabs(filename):
        try:
            rel = os.path.relpath(filename)
        except ValueError:
            return filename
        if not rel.startswith(".."):
            return rel
    return filename


def format_dump(
    pid: int,
    threads: Iterable[ThreadSample],
    sources: SourceLines | None = None,
    names: dict[int, str] | None = None,
) -> str:
    threads = list(threads)
    if not threads:
        return f"No Python stacks found for PID {pid}\n"
    several_interps = len({t.interpreter_id for t in threads}) > 1
    out: list[str] = []
    for t in threads:
        labels = status_labels(t.status)
        where = f"thread {t.thread_id}"
        name = (names or {}).get(t.thread_id)
        if name:
            where += f' "{name}"'
        if several_interps:
            where = f"interpreter {t.interpreter_id}, " + where
        out.append(f"Stack dump for PID {pid}, {where} ({', '.join(labels + ['most recent call last']).replace(', most recent', '; most recent')}):")
        for frame in reversed(t.frames):
            if frame.is_synthetic:
                out.append(f"  {frame.funcname}")
                continue
            out.append(f'  File "{display_path(frame.filename)}", line {frame.lineno}, in {frame.funcname}')
            text = sources.line(frame.filename, frame.lineno) if sources else None
            if text:
                out.append(f"    {text}")
        out.append("")
    return "\n".join(out)
