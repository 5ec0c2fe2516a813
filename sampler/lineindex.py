"""What a profile says about each source line, function and call: the one aggregation.

`LineIndex` is fed `(thread_id, frames leaf first, weight)` items, as `Profile.iter_stacks()` or a
profile delta yields them, and can be fed more at any time (`update`): the cost of an update is
that of the items given, never of the whole profile. Every view heatline shows is read from it:
the heatmap, pstats, the server's line heat, lenses and hovers.

A frame becomes a *spot*: (filename, lineno, funcname), its columns dropped (pstats' key). Each
distinct stack of spots is kept once with its weight (threads merged: no reader splits by
thread), and counted into, with "total" always counting a stack once however often something
recurs in it (so no share exceeds 100%):

- per spot: self (the leaf) and total; per adjacent (callee, caller) spot pair: stacks holding it
  and, of those, stacks where the callee is the leaf;
- per line (filename, lineno > 0) and per function (filename, funcname), self and total; per
  file, self and total; synthetic frames (`<GC>`, filename `~`) are no file and no line, but are
  functions and spots;
- the weight of stacks whose leaf is synthetic, per name; the files whose `<module>` frame is a
  stack's root (scripts);
- per line, the stacks whose leaf is a `<native>` frame right inside that line's frame (--native:
  the line called C code and the thread was in it);
- per line, once the profile holds instructions (--opcodes, `Frame.opcode`): samples per
  instruction and per column span, over every frame of a stack at that line (Tachyon's heatmap
  counts the same way), each (line, instruction) and (line, span) once per stack.

Views that group spots by what only a reader knows (the def a line belongs to in the text an
editor holds, a call's anchor in a page) are computed on demand from the kept stacks, restricted
to those touching one file (`grouped`, `pairs`). `file_generation` tells a reader caching such a
view whether a file's stacks changed since it looked.
"""

from __future__ import annotations

from typing import Callable, Hashable, Iterable, Iterator, NamedTuple

from .model import NATIVE_FRAME, SYNTHETIC_FILENAME, Frame, Profile, ProfileDelta

Spot = tuple[str, int, str]  # (filename, lineno, funcname): Frame.key()
StackItem = tuple[int, tuple[Frame, ...], int]  # (thread id, frames leaf first, weight)

_NONE = -1  # id of "no line" / "no file" (synthetic frames, lineno <= 0)
_NATIVE_SPOT = NATIVE_FRAME.key()


class Heat(NamedTuple):
    self_samples: int  # stacks with it as the leaf
    total_samples: int  # stacks with it anywhere, once per stack


Span = tuple[int, int, int]  # (end_lineno, col, end_col) of an instruction, -1 where unknown


class OpcodeHeat(NamedTuple):
    opcode: int  # the byte the target executed (maybe specialized): sampler.cpython.opcodes names it
    samples: int  # stacks with it at the line
    spans: tuple[Span, ...]  # the column spans it was seen at, sorted


class SpanHeat(NamedTuple):
    span: Span
    samples: int  # stacks with an instruction of this span at the line


class FunctionStats(NamedTuple):
    self_samples: int
    total_samples: int
    first_line: int  # the smallest line sampled in it (0: none above 0)


def _table_id(ids: dict, keys: list, key: Hashable, counters: tuple[list[int], ...],
              lists: tuple[list[list], ...]) -> tuple[int, bool]:
    """`key`'s id in a table (`ids`: key -> id, `keys`: id -> key) and whether it is new; a new
    id gets a 0 in each of `counters` and an empty list in each of `lists`."""
    found = ids.get(key)
    if found is not None:
        return found, False
    found = ids[key] = len(keys)
    keys.append(key)
    for column in counters:
        column.append(0)
    for column in lists:
        column.append([])
    return found, True


class LineIndex:
    """Per-line, per-function, per-file and caller/callee weights, built incrementally."""

    def __init__(self, stacks: Iterable[StackItem] = ()) -> None:
        self.total = 0  # Σ weight of every non-empty stack
        self.generation = 0  # updates so far
        self.spots: list[Spot] = []  # by spot id, in first-seen order (leaf first in each stack)
        self._spot_of: dict[Frame, int] = {}
        self._spot_ids: dict[Spot, int] = {}
        self._spot_line: list[int] = []
        self._spot_func: list[int] = []
        self._spot_file: list[int] = []
        self._spot_self: list[int] = []
        self._spot_total: list[int] = []
        self._lines: list[tuple[str, int]] = []
        self._line_ids: dict[tuple[str, int], int] = {}
        self._line_spots: list[list[int]] = []
        self._line_self: list[int] = []
        self._line_total: list[int] = []
        self._funcs: list[tuple[str, str]] = []  # (filename, funcname), synthetic ones included
        self._func_ids: dict[tuple[str, str], int] = {}
        self._func_self: list[int] = []
        self._func_total: list[int] = []
        self._func_first: list[int] = []
        self._files: list[str] = []
        self._file_ids: dict[str, int] = {}
        self._file_self: list[int] = []
        self._file_total: list[int] = []
        self._file_lines: list[list[int]] = []
        self._file_funcs: list[list[int]] = []
        self._file_stacks: list[list[tuple[int, ...]]] = []
        self._file_generation: list[int] = []
        # Per distinct stack of spots, its weight and what it counts into, found once: distinct
        # spots, lines, functions, files. Int tuples only, which the garbage collector stops
        # tracking: a build makes tens of thousands of them.
        self._weights: dict[tuple[int, ...], int] = {}
        self._parts: dict[tuple[int, ...], tuple[tuple[int, ...], ...]] = {}
        # Call pairs, counted from the first `spot_pairs()` on (only pstats asks): (callee spot,
        # caller spot) -> pair id in first-seen order; per pair id, the stacks holding it and of
        # those, the stacks with the callee as leaf; per stack, its pair ids, leaf pair first.
        self._pair_ids: dict[tuple[int, int], int] = {}
        self._pair_total: list[int] = []
        self._pair_leaf: list[int] = []
        self._stack_pairs: dict[tuple[int, ...], tuple[int, ...]] | None = None
        self.synthetic_leaves: dict[str, int] = {}  # weight of stacks whose leaf is <GC> and co
        self._line_native: list[int] = []  # per line: stacks with a <native> leaf right inside it
        self._native_spot = _NONE
        # Instructions (--opcodes): counted from frames, not spots (a spot drops them). Per frame,
        # its (line id, opcode, span) or None; per line id, opcode -> [samples, spans] and
        # span -> samples. Stay empty, and cost a flag check per stack, without opcodes.
        self.has_opcodes = False
        self._frame_op: dict[Frame, tuple[int, int, Span] | None] = {}
        self._line_ops: dict[int, dict[int, list]] = {}
        self._line_spans: dict[int, dict[Span, int]] = {}
        self.script_files: dict[str, None] = {}  # files whose <module> is a stack's root (a set)
        self._source_frames: list[Frame] = []  # the frames of the profile `apply` is fed from
        self._source_spots: list[int] = []  # their spots, by that profile's frame id
        self.update(stacks)

    @classmethod
    def from_profile(cls, profile: Profile) -> "LineIndex":
        """The index of a whole profile; `apply` its later deltas to keep it current."""
        index = cls()
        index.apply(profile.delta_since(None))
        return index

    # -- building ---------------------------------------------------------------------------

    def update(self, stacks: Iterable[StackItem]) -> None:
        """Count more stacks in: `(thread id, frames leaf first, weight)` items."""
        spot_of, intern = self._spot_of, self._intern

        def spots() -> Iterator[tuple[tuple[int, ...], int]]:
            for _tid, frames, weight in stacks:
                if frames and weight > 0:
                    try:
                        stack = tuple(map(spot_of.__getitem__, frames))
                    except KeyError:
                        stack = tuple(map(intern, frames))
                    if self.has_opcodes:
                        self._count_opcodes(frames, weight)
                    yield stack, weight

        self._count(spots())

    def apply(self, delta: ProfileDelta) -> None:
        """Count in what a profile gained (`Profile.delta_since`): pass every delta of one
        profile, in order, from `delta_since(None)` or the one `from_profile` took on."""
        frames, spots = self._source_frames, self._source_spots
        if delta.first_frame_id != len(frames):
            raise ValueError(f"delta starts at frame {delta.first_frame_id}, {len(frames)} frames known")
        frames.extend(delta.frames)
        spots.extend([_NONE] * len(delta.frames))  # interned when a stack first uses them
        intern = self._intern

        def stacks() -> Iterator[tuple[tuple[int, ...], int]]:
            for (_tid, ids), weight in delta.stacks.items():
                if ids and weight > 0:
                    stack = tuple(map(spots.__getitem__, ids))
                    if _NONE in stack:
                        for i in ids:
                            if spots[i] == _NONE:
                                spots[i] = intern(frames[i])
                        stack = tuple(map(spots.__getitem__, ids))
                    if self.has_opcodes:
                        self._count_opcodes([frames[i] for i in ids], weight)
                    yield stack, weight

        self._count(stacks())

    def _count(self, stacks: Iterable[tuple[tuple[int, ...], int]]) -> None:
        self.generation += 1
        generation = self.generation
        known, weights = self._parts, self._weights
        spot_line, spot_func, spot_file = self._spot_line, self._spot_func, self._spot_file
        spot_self, spot_total = self._spot_self, self._spot_total
        line_self, line_total = self._line_self, self._line_total
        func_self, func_total = self._func_self, self._func_total
        file_self, file_total, file_generation = self._file_self, self._file_total, self._file_generation
        stack_pairs = self._stack_pairs
        for spots, weight in stacks:
            parts = known.get(spots)
            if parts is None:
                parts = self._new_stack(spots)
            weights[spots] += weight
            self.total += weight
            leaf = spots[0]
            spot_self[leaf] += weight
            func_self[spot_func[leaf]] += weight
            line = spot_line[leaf]
            if line != _NONE:
                line_self[line] += weight
            file = spot_file[leaf]
            if file != _NONE:
                file_self[file] += weight
            else:  # a synthetic leaf: time outside source files, by name
                name = self.spots[leaf][2]
                self.synthetic_leaves[name] = self.synthetic_leaves.get(name, 0) + weight
                if leaf == self._native_spot and len(spots) > 1:
                    caller = spot_line[spots[1]]
                    if caller != _NONE:
                        self._line_native[caller] += weight
            distinct, lines, funcs, files = parts
            for s in distinct:
                spot_total[s] += weight
            for line in lines:
                line_total[line] += weight
            for func in funcs:
                func_total[func] += weight
            for file in files:
                file_total[file] += weight
                file_generation[file] = generation
            if stack_pairs is not None:
                self._count_pairs(stack_pairs, spots, weight)

    def _intern(self, frame: Frame) -> int:
        spot = self._spot_of.get(frame)
        if spot is not None:
            return spot
        key = (frame.filename, frame.lineno, frame.funcname)
        spot = self._spot_ids.get(key)
        if spot is None:
            spot = self._spot_ids[key] = len(self.spots)
            self.spots.append(key)
            self._spot_self.append(0)
            self._spot_total.append(0)
            filename, lineno, funcname = key
            synthetic = filename == SYNTHETIC_FILENAME
            file = _NONE if synthetic else self._file_id(filename)
            func = self._func_id(filename, funcname, file)
            line = _NONE
            if file != _NONE and lineno > 0:
                line = self._line_id(filename, lineno, file)
                self._line_spots[line].append(spot)
                first = self._func_first[func]
                if first == 0 or lineno < first:
                    self._func_first[func] = lineno
            self._spot_line.append(line)
            self._spot_func.append(func)
            self._spot_file.append(file)
            if key == _NATIVE_SPOT:
                self._native_spot = spot
        self._spot_of[frame] = spot
        if frame.opcode >= 0:
            self.has_opcodes = True
        return spot

    def _count_opcodes(self, frames: Iterable[Frame], weight: int) -> None:
        """Count one stack's instructions in, each (line, opcode) and (line, span) once."""
        frame_op, line_ops, line_spans = self._frame_op, self._line_ops, self._line_spans
        seen_ops: set[tuple[int, int]] = set()
        seen_spans: set[tuple[int, Span]] = set()
        for frame in frames:
            if frame in frame_op:
                op = frame_op[frame]
            else:
                op = None
                if frame.opcode >= 0:
                    line = self._spot_line[self._intern(frame)]
                    if line != _NONE:
                        op = (line, frame.opcode, (frame.end_lineno, frame.col, frame.end_col))
                frame_op[frame] = op
            if op is None:
                continue
            line, opcode, span = op
            if (line, opcode) not in seen_ops:
                seen_ops.add((line, opcode))
                entry = line_ops.setdefault(line, {}).get(opcode)
                if entry is None:
                    entry = line_ops[line][opcode] = [0, set()]
                entry[0] += weight
                entry[1].add(span)
            if (line, span) not in seen_spans:
                seen_spans.add((line, span))
                spans = line_spans.setdefault(line, {})
                spans[span] = spans.get(span, 0) + weight

    def _file_id(self, filename: str) -> int:
        return _table_id(self._file_ids, self._files, filename,
                         (self._file_self, self._file_total, self._file_generation),
                         (self._file_lines, self._file_funcs, self._file_stacks))[0]

    def _func_id(self, filename: str, funcname: str, file: int) -> int:
        func, new = _table_id(self._func_ids, self._funcs, (filename, funcname),
                              (self._func_self, self._func_total, self._func_first), ())
        if new and file != _NONE:
            self._file_funcs[file].append(func)
        return func

    def _line_id(self, filename: str, lineno: int, file: int) -> int:
        line, new = _table_id(self._line_ids, self._lines, (filename, lineno),
                              (self._line_self, self._line_total, self._line_native), (self._line_spots,))
        if new:
            self._file_lines[file].append(line)
        return line

    def _new_stack(self, spots: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
        distinct = tuple(dict.fromkeys(spots))
        lines = set(map(self._spot_line.__getitem__, distinct))
        lines.discard(_NONE)
        files = set(map(self._spot_file.__getitem__, distinct))
        files.discard(_NONE)
        funcs = set(map(self._spot_func.__getitem__, distinct))
        parts = self._parts[spots] = (distinct, tuple(lines), tuple(funcs), tuple(files))
        self._weights[spots] = 0
        for file in files:
            self._file_stacks[file].append(spots)
        filename, _lineno, funcname = self.spots[spots[-1]]
        if funcname == "<module>" and filename != SYNTHETIC_FILENAME:
            self.script_files[filename] = None
        return parts

    # -- spots (pstats) ---------------------------------------------------------------------

    def spot_heat(self) -> Iterator[tuple[Spot, Heat]]:
        """Every spot with its heat, in first-seen order."""
        for spot, key in enumerate(self.spots):
            yield key, Heat(self._spot_self[spot], self._spot_total[spot])

    def _count_pairs(self, stack_pairs: dict[tuple[int, ...], tuple[int, ...]], spots: tuple[int, ...],
                     weight: int) -> None:
        pairs = stack_pairs.get(spots)
        if pairs is None:
            pair_ids = self._pair_ids
            add = pair_ids.setdefault
            pairs = stack_pairs[spots] = tuple(
                [add(pair, len(pair_ids)) for pair in dict.fromkeys(zip(spots, spots[1:]))]
            )
            new_pairs = len(pair_ids) - len(self._pair_total)
            if new_pairs:
                self._pair_total.extend([0] * new_pairs)
                self._pair_leaf.extend([0] * new_pairs)
        total = self._pair_total
        for pair in pairs:
            total[pair] += weight
        if pairs:
            self._pair_leaf[pairs[0]] += weight

    def spot_pairs(self) -> Iterator[tuple[Spot, Spot, int, int]]:
        """(callee, caller, stacks with the call, of which with the callee as leaf), first-seen order."""
        if self._stack_pairs is None:  # the first ask: count every stack so far, then keep up
            stack_pairs = self._stack_pairs = {}
            for stack, weight in self._weights.items():
                self._count_pairs(stack_pairs, stack, weight)
        spots, total, leaf = self.spots, self._pair_total, self._pair_leaf
        for (callee, caller), pair in self._pair_ids.items():
            yield spots[callee], spots[caller], total[pair], leaf[pair]

    # -- files and lines --------------------------------------------------------------------

    def filenames(self) -> list[str]:
        """Files with sampled frames (synthetic frames are in none), in first-seen order."""
        return list(self._files)

    def file_heat(self, filename: str) -> Heat:
        file = self._file_ids.get(filename)
        return Heat(0, 0) if file is None else Heat(self._file_self[file], self._file_total[file])

    def lines(self, filename: str) -> dict[int, Heat]:
        """Every sampled line (> 0) of `filename`: line -> heat; empty for an unknown file."""
        file = self._file_ids.get(filename)
        if file is None:
            return {}
        lines, line_self, line_total = self._lines, self._line_self, self._line_total
        return {lines[line][1]: Heat(line_self[line], line_total[line]) for line in self._file_lines[file]}

    def line_spots(self, filename: str, lineno: int) -> list[tuple[Spot, int]]:
        """The spots sampled on one line (two functions can share one) with their totals."""
        line = self._line_ids.get((filename, lineno))
        if line is None:
            return []
        return [(self.spots[s], self._spot_total[s]) for s in self._line_spots[line]]

    def line_native(self, filename: str, lineno: int) -> int:
        """Stacks whose leaf is a `<native>` frame right inside this line's frame: the line
        called C code and the thread was in it (--native)."""
        line = self._line_ids.get((filename, lineno))
        return 0 if line is None else self._line_native[line]

    def line_opcodes(self, filename: str, lineno: int) -> list[OpcodeHeat]:
        """The instructions sampled at one line (--opcodes), most samples first."""
        line = self._line_ids.get((filename, lineno))
        ops = self._line_ops.get(line, {}) if line is not None else {}
        heats = [OpcodeHeat(opcode, samples, tuple(sorted(spans))) for opcode, (samples, spans) in ops.items()]
        heats.sort(key=lambda h: (-h.samples, h.opcode))
        return heats

    def line_spans(self, filename: str, lineno: int) -> list[SpanHeat]:
        """The column spans of the instructions sampled at one line (--opcodes), most samples
        first: which expression of the line the time went to."""
        line = self._line_ids.get((filename, lineno))
        spans = self._line_spans.get(line, {}) if line is not None else {}
        return sorted((SpanHeat(span, samples) for span, samples in spans.items()), key=lambda h: (-h.samples, h.span))

    def max_line_heat(self) -> Heat:
        """The heaviest line's self and total (maybe two lines), 0 when there is none."""
        return Heat(max(self._line_self, default=0), max(self._line_total, default=0))

    def file_generation(self, filename: str) -> int:
        """The last `generation` whose update added weight to a stack through `filename`."""
        file = self._file_ids.get(filename)
        return 0 if file is None else self._file_generation[file]

    # -- functions --------------------------------------------------------------------------

    def functions(self, filename: str) -> dict[str, FunctionStats]:
        """Every frame-named function of `filename`: funcname -> stats."""
        file = self._file_ids.get(filename)
        if file is None:
            return {}
        return {self._funcs[f][1]: self._function_stats(f) for f in self._file_funcs[file]}

    def all_functions(self) -> Iterator[tuple[tuple[str, str], FunctionStats]]:
        """((filename, funcname), stats) for every function, synthetic ones (`~`) included."""
        for func, key in enumerate(self._funcs):
            yield key, self._function_stats(func)

    def _function_stats(self, func: int) -> FunctionStats:
        return FunctionStats(self._func_self[func], self._func_total[func], self._func_first[func])

    # -- views grouped on demand ------------------------------------------------------------

    def stacks(self, filename: str | None = None) -> Iterator[tuple[tuple[int, ...], int]]:
        """(spot ids leaf first, weight) of every distinct stack, or of those through
        `filename`, in first-seen order. `spots[i]` names a spot id."""
        weights = self._weights
        if filename is None:
            yield from weights.items()
            return
        file = self._file_ids.get(filename)
        if file is not None:
            for spots in self._file_stacks[file]:
                yield spots, weights[spots]

    def grouped(
        self, key: Callable[[int], Hashable | None], filename: str | None = None
    ) -> tuple[dict[Hashable, int], dict[Hashable, int]]:
        """(self, total) weight per `key(spot id)` (None: not counted), each key once per stack;
        only stacks through `filename` if given."""
        keys: dict[int, Hashable | None] = {}
        self_w: dict[Hashable, int] = {}
        total_w: dict[Hashable, int] = {}
        for spots, weight in self.stacks(filename):
            groups = set()
            for s in dict.fromkeys(spots):
                k = keys[s] if s in keys else keys.setdefault(s, key(s))
                if k is not None:
                    groups.add(k)
            if not groups:
                continue
            leaf = keys[spots[0]]
            if leaf is not None:
                self_w[leaf] = self_w.get(leaf, 0) + weight
            for k in groups:
                total_w[k] = total_w.get(k, 0) + weight
        return self_w, total_w

    def pairs(
        self,
        caller_key: Callable[[int], Hashable | None],
        callee_key: Callable[[int], Hashable | None],
        filename: str | None = None,
    ) -> dict[tuple[Hashable, Hashable], int]:
        """Weight per (caller_key(caller), callee_key(callee)) over adjacent frames, each pair
        of keys once per stack, skipping frames whose key is None; in first-seen order."""
        callers: dict[int, Hashable | None] = {}
        callees: dict[int, Hashable | None] = {}
        out: dict[tuple[Hashable, Hashable], int] = {}
        for spots, weight in self.stacks(filename):
            seen = set()
            for callee, caller in zip(spots, spots[1:]):
                a = callers[caller] if caller in callers else callers.setdefault(caller, caller_key(caller))
                if a is None:
                    continue
                b = callees[callee] if callee in callees else callees.setdefault(callee, callee_key(callee))
                if b is None or (a, b) in seen:
                    continue
                seen.add((a, b))
                out[(a, b)] = out.get((a, b), 0) + weight
        return out
