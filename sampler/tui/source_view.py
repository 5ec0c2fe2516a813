"""Enter on a row of the live table: the function's source lines with their heat.

What an editor shows beside the code, in the terminal: every line of the definition that holds
the sampled line (decorators included; a module body is the whole file), each with the direct and
cumulative samples of that line in the current view (every function on the line, as the editor's
heat counts it). When the definition cannot be found (an unreadable or unparsable file, a source
edited since it ran, a `<string>` pseudo-file), the function's sampled lines are shown with a
few lines around them, and a note says why.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

from ..lineindex import Heat, LineIndex
from ..model import SYNTHETIC_FILENAME
from ..sourcefiles import SourceText, SourceUnreadable, is_source_file

# A file modified this long after the run started may no longer hold what ran (the slack covers
# a file saved just before the run and clocks in whole seconds).
CHANGED_SLACK_S = 1.0


class SourceView(NamedTuple):
    """The lines of one function with heat, as an editor shows them."""

    filename: str
    funcname: str
    first_line: int  # the def line (1 for a module body); else the first line shown
    lines: list[tuple[int, str, int, int]]  # (lineno, text, direct samples, cumulative samples)
    note: str | None  # why the lines are not (or may not be) the definition that ran
    focus: int = 0  # the row's own line, to put in view first


def build(index: LineIndex, filename: str, funcname: str, lineno: int, read: Callable[[str], SourceText],
          started: float | None = None, context: int = 3) -> SourceView | None:
    """The source view of the row (filename, lineno, funcname) over `index`'s heat.

    `read(filename)` returns the text (raising `SourceUnreadable`); `started` is the run's wall
    clock start, for the note on a file modified since. None for a frame with no place in a file
    (`<GC>`) or a pseudo-file none of whose lines was sampled.
    """
    if filename == SYNTHETIC_FILENAME:
        return None
    heat = index.lines(filename)
    sampled = _function_lines(index, filename, funcname, heat)
    if not is_source_file(filename):
        return _without_text(filename, funcname, lineno, sampled, heat, f"{filename} is not a file")
    try:
        text = read(filename)
    except SourceUnreadable as err:
        reason = err.reason or err.os_error
        return _without_text(filename, funcname, lineno, sampled, heat, f"source not readable: {reason}")
    notes = []
    if started is not None and text.mtime > started + CHANGED_SLACK_S:
        notes.append("file changed since the run started: lines may not match")
    span = _definition_span(text, funcname, lineno)
    if span is None:
        defs = text.definitions
        notes.append("source does not parse" if not defs.parsed
                     else f"no definition of {funcname} holds line {lineno}")
        wanted = _around(sampled or [lineno], context, len(text.lines))
        first = wanted[0] if wanted else lineno
    else:
        first, start, end = span
        wanted = range(start, min(end, len(text.lines)) + 1)
    lines = [(n, text.lines[n - 1], *heat.get(n, Heat(0, 0))) for n in wanted]
    return SourceView(filename, funcname, first, lines, "; ".join(notes) or None, lineno)


def _definition_span(text: SourceText, funcname: str, lineno: int) -> tuple[int, int, int] | None:
    """(def line, first line, last line) of the definition running the row, or None."""
    if funcname == "<module>":
        return (1, 1, len(text.lines)) if text.lines else None
    found = text.definitions.innermost(funcname, lineno)
    if found is None:
        return None
    return found.def_line, found.first_line, found.end_line


def _function_lines(index: LineIndex, filename: str, funcname: str, heat: dict[int, Heat]) -> list[int]:
    """The lines of `filename` sampled in `funcname`, in order."""
    return sorted(n for n in heat if any(spot[2] == funcname for spot, _total in index.line_spots(filename, n)))


def _around(lines: list[int], context: int, last: int) -> list[int]:
    """`lines` with `context` lines either side, within 1..last, in order, each once."""
    out: set[int] = set()
    for n in lines:
        out.update(range(max(1, n - context), min(last, n + context) + 1))
    return sorted(out)


def _without_text(filename: str, funcname: str, lineno: int, sampled: list[int], heat: dict[int, Heat],
                  note: str) -> SourceView | None:
    """The sampled lines alone, with no text: all that is known of a file that cannot be read."""
    if not sampled:
        return None
    lines = [(n, "", *heat[n]) for n in sampled]
    return SourceView(filename, funcname, sampled[0], lines, note, lineno)
