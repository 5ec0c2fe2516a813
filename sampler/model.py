"""The one aggregated profile model every output format is built from.

Samples flow in as `ThreadSample`s (frames leaf first, as the unwinder produces them); the
`Profile` is the one door they enter by: it cuts heatline's launcher frames off once (and folds
pytest's frames into one for a pytest target, sampler/harness.py), interns
frames, counts identical (thread, stack) pairs and keeps per-thread status counts and the run's
statistics, and hands the cut samples on to its sinks (the formats that keep the timeline, the
live stream). Readers follow it through deltas since a mark, and profiles are combined with
`apply`/`merge`, so no one else writes its tables.
"""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Iterable, Iterator, NamedTuple, Protocol, Sequence

from .launcher_frames import strip_internal_frames

# Thread status bits; the values match Tachyon's so files and tools can be compared.
HAS_GIL = 1 << 0
ON_CPU = 1 << 1
UNKNOWN = 1 << 2
GIL_REQUESTED = 1 << 3
HAS_EXCEPTION = 1 << 4
MAIN_THREAD = 1 << 5

MODES = ("wall", "cpu", "gil", "exception")
ASYNC_MODES = ("running", "all")  # --async-mode (Tachyon's values)

SYNTHETIC_FILENAME = "~"
# An asyncio task in an --async-aware stack is a frame of this "file", named after the task, on
# line 0: Tachyon's shape (`<task>:NAME:0` in collapsed stacks), so every format carries it as
# Tachyon's do. Not synthetic: formats that print `~` frames by their name alone would drop the
# `<task>` that tells a task from a function.
TASK_FILENAME = "<task>"


class Frame(NamedTuple):
    """One frame as shown to users: `lineno` is the line executing in it, not its first line."""

    filename: str
    funcname: str
    lineno: int
    end_lineno: int = -1
    col: int = -1
    end_col: int = -1
    # The raw instruction byte executing in this frame (adaptive, maybe specialized; 3.9/3.10
    # co_code), -1 when not recorded: sampler/cpython/opcodes.py names it per target version.
    opcode: int = -1

    @property
    def is_synthetic(self) -> bool:
        return self.filename == SYNTHETIC_FILENAME

    @property
    def is_task(self) -> bool:
        """An asyncio task's marker in an --async-aware stack (`task_frame`)."""
        return self.filename == TASK_FILENAME

    def key(self) -> tuple[str, int, str]:
        """The pstats key: (filename, lineno, funcname)."""
        return (self.filename, self.lineno, self.funcname)


GC_FRAME = Frame(SYNTHETIC_FILENAME, "<GC>", 0)
# Time in C code (--native): where C called into Python, and on top of a frame that is calling.
NATIVE_FRAME = Frame(SYNTHETIC_FILENAME, "<native>", 0)


@lru_cache(maxsize=4096)  # --async-mode all makes one per task per sample
def task_frame(name: str) -> Frame:
    """The marker of asyncio task `name` in an --async-aware stack."""
    return Frame(TASK_FILENAME, name, 0)


class ThreadSample(NamedTuple):
    thread_id: int
    status: int
    frames: tuple[Frame, ...]  # innermost (leaf) first
    interpreter_id: int = 0


class SampleSink(Protocol):
    """Receives every sample as it is taken or replayed: in time order within each thread (a
    replay delivers runs of one thread as blocks, so threads may interleave out of time order).
    A profile's sinks (`Profile.add_sink`) get them after the profile, launcher frames cut."""

    def collect(self, timestamp_us: int, threads: Sequence[ThreadSample], weight: int = 1) -> None: ...


def mode_accepts(mode: str, status: int) -> bool:
    """Whether a thread in `status` belongs in a profile taken in `mode`."""
    if mode == "wall":
        return True
    if mode == "cpu":
        return bool(status & ON_CPU)
    if mode == "gil":
        return bool(status & HAS_GIL)
    if mode == "exception":
        return bool(status & HAS_EXCEPTION)
    raise ValueError(f"unknown mode {mode!r}")


@dataclass
class RunStats:
    """What the sampling loop measured; printed in summaries and stored in outputs."""

    pid: int = 0
    python_version: str = ""
    mode: str = "wall"
    all_threads: bool = False
    interval_usec: int = 1000
    start_time: float = field(default_factory=time.time)  # wall clock, for people
    start_monotonic_us: int = 0  # time.monotonic() in µs: the origin of sample timestamps
    duration_s: float = 0.0
    attempts: int = 0  # sampling ticks
    samples: int = 0  # ticks that produced a stack read without error
    errors: int = 0
    missed: int = 0  # ticks the loop could not take on time
    interrupted: bool = False
    target_exited: bool = False
    cwd: str = ""  # the target's working directory, for resolving relative source paths
    argv: list[str] = field(default_factory=list)  # the target's command line, as it started
    opcodes: bool = False  # frames carry Frame.opcode (--opcodes)
    native: bool = False  # stacks carry <native> frames (--native)

    @property
    def sample_rate(self) -> float:
        return self.samples / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def error_rate(self) -> float:
        return 100.0 * self.errors / self.attempts if self.attempts else 0.0

    @property
    def expected_samples(self) -> int:
        return int(self.duration_s * 1_000_000 / self.interval_usec) if self.interval_usec else 0


class ProfileDelta(NamedTuple):
    """What a profile gained between two moments, in that profile's own frame ids.

    `Profile.delta_since` makes one; `Profile.apply` adds one to another profile.
    """

    first_frame_id: int  # the id of frames[0]: how many frames the profile had before
    frames: list[Frame]  # frames first seen in the span, in id order
    stacks: dict[tuple[int, tuple[int, ...]], int]  # weight added per (thread id, frame ids leaf first)
    status_counts: dict[int, dict[int, int]]  # weight added per thread id, per status bits
    thread_names: dict[int, str]  # names that are new or changed

    @property
    def empty(self) -> bool:
        return not (self.frames or self.stacks or self.status_counts or self.thread_names)


class _Changes:
    """Weights added since one `Mark` (compared by identity, never by content)."""

    __slots__ = ("stacks", "status_counts")

    def __init__(self) -> None:
        self.stacks: dict[tuple[int, tuple[int, ...]], int] = {}
        self.status_counts: dict[int, dict[int, int]] = {}


class Mark:
    """A moment in a profile's history (`Profile.mark`). While it is referenced, the profile
    records what is added for it, so `delta_since` costs what changed, not the profile's size;
    once dropped, it costs nothing."""

    __slots__ = ("profile", "frame_count", "thread_names", "changes", "__weakref__")

    def __init__(self, profile: "Profile", changes: _Changes) -> None:
        self.profile = profile
        self.frame_count = len(profile._frames)
        self.thread_names = dict(profile.thread_names)
        self.changes = changes


class Profile:
    """Frames interned to ids; weights per (thread, stack) and per (thread, status).

    Samples enter through `add` or `collect` (the `SampleSink` door), where heatline's launcher
    frames are cut off (`launcher_frames`), once; everything that reads a profile sees the cut
    stacks. `collect` then hands the cut samples on to the sinks registered with `add_sink`
    (streaming collectors, the live stream). Readers take `mark()`/`delta_since()` to follow
    what changed, and `apply()`/`merge()` build a profile from another's parts by the same rules.
    """

    # Samples counted by identity before they are folded into the tables (see `add`).
    MAX_PENDING = 4096
    # Distinct sample objects whose cut form is remembered for the sinks (see `collect`).
    MAX_CUT_SAMPLES = 8192
    MAX_CACHED_STACKS = 200_000

    def __init__(self, stats: RunStats | None = None) -> None:
        self.stats = stats or RunStats()
        from .harness import fold_harness, runs_pytest  # it reads Frame from here

        # pytest's own frames are folded into one when the target is pytest (harness.py)
        self._harness_fold = fold_harness if runs_pytest(self.stats.argv) else None
        self._frames: list[Frame] = []
        self._frame_ids: dict[Frame, int] = {}
        self._stacks: dict[tuple[int, tuple[int, ...]], int] = {}
        self._status_counts: dict[int, dict[int, int]] = {}
        self.thread_names: dict[int, str] = {}
        # frames as sampled -> ids of the frames kept after the launcher cut
        self._stack_cache: dict[tuple[Frame, ...], tuple[int, ...]] = {}
        # id(sample) -> [sample, weight not yet folded in]. The native core hands out one
        # ThreadSample object per distinct (thread, status, stack), so a repeated sample is
        # counted here without hashing its frames; holding the object keeps its id unique.
        self._pending: dict[int, list] = {}
        self._sinks: list[SampleSink] = []
        # For the sinks: id(sample) -> (sample, its cut form), and frames -> cut frames.
        self._cut_samples: dict[int, tuple[ThreadSample, ThreadSample]] = {}
        self._cut_frames: dict[tuple[Frame, ...], tuple[Frame, ...]] = {}
        self._watchers: list[_Changes] = []  # one per live Mark

    # -- reading ------------------------------------------------------------------------------

    @property
    def frames(self) -> list[Frame]:
        """Every frame seen, indexed by frame id."""
        if self._pending:
            self._fold()
        return self._frames

    @property
    def stacks(self) -> dict[tuple[int, tuple[int, ...]], int]:
        """Weight per (thread id, frame ids leaf first)."""
        if self._pending:
            self._fold()
        return self._stacks

    @property
    def status_counts(self) -> dict[int, dict[int, int]]:
        """Weight per thread id, per status bits."""
        if self._pending:
            self._fold()
        return self._status_counts

    def frame_id(self, frame: Frame) -> int:
        fid = self._frame_ids.get(frame)
        if fid is None:
            fid = len(self._frames)
            self._frames.append(frame)
            self._frame_ids[frame] = fid
        return fid

    # -- samples in ---------------------------------------------------------------------------

    def add(self, sample: ThreadSample, weight: int = 1) -> None:
        entry = self._pending.get(id(sample))
        if entry is not None and entry[0] is sample:
            entry[1] += weight
            return
        if len(self._pending) >= self.MAX_PENDING:
            self._fold()
        self._pending[id(sample)] = [sample, weight]

    def _fold(self) -> None:
        pending, self._pending = self._pending, {}
        for sample, weight in pending.values():
            self._count(sample, weight)

    def _count(self, sample: ThreadSample, weight: int) -> None:
        ids = self._stack_cache.get(sample.frames)
        if ids is None:
            # The launcher cut, once per distinct stack: the ids are cached with it. A sample
            # that came through `_cut` is already cut, and known there as its own cut.
            cut = self._cut_frames.get(sample.frames)
            if cut is None:
                cut = self._cut_stack(sample.frames)
            ids = tuple(self.frame_id(f) for f in cut)
            if len(self._stack_cache) < self.MAX_CACHED_STACKS:
                self._stack_cache[sample.frames] = ids
        self._add_stack((sample.thread_id, ids), weight)
        self._add_status(sample.thread_id, sample.status, weight)

    def _add_stack(self, key: tuple[int, tuple[int, ...]], weight: int) -> None:
        self._stacks[key] = self._stacks.get(key, 0) + weight
        for changes in self._watchers:
            changes.stacks[key] = changes.stacks.get(key, 0) + weight

    def _add_status(self, tid: int, status: int, weight: int) -> None:
        per_thread = self._status_counts.setdefault(tid, {})
        per_thread[status] = per_thread.get(status, 0) + weight
        for changes in self._watchers:
            per_thread = changes.status_counts.setdefault(tid, {})
            per_thread[status] = per_thread.get(status, 0) + weight

    def add_all(self, samples: Iterable[ThreadSample]) -> None:
        for s in samples:
            self.add(s)

    def collect(self, timestamp_us: int, threads: Sequence[ThreadSample], weight: int = 1) -> None:
        """`SampleSink` interface: counts the samples and hands them, cut, to the sinks."""
        # `add`'s identity count inlined for the repeated sample (the common case: at 100k
        # samples/s the call is a good share of the cost). `add` may fold, replacing `_pending`.
        # For the sinks, a sample object seen before is looked up by identity; its cut form is a
        # stable object too, so it is still counted by identity.
        add = self.add
        pending = self._pending
        sinks = self._sinks
        known = self._cut_samples
        cut = []
        for t in threads:
            if sinks:
                pair = known.get(id(t))
                if pair is None or pair[0] is not t:
                    pair = self._cut(t)
                t = pair[1]
                cut.append(t)
            entry = pending.get(id(t))
            if entry is not None and entry[0] is t:
                entry[1] += weight
            else:
                add(t, weight)
                pending = self._pending
        for sink in sinks:
            sink.collect(timestamp_us, cut, weight)

    def _cut(self, sample: ThreadSample) -> tuple[ThreadSample, ThreadSample]:
        """(sample, sample without launcher frames), remembered for the next time it comes."""
        frames = self._cut_frames.get(sample.frames)
        if frames is None:
            frames = self._cut_stack(sample.frames)
            if len(self._cut_frames) < self.MAX_CACHED_STACKS:
                self._cut_frames[sample.frames] = frames
                self._cut_frames[frames] = frames  # so `_count` does not cut it again
        if len(self._cut_samples) >= self.MAX_CUT_SAMPLES:
            self._cut_samples.clear()
        # A cut that changes nothing returns the stack it was given (or, from the cache, an equal
        # one). Lengths first: the launcher cut shortens, so most cut stacks differ there at once,
        # and this runs for every new sample object while sinks stream.
        same = frames is sample.frames or (len(frames) == len(sample.frames) and frames == sample.frames)
        entry = self._cut_samples[id(sample)] = (sample, sample if same else sample._replace(frames=frames))
        return entry

    def _cut_stack(self, frames: tuple[Frame, ...]) -> tuple[Frame, ...]:
        """The launcher cut, then pytest's frames folded for a pytest target."""
        cut = strip_internal_frames(frames)
        return cut if self._harness_fold is None else self._harness_fold(cut)

    def add_sink(self, sink: SampleSink) -> None:
        """Hand every sample that enters through `collect` on to `sink`, cut, after counting it."""
        self._sinks.append(sink)

    def remove_sink(self, sink: SampleSink) -> None:
        self._sinks.remove(sink)

    # -- changes out, parts in ----------------------------------------------------------------

    def mark(self) -> Mark:
        """Now, as a point `delta_since` can measure from."""
        if self._pending:
            self._fold()
        changes = _Changes()
        mark = Mark(self, changes)
        self._watchers.append(changes)
        weakref.finalize(mark, _forget, self._watchers, changes).atexit = False
        return mark

    def delta_since(self, mark: Mark | None) -> ProfileDelta:
        """What was added after `mark` (everything, for None). The delta is a copy: the
        profile may grow on while it is used."""
        if self._pending:
            self._fold()
        if mark is None:
            return ProfileDelta(0, list(self._frames), dict(self._stacks),
                                {tid: dict(c) for tid, c in self._status_counts.items()},
                                dict(self.thread_names))
        if mark.profile is not self:
            raise ValueError("a mark of another profile")
        changes = mark.changes
        before = mark.thread_names
        return ProfileDelta(
            mark.frame_count, self._frames[mark.frame_count:], dict(changes.stacks),
            {tid: dict(c) for tid, c in changes.status_counts.items()},
            {tid: name for tid, name in self.thread_names.items() if before.get(tid) != name},
        )

    def apply(self, delta: ProfileDelta, frame_ids: list[int]) -> None:
        """Add `delta`, taken from another profile, to this one. `frame_ids` maps the other
        profile's frame ids to this one's and grows with the delta's frames: pass the same
        list with every delta of one source, in order (a fresh list with a whole profile)."""
        if delta.first_frame_id != len(frame_ids):
            raise ValueError(f"delta starts at frame {delta.first_frame_id}, {len(frame_ids)} frames known")
        if self._pending:
            self._fold()
        frame_ids.extend(map(self.frame_id, delta.frames))
        for (tid, ids), weight in delta.stacks.items():
            self._add_stack((tid, tuple(frame_ids[i] for i in ids)), weight)
        for tid, counts in delta.status_counts.items():
            for status, count in counts.items():
                self._add_status(tid, status, count)
        self.thread_names.update(delta.thread_names)

    def merge(self, other: "Profile") -> None:
        """Add every stack, status count and thread name of `other`, as if its samples had been
        added here after this profile's own; `stats` are left as they are."""
        self.apply(other.delta_since(None), [])

    # -- views ----------------------------------------------------------------------------------

    def iter_stacks(self) -> Iterator[tuple[int, tuple[Frame, ...], int]]:
        """(thread_id, frames leaf first, weight) for every distinct stack."""
        frames = self.frames
        for (tid, ids), weight in self.stacks.items():
            yield tid, tuple(frames[i] for i in ids), weight

    @property
    def total_weight(self) -> int:
        return sum(self.stacks.values())

    @property
    def thread_ids(self) -> list[int]:
        return sorted(self.status_counts)

    def status_totals(self) -> dict[int, int]:
        """Thread samples per status, all threads together."""
        totals: dict[int, int] = {}
        for counts in self.status_counts.values():
            for status, n in counts.items():
                totals[status] = totals.get(status, 0) + n
        return totals

    def status_share(self, flag: int) -> float:
        """Share (0..1) of thread samples whose status has `flag`."""
        totals = self.status_totals()
        total = sum(totals.values())
        hits = sum(n for status, n in totals.items() if status & flag)
        return hits / total if total else 0.0


def _forget(watchers: list[_Changes], changes: _Changes) -> None:
    """A mark was dropped: stop recording for it."""
    for i, w in enumerate(watchers):
        if w is changes:
            del watchers[i]
            return
