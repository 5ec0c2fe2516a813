"""What a line's instructions say (`--opcodes`, `--native`), shaped for the editor.

The counting is `sampler/lineindex.py`'s (`line_opcodes`, `line_spans`, `line_native`); the
names come from `sampler/cpython/opcodes.py`, per the target's Python version. Here they become the hover's
summary (each instruction with its share of the line and whether it was specialized), the
column spans within the line where the time went (the heat notification carries them, so no
editor ever works them out) and the share of the line's time spent in C.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from sampler.cpython.opcodes import OpcodeTable
from sampler.lineindex import OpcodeHeat, SpanHeat

SUMMARY_LIMIT = 6  # instructions named in a hover; the rest are summed as "others"
SPAN_LIMIT = 32  # pieces of a line sent, at most (a line rarely has more than a handful)
MIN_SPAN_PCT = 1.0  # a span with less of the line's samples is noise, not a place to look at
_LINE_END = 1 << 30  # the end of a span that goes on past its first line


@dataclass(frozen=True)
class Instruction:
    name: str  # as the target ran it: "BINARY_OP_ADD_INT"
    specialized: bool
    # a family that has specialized forms, caught running the generic one (3.11+)
    unspecialized: bool
    samples: int
    pct: float  # of the line's samples


@dataclass(frozen=True)
class ColumnSpan:
    # offsets in the line: UTF-8 bytes as CPython counts them, until server/documents.py puts
    # them on a document's line in the client's position units
    start: int
    end: int | None  # None: the expression goes on past this line
    samples: int  # stacks with an instruction of this span at the line
    pct: float  # of the line's samples


def instructions(opcodes: Iterable[OpcodeHeat], table: OpcodeTable, line_total: int) -> list[Instruction]:
    """A line's instructions, heaviest first, each with its share of the line's samples (a
    stack counts each instruction it has at the line once, so the shares add up to 100% but
    where the line recurses)."""
    rows = [o for o in opcodes if o.opcode >= 0 and o.samples > 0]
    bases = table.specializable
    out = []
    for o in sorted(rows, key=lambda o: (-o.samples, o.opcode)):
        info = table.info(o.opcode)
        out.append(Instruction(
            name=info.opname, specialized=info.is_specialized,
            unspecialized=not info.is_specialized and o.opcode in bases,
            samples=o.samples, pct=100.0 * o.samples / line_total if line_total > 0 else 0.0,
        ))
    return out


def share_text(pct: float) -> str:
    """A share as the hover shows it: whole percents, "<1%" for a little more than nothing."""
    return "<1%" if 0 < pct < 0.5 else f"{pct:.0f}%"


def summary(rows: list[Instruction], limit: int = SUMMARY_LIMIT) -> str:
    """`BINARY_OP_ADD_INT 61% · LOAD_ATTR_INSTANCE_VALUE 22% · CALL (not specialized) 9%`."""
    parts = []
    for row in rows[:limit]:
        name = f"{row.name} (not specialized)" if row.unspecialized else row.name
        parts.append(f"{name} {share_text(row.pct)}")
    rest = sum(row.pct for row in rows[limit:])
    if rest > 0:
        parts.append(f"others {share_text(rest)}")
    return " · ".join(parts)


def column_spans(spans: Iterable[SpanHeat], lineno: int, line_total: int) -> list[ColumnSpan]:
    """Where on line `lineno` its time went, as the editor draws it: the line cut into
    non-overlapping pieces, each belonging to the smallest instruction span covering it (as
    Tachyon's heatmap colours a line: `a + b * c` shows `b * c` apart from the `a + ...`), with
    that span's samples; in order along the line. Spans reaching past the line run to its end."""
    weights: dict[tuple[int, int], int] = {}
    for (end_lineno, col, end_col), samples in spans:
        if samples <= 0 or col < 0 or end_lineno < lineno:
            continue
        end = _LINE_END if end_lineno > lineno else end_col
        if end > col:
            weights[(col, end)] = weights.get((col, end), 0) + samples
    if not weights or line_total <= 0:
        return []
    cuts = sorted({edge for span in weights for edge in span})
    pieces: list[list] = []  # [start, end, span] runs
    for left, right in zip(cuts, cuts[1:]):
        covering = [span for span in weights if span[0] <= left and right <= span[1]]
        if not covering:
            continue
        smallest = min(covering, key=lambda span: (span[1] - span[0], span))
        if pieces and pieces[-1][1] == left and pieces[-1][2] == smallest:
            pieces[-1][1] = right
        else:
            pieces.append([left, right, smallest])
    out = []
    for start, end, span in pieces:
        pct = 100.0 * weights[span] / line_total
        if pct >= MIN_SPAN_PCT:
            out.append(ColumnSpan(start, None if end == _LINE_END else end, weights[span], pct))
    return out[:SPAN_LIMIT]


def native_pct(native_samples: int, line_total: int) -> float:
    """The share of a line's time spent in C code it called (its `<native>` callee)."""
    return 100.0 * native_samples / line_total if line_total > 0 else 0.0
