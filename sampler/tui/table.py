"""The live view's data: the rows, header figures and thread views `--live` draws, no curses.

`LiveTable` is fed the sampling profile's deltas (`Profile.delta_since`) and holds, since the last
reset, one `LineIndex` over every thread and one per thread, each in frame ids of its own (a
thread's index knows only the frames its stacks used), and a `Profile` of the same samples for
`o` to write in any format. Feeding costs what the delta holds; reading a view costs one pass over
its rows per index generation (cached, so a redraw without new samples is cheap).

Rows are pstats' (filename, lineno, funcname) spots with direct and cumulative samples; shares
are of the view's samples (every thread's stacks in ALL, one thread's in a thread view), as in
heatline's pstats table. The header's sample counts are ticks (`RunStats`), its thread-state
shares are of the view's thread samples.
"""

from __future__ import annotations

import dataclasses
import heapq
import time
from operator import itemgetter
from typing import Any, Callable, Hashable, Iterable, NamedTuple, TypeVar

from ..sourcefiles import display_names
from ..lineindex import Heat, LineIndex, Spot
from ..model import (GC_FRAME, GIL_REQUESTED, HAS_EXCEPTION, HAS_GIL, ON_CPU, SYNTHETIC_FILENAME, TASK_FILENAME, Frame,
                     Profile, ProfileDelta, RunStats)
from ..sourcefiles import read_source
from ..target.files import TargetFiles
from ..collectors.opcode_view import instruction
from . import source_view as _source_view
from .opcodes import PanelLine, panel_lines
from .source_view import SourceView
from .trends import HeatHistory, Trends, percent

SORT_KEYS: tuple[str, ...] = ("nsamples", "sample_pct", "tottime", "cumul_pct", "cumtime")  # `s` order
DEFAULT_SORT = "tottime"  # what Tachyon's screen starts with
SORT_TITLES: dict[str, str] = {
    "nsamples": "Direct Samples",
    "sample_pct": "Sample %",
    "tottime": "Total Time",
    "cumul_pct": "Cumulative %",
    "cumtime": "Cumulative Time",
}
_CUMULATIVE_SORTS = ("cumul_pct", "cumtime")  # the others order by direct samples first
TOP_COUNT = 3
ALL_LABEL = "ALL"
NO_LOCATION = "-"  # the file:line of a frame in no file (<GC>)
TASK_LOCATION = "asyncio task"  # the file:line of an --async-aware task marker, which has none

T = TypeVar("T")

__all__ = ["ALL_LABEL", "DEFAULT_SORT", "Figures", "LiveTable", "Row", "SORT_KEYS", "SORT_TITLES", "SourceView"]


class Row(NamedTuple):
    """One (function, line) of the table: pstats' key, its samples, shares and times."""

    filename: str
    lineno: int
    funcname: str
    direct: int  # samples with it as the leaf
    cumulative: int  # samples with it anywhere on the stack, once per stack
    direct_pct: float  # 0..100 of the view's samples
    cumulative_pct: float
    self_s: float  # estimated seconds: samples x the sampling interval
    cumulative_s: float
    location: str  # "file:line" for display (basename, lengthened only where two files share it)
    trends: Trends  # per column (nsamples, %, tottime, %, cumtime): -1 down, 0 same, 1 up


class Figures(NamedTuple):
    """The header's numbers for the current view."""

    samples: int  # sampling ticks since the view (re)started: good + failed
    good: int
    failed: int
    rate: float  # good samples per second since the view (re)started
    asked_rate: float  # what the interval asks for
    uptime_s: float  # since the run started
    gil_held: float  # shares 0..1 of the view's thread samples
    gil_released: float
    gil_waiting: float
    on_cpu: float
    exception: float
    gc: float  # stacks in the garbage collector
    functions: int  # rows: all of the view,
    executing: int  # those with direct samples,
    on_stack_only: int  # those with cumulative samples only,
    shown: int  # those the filter keeps
    top: list[tuple[str, float]]  # up to 3 (funcname, direct %): functions, their lines summed
    thread_label: str  # "ALL" or "<name> (TID n)  k/N"


class _Baseline(NamedTuple):
    """The run's counters when the view (re)started."""

    good: int = 0
    failed: int = 0
    uptime_s: float = 0.0


class _View:
    """One view's samples: a line index in frame ids of its own, thread-state counts, and the
    heat last read for rows (with the one before it, for trends)."""

    __slots__ = ("index", "ids", "status", "samples", "history", "_answers", "_answered")

    def __init__(self, index: LineIndex | None) -> None:
        self.index = index  # None: not built yet (a thread view nobody has looked at)
        self.ids: dict[int, int] = {}  # the sampling profile's frame id -> this view's (0, 1, ...)
        self.status: dict[int, int] = {}  # thread samples per status bits
        self.samples = 0  # thread samples (empty stacks included: they have a state)
        self.history = HeatHistory()
        self._answers: dict[Hashable, Any] = {}  # what was read off `history`, by question
        self._answered = -1  # the generation `_answers` are of

    def feed(self, frames: list[Frame], stacks: Iterable[tuple[tuple[int, tuple[int, ...]], int]],
             status: Iterable[tuple[int, int]]) -> ProfileDelta:
        """Count stacks (in the sampling profile's frame ids) and statuses in; returns the delta
        in this view's frame ids (the view's first delta starts at 0)."""
        for bits, count in status:
            self.status[bits] = self.status.get(bits, 0) + count
            self.samples += count
        ids, first = self.ids, len(self.ids)
        new: list[Frame] = []
        local: dict[tuple[int, tuple[int, ...]], int] = {}
        if self.index is None:
            return ProfileDelta(first, new, local, {}, {})
        for (tid, stack), weight in stacks:
            try:
                key = (tid, tuple(map(ids.__getitem__, stack)))
            except KeyError:
                for i in stack:
                    if i not in ids:
                        ids[i] = first + len(new)
                        new.append(frames[i])
                key = (tid, tuple(map(ids.__getitem__, stack)))
            local[key] = local.get(key, 0) + weight
        delta = ProfileDelta(first, new, local, {}, {})
        self.index.apply(delta)
        return delta

    def in_gc(self) -> int:
        """Stacks in the garbage collector (`<GC>` is always the leaf)."""
        return self.index.synthetic_leaves.get(GC_FRAME.funcname, 0) if self.index is not None else 0

    def share(self, flag: int) -> float:
        """Share (0..1) of the view's thread samples whose status has `flag`."""
        if not self.samples:
            return 0.0
        return sum(n for bits, n in self.status.items() if bits & flag) / self.samples

    def answer(self, question: Hashable, work: Callable[[], T]) -> T:
        """`work()`, done once per index generation and `question` (a redraw without new
        samples costs nothing)."""
        assert self.index is not None
        self.history.read(self.index)
        if self._answered != self.history.generation:
            self._answers.clear()
            self._answered = self.history.generation
        if question not in self._answers:
            self._answers[question] = work()
        return self._answers[question]

    def rows_matching(self, needle: str | None, haystack: Callable[[Spot], str]) -> list[tuple[Spot, Heat]]:
        """(spot, heat) of the rows whose haystack holds `needle` (None: every row)."""
        def work() -> list[tuple[Spot, Heat]]:
            items = self.history.heat.items()
            return list(items) if needle is None else [item for item in items if needle in haystack(item[0])]

        return self.answer(("filter", needle), work)


class LiveTable:
    """What the live screen shows, kept current from the sampling profile's deltas.

    Not thread-safe: the screen's thread feeds and reads it; only taking the delta from the
    sampling profile needs that profile's lock.
    """

    def __init__(self, interval_us: int, files: TargetFiles | None = None) -> None:
        """`files`: the target's files (its root and cwd held open, for a target in a container
        or one that exits); by default opened from the PID of the first `figures` stats."""
        self.interval_us = interval_us
        self.sort_key: str = DEFAULT_SORT
        self.filter_text: str | None = None
        self.selected_thread: int | None = None  # None: all threads
        self.trends_enabled = True
        self._files = files
        self._frames: list[Frame] = []  # the sampling profile's frames, by its frame ids
        self._names: dict[int, str] = {}  # thread names: kept across resets (sent once)
        self._haystacks: dict[Spot, str] = {}  # what the filter searches, per spot, lowercase
        self._display: tuple[LineIndex | None, int, dict[str, str]] = (None, 0, {})  # index, files, names
        self._stats: RunStats | None = None  # the last seen, to start a reset view's counters from
        self._clear(_Baseline())

    def _clear(self, baseline: _Baseline) -> None:
        self._all = _View(LineIndex())
        self._threads: dict[int, _View] = {}  # in first-seen order
        self._profile = Profile()
        self._profile_ids: list[int] = []  # the ALL view's frame ids -> the profile's
        self._baseline = baseline
        self._last_thread: int | None = None

    # -- feeding --------------------------------------------------------------------------------

    def apply(self, delta: ProfileDelta) -> None:
        """Count in what the sampling profile gained: pass every delta of it, in order
        (`delta_since(None)`, or one mark's, then the marks after)."""
        if delta.first_frame_id != len(self._frames):
            raise ValueError(f"delta starts at frame {delta.first_frame_id}, {len(self._frames)} frames known")
        frames = self._frames
        frames.extend(delta.frames)
        self._names.update(delta.thread_names)
        if not (delta.stacks or delta.status_counts):
            return
        by_thread: dict[int, list[tuple[tuple[int, tuple[int, ...]], int]]] = {}
        for item in delta.stacks.items():
            by_thread.setdefault(item[0][0], []).append(item)
        all_status = [item for counts in delta.status_counts.values() for item in counts.items()]
        local = self._all.feed(frames, delta.stacks.items(), all_status)
        threads, new = self._threads, []
        for tid in {**delta.status_counts, **by_thread}:
            view = threads.get(tid)
            if view is None:
                view = threads[tid] = _View(None)
                new.append(tid)
            status = delta.status_counts.get(tid)
            view.feed(frames, by_thread.get(tid, ()), status.items() if status else ())
        names = {tid: self._names[tid] for tid in new if tid in self._names}
        names.update(delta.thread_names)
        self._profile.apply(local._replace(status_counts=delta.status_counts, thread_names=names), self._profile_ids)

    def reset(self, stats: RunStats | None = None, now: float | None = None) -> None:
        """Forget every sample seen so far: the view restarts (thread names are kept). `stats`
        (the sampling profile's, default the last `figures` had) and `now` (`time.monotonic()`)
        start the header's counters afresh."""
        stats = stats or self._stats
        baseline = _Baseline()
        if stats is not None:
            baseline = _Baseline(stats.samples, stats.errors, _uptime(stats, now))
        self._clear(baseline)
        self.selected_thread = None

    # -- the header -----------------------------------------------------------------------------

    def figures(self, stats: RunStats, now: float | None = None) -> Figures:
        """The header's numbers: `stats` is the sampling profile's (read live), `now` is
        `time.monotonic()` (the default)."""
        self._stats = stats
        if self._files is None and stats.pid > 0:
            self._files = TargetFiles(stats.pid if not stats.target_exited else None)
        base = self._baseline
        uptime = _uptime(stats, now)
        good, failed = stats.samples - base.good, stats.errors - base.failed
        span = uptime - base.uptime_s
        view = self._view()
        kept = self._rows_matching(view)
        history = view.history
        in_gc = view.in_gc()
        top = view.answer(("top", self._needle()), lambda: _top_functions(kept, TOP_COUNT))
        held = view.share(HAS_GIL)
        return Figures(
            samples=good + failed, good=good, failed=failed,
            rate=good / span if span > 0 else 0.0,
            asked_rate=1_000_000 / self.interval_us if self.interval_us > 0 else 0.0,
            uptime_s=uptime,
            gil_held=held, gil_released=1.0 - held if view.samples else 0.0,
            gil_waiting=view.share(GIL_REQUESTED), on_cpu=view.share(ON_CPU),
            exception=view.share(HAS_EXCEPTION), gc=in_gc / view.samples if view.samples else 0.0,
            functions=len(history.heat), executing=history.executing,
            on_stack_only=len(history.heat) - history.executing, shown=len(kept),
            top=[(funcname, percent(direct, history.total)) for (_filename, funcname), direct in top],
            thread_label=self._thread_label(),
        )

    # -- the table ------------------------------------------------------------------------------

    def rows(self, limit: int | None = None) -> list[Row]:
        """The current view's rows the filter keeps, by `sort_key`, largest first (ties by
        the other count, then first seen first); at most `limit`."""
        view = self._view()
        direct_first = self.sort_key not in _CUMULATIVE_SORTS
        names = self._display_names()
        question = ("rows", self._needle(), direct_first, limit, len(names))
        return list(view.answer(question, lambda: self._rows(view, direct_first, limit, names)))

    def _rows(self, view: _View, direct_first: bool, limit: int | None, names: dict[str, str]) -> list[Row]:
        kept = self._rows_matching(view)
        chosen = _largest(kept, limit, direct_first)
        history, usec = view.history, self.interval_us
        out = []
        for spot, heat in chosen:
            filename, lineno, funcname = spot
            direct, cumulative = heat
            location = (NO_LOCATION if filename == SYNTHETIC_FILENAME else TASK_LOCATION if filename == TASK_FILENAME
                        else f"{names[filename]}:{lineno}")
            out.append(Row(filename, lineno, funcname, direct, cumulative, percent(direct, history.total),
                           percent(cumulative, history.total), direct * usec / 1_000_000,
                           cumulative * usec / 1_000_000, location, history.trends(spot, heat)))
        return out

    def cycle_sort(self, step: int) -> None:
        """`s` (+1) / `S` (-1): the next or previous sort key, wrapping."""
        self.sort_key = SORT_KEYS[(SORT_KEYS.index(self.sort_key) + step) % len(SORT_KEYS)]

    def set_filter(self, text: str | None) -> None:
        """Keep rows whose filename, function or `file:func` holds `text`, ignoring case; None
        or '' shows every row."""
        self.filter_text = text or None

    def toggle_trends(self) -> None:
        """`x`: trend colours on or off (the trends are computed either way)."""
        self.trends_enabled = not self.trends_enabled

    def _needle(self) -> str | None:
        return self.filter_text.lower() if self.filter_text else None

    def _rows_matching(self, view: _View) -> list[tuple[Spot, Heat]]:
        return view.rows_matching(self._needle(), self._haystack)

    def _haystack(self, spot: Spot) -> str:
        text = self._haystacks.get(spot)
        if text is None:
            # "file:func" holds the filename and the function too: one search covers all three.
            text = self._haystacks[spot] = f"{spot[0]}:{spot[2]}".lower()
        return text

    def _display_names(self) -> dict[str, str]:
        """Shown file names, one naming for every view (from the ALL view's files; a file only
        ever adds to them, so their count says whether the names are current)."""
        index = self._all.index
        assert index is not None
        known, count, names = self._display
        files = index.filenames()
        if known is not index or count != len(files):
            names = display_names(files)
            self._display = (index, len(files), names)
        return names

    # -- threads --------------------------------------------------------------------------------

    def thread_ids(self) -> list[int]:
        """Threads seen since the view (re)started, in first-seen order."""
        return list(self._threads)

    def thread_name(self, tid: int) -> str | None:
        return self._names.get(tid)

    def toggle_threads(self) -> None:
        """`t`: ALL <-> one thread (the last one shown, else the first seen)."""
        if self.selected_thread is not None:
            self._last_thread, self.selected_thread = self.selected_thread, None
        elif self._threads:
            last = self._last_thread
            self.selected_thread = last if last in self._threads else next(iter(self._threads))

    def step_thread(self, step: int) -> None:
        """←/→: the next (+1) or previous (-1) thread, wrapping; nothing in the ALL view."""
        if self.selected_thread is None or not self._threads:
            return
        order = list(self._threads)
        here = order.index(self.selected_thread) if self.selected_thread in self._threads else -1
        self.selected_thread = order[(here + step) % len(order)]

    def _view(self) -> _View:
        """The view on show, its index built from the view's profile when first looked at:
        threads nobody looks at cost only their state counts."""
        if self.selected_thread is None:
            return self._all
        view = self._threads.get(self.selected_thread)
        if view is None:
            return _View(LineIndex())
        if view.index is None:
            tid, frames = self.selected_thread, self._profile.frames
            view.index = LineIndex((tid, tuple(frames[i] for i in ids), weight)
                                   for (t, ids), weight in self._profile.stacks.items() if t == tid)
        return view

    def _thread_label(self) -> str:
        tid = self.selected_thread
        if tid is None:
            return ALL_LABEL
        order = list(self._threads)
        where = f"{order.index(tid) + 1}/{len(order)}" if tid in self._threads else f"-/{len(order)}"
        name = self._names.get(tid)
        return f"{name} (TID {tid})  {where}" if name else f"TID {tid}  {where}"

    # -- source and export ----------------------------------------------------------------------

    def source_view(self, row: Row, context: int = 3) -> SourceView | None:
        """Enter on a row: its function's lines with their heat in the current view."""
        files = self._files or TargetFiles(None)
        started = self._stats.start_time if self._stats is not None else None
        return _source_view.build(self._view().index, row.filename, row.funcname, row.lineno,
                                  lambda filename: read_source(files.path(filename)), started, context)

    def opcode_panel(self, row: Row, *, unicode: bool = True) -> list[PanelLine]:
        """`--opcodes`: the panel of `row`'s line in the current view (instructions named for
        the target's Python version)."""
        from ..cpython.opcodes import opcode_table

        index = self._view().index
        assert index is not None
        table = opcode_table(self._stats.python_version if self._stats is not None else "")
        rows = [instruction(table, h.opcode, h.samples) for h in index.line_opcodes(row.filename, row.lineno)]
        return panel_lines(row.funcname, row.location, rows, index.line_native(row.filename, row.lineno),
                           row.cumulative, unicode=unicode)

    def profile(self) -> Profile:
        """A new Profile of every sample the view holds (all threads, since the last reset),
        with the run's stats counted from the same moment, for `o` to write in any format."""
        stats = self._stats or RunStats(interval_usec=self.interval_us)
        base = self._baseline
        out = Profile(dataclasses.replace(
            stats, interval_usec=self.interval_us, argv=list(stats.argv),
            samples=stats.samples - base.good, errors=stats.errors - base.failed,
            attempts=stats.samples - base.good + stats.errors - base.failed,
            duration_s=max(0.0, _uptime(stats, None) - base.uptime_s),
        ))
        out.merge(self._profile)
        return out


def _largest(items: list[tuple[Spot, Heat]], limit: int | None, direct_first: bool) -> list[tuple[Spot, Heat]]:
    """The `limit` (None: all) items with the most direct samples, ties by cumulative ones (or
    the other way round), ties of both in first-seen order: a row keeps its place between
    redraws. Integer keys only: this runs on every row of the view once per refresh."""
    key = itemgetter(1) if direct_first else _cumulative_first
    if limit is None:
        return sorted(items, key=key, reverse=True)
    return heapq.nlargest(max(limit, 0), items, key=key)


def _top_functions(rows: list[tuple[Spot, Heat]], count: int) -> list[tuple[tuple[str, str], int]]:
    """The `count` functions (filename, funcname) with the most direct samples over their rows,
    ties in first-seen order: a function hot on two lines is one entry, not two."""
    direct: dict[tuple[str, str], int] = {}
    for (filename, _lineno, funcname), heat in rows:
        if heat.self_samples:
            key = (filename, funcname)
            direct[key] = direct.get(key, 0) + heat.self_samples
    return heapq.nlargest(count, direct.items(), key=itemgetter(1))


def _cumulative_first(item: tuple[Spot, Heat]) -> tuple[int, int]:
    return item[1].total_samples, item[1].self_samples


def _uptime(stats: RunStats, now: float | None) -> float:
    """Seconds since the run started: its duration once it ended, else up to `now` (monotonic)."""
    if stats.duration_s > 0:
        return stats.duration_s
    if not stats.start_monotonic_us:
        return 0.0
    return max(0.0, (time.monotonic() if now is None else now) - stats.start_monotonic_us / 1e6)
