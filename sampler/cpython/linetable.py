"""Mapping a bytecode offset to source positions, for each line-table format CPython has used.

- 3.9: `co_lnotab`, pairs of (byte offset increment, signed line increment).
- 3.10: `co_linetable`, pairs of (byte range length, signed line delta; -128 = no line).
- 3.11+: the location table (PEP 657): variable-length entries with columns.

Each decoder turns a whole table into sorted ranges once, so lookups are a bisect.
"""

from __future__ import annotations

import bisect
from typing import Iterator, NamedTuple


class Location(NamedTuple):
    lineno: int
    end_lineno: int = -1
    col: int = -1
    end_col: int = -1


class LineTable:
    """Sorted, non-overlapping [start, end) byte ranges with their locations."""

    __slots__ = ("_starts", "_ends", "_locs", "firstlineno")

    def __init__(self, ranges: list[tuple[int, int, Location]], firstlineno: int) -> None:
        self._starts = [r[0] for r in ranges]
        self._ends = [r[1] for r in ranges]
        self._locs = [r[2] for r in ranges]
        self.firstlineno = firstlineno

    def locate(self, byte_offset: int) -> Location:
        """The location of the instruction at `byte_offset` (first line if not started yet)."""
        if byte_offset < 0:
            return Location(self.firstlineno)
        i = bisect.bisect_right(self._starts, byte_offset) - 1
        if i >= 0 and byte_offset < self._ends[i]:
            loc = self._locs[i]
            if loc.lineno >= 0:
                return loc
        # No location for this instruction (e.g. an artificial RESUME): fall back to the
        # nearest earlier instruction that has one, as tracebacks effectively do.
        while i >= 0:
            if self._locs[i].lineno >= 0:
                return self._locs[i]
            i -= 1
        return Location(self.firstlineno)


def _pairs(table: bytes) -> Iterator[tuple[int, int]]:
    """(unsigned byte, signed byte) pairs: the shape of both pre-3.11 tables."""
    for i in range(0, len(table) - 1, 2):
        second = table[i + 1]
        yield table[i], second - 0x100 if second >= 0x80 else second


def parse_lnotab(table: bytes, firstlineno: int) -> LineTable:
    """3.9 and earlier. Line increments are signed bytes (since 3.8)."""
    ranges: list[tuple[int, int, Location]] = []
    addr = 0
    line = firstlineno
    start = 0
    for addr_incr, line_incr in _pairs(table):
        if addr_incr:
            ranges.append((start, addr + addr_incr, Location(line)))
            start = addr + addr_incr
        addr += addr_incr
        line += line_incr
    ranges.append((start, 1 << 62, Location(line)))
    return LineTable(_merge(ranges), firstlineno)


def parse_linetable_310(table: bytes, firstlineno: int) -> LineTable:
    """3.10. Offsets are in bytes; a line delta of -128 marks a range with no line."""
    ranges: list[tuple[int, int, Location]] = []
    line = firstlineno
    end = 0
    for sdelta, ldelta in _pairs(table):
        start = end
        end = start + sdelta
        if ldelta == -128:
            loc = Location(-1)
        else:
            line += ldelta
            loc = Location(line)
        if sdelta:
            ranges.append((start, end, loc))
    return LineTable(_merge(ranges), firstlineno)


def _varint(table: bytes, pos: int) -> tuple[int, int]:
    b = table[pos]
    pos += 1
    val = b & 63
    shift = 6
    while b & 64:
        b = table[pos]
        pos += 1
        val |= (b & 63) << shift
        shift += 6
    return val, pos


def _svarint(table: bytes, pos: int) -> tuple[int, int]:
    val, pos = _varint(table, pos)
    return (-(val >> 1) if val & 1 else val >> 1), pos


def parse_locations_311(table: bytes, firstlineno: int) -> LineTable:
    """3.11+ location table; entry lengths are in 2-byte code units, ranges here in bytes."""
    ranges: list[tuple[int, int, Location]] = []
    line = firstlineno
    addr = 0
    pos = 0
    n = len(table)
    try:
        while pos < n:
            first = table[pos]
            pos += 1
            if not first & 0x80:
                break  # not an entry start: the table is damaged, keep what we have
            code = (first >> 3) & 15
            length = ((first & 7) + 1) * 2
            if code == 15:
                loc = Location(-1)
            elif code == 14:
                delta, pos = _svarint(table, pos)
                line += delta
                end_delta, pos = _varint(table, pos)
                col, pos = _varint(table, pos)
                end_col, pos = _varint(table, pos)
                loc = Location(line, line + end_delta, col - 1, end_col - 1)
            elif code == 13:
                delta, pos = _svarint(table, pos)
                line += delta
                loc = Location(line, line)
            elif code >= 10:
                line += code - 10
                col = table[pos]
                end_col = table[pos + 1]
                pos += 2
                loc = Location(line, line, col, end_col)
            else:
                second = table[pos]
                pos += 1
                col = (code << 3) | ((second >> 4) & 7)
                loc = Location(line, line, col, col + (second & 15))
            ranges.append((addr, addr + length, loc))
            addr += length
    except IndexError:
        pass  # truncated table (a torn read): the ranges decoded so far are still right
    return LineTable(ranges, firstlineno)


def _merge(ranges: list[tuple[int, int, Location]]) -> list[tuple[int, int, Location]]:
    out: list[tuple[int, int, Location]] = []
    for r in ranges:
        if out and out[-1][2] == r[2] and out[-1][1] == r[0]:
            out[-1] = (out[-1][0], r[1], r[2])
        else:
            out.append(r)
    return out


PARSERS = {
    "lnotab": parse_lnotab,
    "linetable310": parse_linetable_310,
    "locations311": parse_locations_311,
}
