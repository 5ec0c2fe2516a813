"""What an editor asks about one profile's heat, answered from the sampler's `LineIndex`.

The aggregation is `sampler/lineindex.py`'s; this module only shapes its answers for the
editor and keeps them current cheaply. `HeatIndex` builds the profile's index once and, on
`update()` (a live run's delta), applies what the profile gained since it last looked, so an
update costs what changed. Per-file answers (line heat, callers/callees, per-def heat of a
document's text) are cached until that file's `file_generation` changes, so files a delta did
not touch are never recomputed; a text is parsed once (`sourcefiles.definitions`).
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from dataclasses import dataclass

from sampler import sourcefiles
from sampler.lineindex import LineIndex, OpcodeHeat
from sampler.model import SYNTHETIC_FILENAME, TASK_FILENAME, Profile

from .instructions import ColumnSpan, column_spans

_FUNCTION_CACHE_SIZE = 64  # one entry per (file, text): every edit makes a new text, so bound it
_BY = ("self", "total")
_NOT_CODE = (SYNTHETIC_FILENAME, TASK_FILENAME)  # <GC> and asyncio task markers: nowhere to jump to


@dataclass(frozen=True)
class LineHeat:
    line: int  # 1-based, as in the profile
    self_samples: int
    total_samples: int


@dataclass(frozen=True)
class FunctionHeat:
    name: str
    qualname: str  # Python's qualified name, from the AST: "Worker.run", "outer.<locals>.inner"
    def_line: int  # 1-based line of the `def` keyword (decorators are above it)
    end_line: int
    self_samples: int
    total_samples: int


@dataclass(frozen=True)
class Neighbor:
    funcname: str
    filename: str  # "~" for synthetic frames such as <GC>
    line: int
    samples: int


_Key = tuple[str, str, int]  # (funcname, filename, lineno): a neighbour's name, as shown
_NeighborMap = dict[int, dict[_Key, int]]  # lineno -> {neighbour: weight}


def _check_by(by: str) -> None:
    if by not in _BY:
        raise ValueError(f"by must be 'self' or 'total', not {by!r}")


class HeatIndex:
    """Per-line, per-function and caller/callee heat of one profile (all threads together),
    kept current with the profile by `update()`."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.index = LineIndex.from_profile(profile)
        self._mark = profile.mark()  # nothing is added between the two: one thread owns both
        self.source_files: list[str] = []  # files with sampled lines, in the order they got one
        self._without_lines: list[str] = []  # files seen with no line > 0 yet
        self._files_seen = 0  # how many of index.filenames() were sorted into the two lists
        self._lines: dict[str, tuple[int, dict[int, LineHeat]]] = {}  # per file: (generation, lines)
        self._neighbors: dict[str, tuple[int, _NeighborMap, _NeighborMap]] = {}
        self._functions: OrderedDict[tuple[str, str], tuple[int, list[FunctionHeat]]] = OrderedDict()
        self._columns: dict[str, tuple[int, dict[int, list[ColumnSpan]]]] = {}  # per file: (generation, by line)
        self._sort_files()

    @property
    def total_samples(self) -> int:
        return self.index.total

    def update(self) -> list[str]:
        """Count in what the profile gained since the last look; returns the files that got
        their first sampled line (for the path matcher)."""
        delta = self.profile.delta_since(self._mark)
        self._mark = self.profile.mark()
        if delta.empty:
            return []
        self.index.apply(delta)
        return self._sort_files()

    def _sort_files(self) -> list[str]:
        """Move files that got a sampled line into `source_files`; returns them."""
        names = self.index.filenames()  # first-seen order: the new ones are at the end
        waiting = self._without_lines + names[self._files_seen:]
        self._files_seen = len(names)
        new = [name for name in waiting if self.index.lines(name)]
        self._without_lines = [name for name in waiting if not self.index.lines(name)]
        self.source_files += new
        return new

    # -- lines ------------------------------------------------------------------------------

    def filenames(self) -> list[str]:
        """Files with sampled lines, sorted; synthetic frames (<GC>) are no file."""
        return sorted(self.source_files)

    def lines(self, filename: str) -> dict[int, LineHeat]:
        """Every sampled line of `filename` (1-based line -> heat); empty for unknown files."""
        generation = self.index.file_generation(filename)
        cached = self._lines.get(filename)
        if cached is None or cached[0] != generation:
            lines = {n: LineHeat(n, h.self_samples, h.total_samples) for n, h in self.index.lines(filename).items()}
            cached = self._lines[filename] = (generation, lines)
        return dict(cached[1])

    def line_opcodes(self, filename: str, line: int) -> list[OpcodeHeat]:
        """The instructions sampled on a line (--opcodes), heaviest first; [] without them."""
        return self.index.line_opcodes(filename, line)

    def line_native(self, filename: str, line: int) -> int:
        """Samples of the line spent in C code it called (a `<native>` frame right inside it)."""
        return self.index.line_native(filename, line)

    def columns(self, filename: str) -> dict[int, list[ColumnSpan]]:
        """Where within each line with self samples its time went (1-based line -> spans in
        UTF-8 bytes), for profiles with instructions; cached until the file changes."""
        if not self.index.has_opcodes:
            return {}
        generation = self.index.file_generation(filename)
        cached = self._columns.get(filename)
        if cached is None or cached[0] != generation:
            spans = {}
            for n, heat in self.index.lines(filename).items():
                if heat.self_samples > 0:
                    found = column_spans(self.index.line_spans(filename, n), n, heat.total_samples)
                    if found:
                        spans[n] = found
            cached = self._columns[filename] = (generation, spans)
        return cached[1]

    def callers(self, filename: str, line: int, limit: int = 5) -> list[Neighbor]:
        """The frames that called into (filename, line), heaviest first."""
        return _neighbors(self._neighbor_maps(filename)[1].get(line), limit)

    def callees(self, filename: str, line: int, limit: int = 5) -> list[Neighbor]:
        """The frames (filename, line) called, heaviest first (synthetic ones have filename "~")."""
        return _neighbors(self._neighbor_maps(filename)[2].get(line), limit)

    def _neighbor_maps(self, filename: str) -> tuple[int, _NeighborMap, _NeighborMap]:
        """(generation, callers, callees) of every sampled line of `filename`, built on first
        use: hovers ask about a few files, so nobody pays for every file's pairs."""
        generation = self.index.file_generation(filename)
        cached = self._neighbors.get(filename)
        if cached is not None and cached[0] == generation:
            return cached
        spots = self.index.spots

        def name(spot: int) -> _Key:
            spot_file, lineno, funcname = spots[spot]
            return (funcname, spot_file, lineno)

        def line_in_file(spot: int) -> int | None:
            spot_file, lineno, _ = spots[spot]
            return lineno if spot_file == filename and lineno > 0 else None

        by_caller: _NeighborMap = {}
        for (caller, line), weight in self.index.pairs(name, line_in_file, filename).items():
            by_caller.setdefault(line, {})[caller] = weight
        by_callee: _NeighborMap = {}
        for (line, callee), weight in self.index.pairs(line_in_file, name, filename).items():
            by_callee.setdefault(line, {})[callee] = weight
        cached = self._neighbors[filename] = (generation, by_caller, by_callee)
        return cached

    def hottest_lines(self, n: int, by: str = "self") -> list[tuple[str, LineHeat, str]]:
        """The `n` heaviest lines of all files as (filename, heat, funcname); lines with no
        weight by that measure are left out. Ties go by filename and line."""
        _check_by(by)
        use_self = by == "self"
        candidates = (
            (filename, LineHeat(line, heat.self_samples, heat.total_samples))
            for filename in self.source_files
            for line, heat in self.index.lines(filename).items()
            if (heat.self_samples if use_self else heat.total_samples) > 0
        )
        best = heapq.nsmallest(
            max(n, 0),
            candidates,
            key=lambda fh: (-(fh[1].self_samples if use_self else fh[1].total_samples), fh[0], fh[1].line),
        )
        return [(filename, heat, self._line_funcname(filename, heat.line)) for filename, heat in best]

    def _line_funcname(self, filename: str, lineno: int) -> str:
        """The function sampled on a line; two on one line (a lambda in a one-line def): the
        one more stacks hold, then the first by name."""
        spots = self.index.line_spots(filename, lineno)
        (_, _, funcname), _ = min(spots, key=lambda st: (-st[1], (st[0][2], st[0][0], st[0][1])))
        return funcname

    def hottest_functions(self, n: int, by: str = "self") -> list[tuple[str, str, int, int, int]]:
        """The `n` heaviest functions as (filename, funcname, first line seen, self, total), a
        function being a frame name within a file (no source needed); synthetic frames and task
        markers are none."""
        _check_by(by)
        use_self = by == "self"
        candidates = (
            (key, stats)
            for key, stats in self.index.all_functions()
            if key[0] not in _NOT_CODE and (stats.self_samples if use_self else stats.total_samples) > 0
        )
        best = heapq.nsmallest(
            max(n, 0), candidates,
            key=lambda item: (-(item[1].self_samples if use_self else item[1].total_samples), item[0]),
        )
        return [(filename, funcname, s.first_line, s.self_samples, s.total_samples) for (filename, funcname), s in best]

    # -- functions from the source ----------------------------------------------------------

    def functions(self, filename: str, source: str) -> list[FunctionHeat]:
        """Heat of every def/async def of `source` (the text of `filename`) that has samples,
        sorted by def line; [] when `source` does not parse."""
        # Keyed on the text itself: str caches its hash, and equal hashes of different texts
        # must never return another text's functions.
        key = (filename, source)
        generation = self.index.file_generation(filename)
        cached = self._functions.get(key)
        if cached is None or cached[0] != generation:
            cached = self._functions[key] = (generation, self._compute_functions(filename, source))
            if len(self._functions) > _FUNCTION_CACHE_SIZE:
                self._functions.popitem(last=False)
        self._functions.move_to_end(key)
        return list(cached[1])

    def _compute_functions(self, filename: str, source: str) -> list[FunctionHeat]:
        if not self.index.lines(filename):
            return []
        defs = sourcefiles.definitions(source)
        if not defs.functions:
            return []
        spots = self.index.spots
        kinds = (sourcefiles.FUNCTION,)

        def owner(spot: int) -> sourcefiles.Definition | None:
            spot_file, lineno, funcname = spots[spot]
            return defs.innermost(funcname, lineno, kinds=kinds) if spot_file == filename else None

        fself, ftotal = self.index.grouped(owner, filename)
        return [
            FunctionHeat(d.name, d.qualname, d.def_line, d.end_line, fself.get(d, 0), ftotal[d])
            for d in sorted(ftotal, key=lambda d: (d.def_line, d.end_line))
        ]


def _neighbors(weights: dict[_Key, int] | None, limit: int) -> list[Neighbor]:
    if not weights:
        return []
    best = heapq.nsmallest(max(limit, 0), weights.items(), key=lambda item: (-item[1], item[0]))
    return [Neighbor(funcname, filename, line, samples) for (funcname, filename, line), samples in best]
