"""Collapsed ("folded") stacks, one `tid:N;root;...;leaf count` line per stack.

The format flamegraph.pl, inferno and speedscope read: speedscope takes each line as
`<frames separated by ;> <integer>` (the last space splits off the count), so frame text never
contains ";" or line breaks.
"""

from __future__ import annotations

from typing import BinaryIO, TextIO

from ..model import Frame
from .base import Collector, short_filename

_UNSAFE = str.maketrans({";": ",", "\n": " ", "\r": " "})


class CollapsedCollector(Collector):
    format_name = "collapsed"
    default_extension = "txt"
    cli_flag = "--collapsed"
    cli_help = "collapsed stacks (one line per stack) for flamegraph.pl and speedscope"

    def lines(self) -> list[str]:
        """Lines without newlines, heaviest first, then in text order; equal stacks merged."""
        names: dict[Frame, str] = {}
        counts: dict[str, int] = {}
        for tid, frames, weight in self.stacks():
            parts = [f"tid:{tid}"]
            for frame in reversed(frames):  # root first
                name = names.get(frame)
                if name is None:
                    name = names[frame] = frame_name(frame)
                parts.append(name)
            text = ";".join(parts)
            counts[text] = counts.get(text, 0) + weight
        ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        return [f"{text} {count}" for text, count in ordered]

    def dump(self, fh: BinaryIO) -> None:
        for line in self.lines():
            fh.write(line.encode("utf-8", "backslashreplace") + b"\n")

    def write_stdout(self, stream: TextIO) -> None:
        for line in self.lines():
            stream.write(line + "\n")


def frame_name(frame: Frame) -> str:
    if frame.is_synthetic:
        text = frame.funcname
    else:
        text = f"{short_filename(frame.filename)}:{frame.funcname}:{frame.lineno}"
    return text.translate(_UNSAFE)
