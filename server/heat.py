"""What a profile says about each source line and each function of a file.

`HeatIndex` walks the profile's distinct stacks once (never one sample at a time), with frames
interned to small ints first so each stack costs a few set and list operations: self and total
weight per line and per frame-named function. The stacks are kept as int tuples, from which
callers/callees (per file, on first use) and per-def heat for whatever source text the editor
holds (`functions()`, cached per text) are computed when asked. "Total" always counts a stack
once, however often a line or function recurs in it, so no share exceeds 100%.
"""
from __future__ import annotations

import ast
import heapq
from collections import OrderedDict
from dataclasses import dataclass

from sampler.collectors.flamegraph import profile_stacks
from sampler.model import Frame, Profile

_FUNCTION_CACHE_SIZE = 64  # one entry per (file, text): every edit makes a new text, so bound it
_BY = ("self", "total")


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


@dataclass(frozen=True)
class _Def:
    name: str
    qualname: str
    def_line: int
    end_line: int
    first_line: int  # first decorator line: a call's first instruction can report it


_NeighborMap = dict[int, dict[tuple[str, str, int], int]]  # lineno -> {(funcname, filename, lineno): weight}


def _check_by(by: str) -> None:
    if by not in _BY:
        raise ValueError(f"by must be 'self' or 'total', not {by!r}")


class _Interner:
    """Frames -> "spot" ids: one per (funcname, filename, lineno), columns merged. Each spot
    knows its line id and function id (0 = none: synthetic frames, unknown lines)."""

    def __init__(self) -> None:
        self.spot_of: dict[Frame, int] = {}
        self.spots: list[tuple[str, str, int]] = [("", "", 0)]  # spot 0 is never used
        self.spot_line: list[int] = [0]
        self.spot_func: list[int] = [0]
        self._spot_ids: dict[tuple[str, str, int], int] = {}
        self.lines: list[tuple[str, int]] = [("", 0)]
        self._line_ids: dict[tuple[str, int], int] = {}
        self.funcs: list[tuple[str, str]] = [("", "")]
        self._func_ids: dict[tuple[str, str], int] = {}

    def add(self, frame: Frame) -> int:
        key = (frame.funcname, frame.filename, frame.lineno)
        spot = self._spot_ids.get(key)
        if spot is None:
            spot = self._spot_ids[key] = len(self.spots)
            self.spots.append(key)
            line = func = 0
            if not frame.is_synthetic:
                func = self._id(self._func_ids, self.funcs, (frame.filename, frame.funcname))
                if frame.lineno > 0:
                    line = self._id(self._line_ids, self.lines, (frame.filename, frame.lineno))
            self.spot_line.append(line)
            self.spot_func.append(func)
        self.spot_of[frame] = spot
        return spot

    def line_id(self, filename: str, lineno: int) -> int:
        return self._line_ids.get((filename, lineno), 0)

    @staticmethod
    def _id(ids: dict, table: list, key: tuple) -> int:
        i = ids.get(key)
        if i is None:
            i = ids[key] = len(table)
            table.append(key)
        return i


class HeatIndex:
    """Per-line, per-function and caller/callee heat of one profile (all threads together)."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.total_samples = 0
        intern = _Interner()
        for frame in profile.frames:  # every frame up front: the walk below only looks ids up
            intern.add(frame)
        spot_of = intern.spot_of
        spot_line, spot_func = intern.spot_line, intern.spot_func
        n_lines, n_funcs = len(intern.lines), len(intern.funcs)
        line_self = [0] * n_lines
        line_total = [0] * n_lines
        func_self = [0] * n_funcs
        func_total = [0] * n_funcs
        stacks: list[tuple[tuple[int, ...], int]] = []

        for _tid, frames, weight in profile_stacks(profile):
            try:
                spots = tuple(map(spot_of.__getitem__, frames))
            except KeyError:  # a frame that is not in profile.frames: intern it now
                spots = tuple(spot_of[f] if f in spot_of else intern.add(f) for f in frames)
                line_self += [0] * (len(intern.lines) - len(line_self))
                line_total += [0] * (len(intern.lines) - len(line_total))
                func_self += [0] * (len(intern.funcs) - len(func_self))
                func_total += [0] * (len(intern.funcs) - len(func_total))
            self.total_samples += weight
            stacks.append((spots, weight))
            lines = list(map(spot_line.__getitem__, spots))
            line_self[lines[0]] += weight
            func_self[spot_func[spots[0]]] += weight
            for line in set(lines):
                line_total[line] += weight
            for func in set(map(spot_func.__getitem__, spots)):
                func_total[func] += weight

        self._intern = intern
        self._stacks = stacks
        self._lines: dict[str, dict[int, LineHeat]] = {}
        self._line_ids: dict[str, set[int]] = {}
        self._spots_by_line: dict[int, list[int]] = {}
        for spot in range(1, len(intern.spots)):
            line = spot_line[spot]
            if line and line_total[line]:
                self._spots_by_line.setdefault(line, []).append(spot)
        for line in self._spots_by_line:
            filename, lineno = intern.lines[line]
            self._lines.setdefault(filename, {})[lineno] = LineHeat(lineno, line_self[line], line_total[line])
            self._line_ids.setdefault(filename, set()).add(line)
        self._neighbor_cache: dict[str, tuple[_NeighborMap, _NeighborMap]] = {}
        self._func_heat: dict[tuple[str, str], tuple[int, int]] = {
            intern.funcs[f]: (func_self[f], func_total[f]) for f in range(1, len(intern.funcs)) if func_total[f]
        }
        self._func_first: dict[tuple[str, str], int] | None = None
        self._function_cache: OrderedDict[tuple[str, str], list[FunctionHeat]] = OrderedDict()

    # -- lines ------------------------------------------------------------------------------

    def filenames(self) -> list[str]:
        """Files with sampled lines, sorted; synthetic frames (<GC>) are no file."""
        return sorted(self._lines)

    def lines(self, filename: str) -> dict[int, LineHeat]:
        """Every sampled line of `filename` (1-based line -> heat); empty for unknown files."""
        return dict(self._lines.get(filename, {}))

    def callers(self, filename: str, line: int, limit: int = 5) -> list[Neighbor]:
        """The frames that called into (filename, line), heaviest first."""
        return _neighbors(self._neighbors(filename)[0].get(line), limit)

    def callees(self, filename: str, line: int, limit: int = 5) -> list[Neighbor]:
        """The frames (filename, line) called, heaviest first (synthetic ones have filename "~")."""
        return _neighbors(self._neighbors(filename)[1].get(line), limit)

    def _neighbors(self, filename: str) -> tuple[_NeighborMap, _NeighborMap]:
        """(callers, callees) of every sampled line of `filename`, built on first use: hovers ask
        about a few files, so the build does not pay for every file's pairs."""
        cached = self._neighbor_cache.get(filename)
        if cached is not None:
            return cached
        file_lines = self._line_ids.get(filename, set())
        spot_line = self._intern.spot_line
        by_caller: dict[tuple[int, int], int] = {}
        by_callee: dict[tuple[int, int], int] = {}
        for spots, weight in self._stacks:
            lines = list(map(spot_line.__getitem__, spots))
            if file_lines.isdisjoint(lines):
                continue
            # spots[i] was called by spots[i + 1]; a pair repeated under recursion counts once.
            up: set[tuple[int, int]] = set()
            down: set[tuple[int, int]] = set()
            last = len(spots) - 1
            for i, line in enumerate(lines):
                if line in file_lines:
                    if i < last:
                        up.add((line, spots[i + 1]))
                    if i:
                        down.add((line, spots[i - 1]))
            for pair in up:
                by_caller[pair] = by_caller.get(pair, 0) + weight
            for pair in down:
                by_callee[pair] = by_callee.get(pair, 0) + weight
        result = (self._group(by_caller), self._group(by_callee))
        self._neighbor_cache[filename] = result
        return result

    def _group(self, pairs: dict[tuple[int, int], int]) -> _NeighborMap:
        """{(line id, spot): weight} -> {lineno: {(funcname, filename, lineno): weight}}."""
        out: _NeighborMap = {}
        for (line, spot), weight in pairs.items():
            out.setdefault(self._intern.lines[line][1], {})[self._intern.spots[spot]] = weight
        return out

    def hottest_lines(self, n: int, by: str = "self") -> list[tuple[str, LineHeat, str]]:
        """The `n` heaviest lines of all files as (filename, heat, funcname); lines with no
        weight by that measure are left out. Ties go by filename and line."""
        _check_by(by)
        use_self = by == "self"
        candidates = (
            (filename, heat)
            for filename, lines in self._lines.items()
            for heat in lines.values()
            if (heat.self_samples if use_self else heat.total_samples) > 0
        )
        best = heapq.nsmallest(
            max(n, 0),
            candidates,
            key=lambda fh: (-(fh[1].self_samples if use_self else fh[1].total_samples), fh[0], fh[1].line),
        )
        return [(filename, heat, self._line_funcname(filename, heat.line)) for filename, heat in best]

    def _line_funcname(self, filename: str, lineno: int) -> str:
        spots = self._spots_by_line[self._intern.line_id(filename, lineno)]
        if len(spots) > 1:  # two functions on one line (a lambda in a one-line def): the heavier
            weights = dict.fromkeys(spots, 0)
            for stack, weight in self._stacks:
                for spot in set(stack).intersection(spots):
                    weights[spot] += weight
            spots = sorted(spots, key=lambda s: (-weights[s], self._intern.spots[s]))
        return self._intern.spots[spots[0]][0]

    def hottest_functions(self, n: int, by: str = "self") -> list[tuple[str, str, int, int, int]]:
        """The `n` heaviest functions as (filename, funcname, first line seen, self, total), a
        function being a frame name within a file (no source needed)."""
        _check_by(by)
        index = 0 if by == "self" else 1
        candidates = (item for item in self._func_heat.items() if item[1][index] > 0)
        best = heapq.nsmallest(max(n, 0), candidates, key=lambda item: (-item[1][index], item[0]))
        first = self._first_lines()
        return [(filename, funcname, first.get((filename, funcname), 0), s, t) for (filename, funcname), (s, t) in best]

    def _first_lines(self) -> dict[tuple[str, str], int]:
        if self._func_first is None:
            first: dict[tuple[str, str], int] = {}
            seen = set().union(*(stack for stack, _ in self._stacks))
            for spot in seen:
                funcname, filename, lineno = self._intern.spots[spot]
                key = (filename, funcname)
                if lineno > 0 and (key not in first or lineno < first[key]):
                    first[key] = lineno
            self._func_first = first
        return self._func_first

    # -- functions from the source ----------------------------------------------------------

    def functions(self, filename: str, source: str) -> list[FunctionHeat]:
        """Heat of every def/async def of `source` (the text of `filename`) that has samples,
        sorted by def line; [] when `source` does not parse."""
        # Keyed on the text itself: str caches its hash, and equal hashes of different texts
        # must never return another text's functions.
        key = (filename, source)
        cached = self._function_cache.get(key)
        if cached is not None:
            self._function_cache.move_to_end(key)
            return list(cached)
        result = self._compute_functions(filename, source)
        self._function_cache[key] = result
        if len(self._function_cache) > _FUNCTION_CACHE_SIZE:
            self._function_cache.popitem(last=False)
        return list(result)

    def _compute_functions(self, filename: str, source: str) -> list[FunctionHeat]:
        if filename not in self._lines:
            return []
        defs = parse_defs(source)
        if not defs:
            return []
        by_name: dict[str, list[_Def]] = {}
        for d in defs:
            by_name.setdefault(d.name, []).append(d)
        # The file's spots and the def each belongs to (None: a frame of no def, e.g. <module>).
        owner: dict[int, _Def | None] = {}
        for spot, (funcname, spot_file, lineno) in enumerate(self._intern.spots):
            if spot and spot_file == filename and self._intern.spot_func[spot]:
                owner[spot] = _innermost(by_name, funcname, lineno)
        in_file = owner.keys()

        fself: dict[_Def, int] = {}
        ftotal: dict[_Def, int] = {}
        for stack, weight in self._stacks:
            if in_file.isdisjoint(stack):
                continue
            leaf = owner.get(stack[0])
            if leaf is not None:
                fself[leaf] = fself.get(leaf, 0) + weight
            for d in {owner[spot] for spot in in_file & set(stack)}:
                if d is not None:
                    ftotal[d] = ftotal.get(d, 0) + weight
        return [
            FunctionHeat(d.name, d.qualname, d.def_line, d.end_line, fself.get(d, 0), ftotal[d])
            for d in sorted(ftotal, key=lambda d: (d.def_line, d.end_line))
        ]


def _innermost(by_name: dict[str, list[_Def]], funcname: str, lineno: int) -> _Def | None:
    """The innermost def named like the frame's function (the last part of a qualname) whose
    lines, decorators included, hold the frame's line."""
    best = None
    for d in by_name.get(funcname.rsplit(".", 1)[-1], ()):
        if d.first_line <= lineno <= d.end_line and (best is None or d.first_line > best.first_line):
            best = d
    return best


def _neighbors(weights: dict[tuple[str, str, int], int] | None, limit: int) -> list[Neighbor]:
    if not weights:
        return []
    best = heapq.nsmallest(max(limit, 0), weights.items(), key=lambda item: (-item[1], item[0]))
    return [Neighbor(funcname, filename, line, samples) for (funcname, filename, line), samples in best]


def parse_defs(source: str) -> list[_Def]:
    """Every def/async def of `source` with its qualified name; [] if it does not parse."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):  # ValueError: null bytes
        return []
    out: list[_Def] = []
    # (node, qualname prefix of its children)
    todo: list[tuple[ast.AST, str]] = [(tree, "")]
    while todo:
        node, prefix = todo.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                qualname = prefix + child.name
                first = min([child.lineno] + [dec.lineno for dec in child.decorator_list])
                out.append(_Def(child.name, qualname, child.lineno, child.end_lineno or child.lineno, first))
                todo.append((child, qualname + ".<locals>."))
            elif isinstance(child, ast.ClassDef):
                todo.append((child, prefix + child.name + "."))
            else:
                todo.append((child, prefix))
    out.sort(key=lambda d: (d.def_line, d.qualname))
    return out
