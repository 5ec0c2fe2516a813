"""The one aggregated profile model every output format is built from.

Samples flow in as `ThreadSample`s (frames leaf first, as the unwinder produces them); the
`Profile` interns frames and counts identical (thread, stack) pairs, keeping per-thread status
counts and the run's statistics, so collectors never need the raw sample stream.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Iterable, Iterator, NamedTuple, Protocol, Sequence

# Thread status bits; the values match Tachyon's so files and tools can be compared.
HAS_GIL = 1 << 0
ON_CPU = 1 << 1
UNKNOWN = 1 << 2
GIL_REQUESTED = 1 << 3
HAS_EXCEPTION = 1 << 4
MAIN_THREAD = 1 << 5

MODES = ("wall", "cpu", "gil", "exception")

SYNTHETIC_FILENAME = "~"


class Frame(NamedTuple):
    """One frame as shown to users: `lineno` is the line executing in it, not its first line."""

    filename: str
    funcname: str
    lineno: int
    end_lineno: int = -1
    col: int = -1
    end_col: int = -1

    @property
    def is_synthetic(self) -> bool:
        return self.filename == SYNTHETIC_FILENAME

    def key(self) -> tuple[str, int, str]:
        """The pstats key: (filename, lineno, funcname)."""
        return (self.filename, self.lineno, self.funcname)


GC_FRAME = Frame(SYNTHETIC_FILENAME, "<GC>", 0)


class ThreadSample(NamedTuple):
    thread_id: int
    status: int
    frames: tuple[Frame, ...]  # innermost (leaf) first
    interpreter_id: int = 0


class SampleSink(Protocol):
    """Receives every sample as it is taken or replayed: in time order within each thread (a
    replay delivers runs of one thread as blocks, so threads may interleave out of time order)."""

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

    @property
    def sample_rate(self) -> float:
        return self.samples / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def error_rate(self) -> float:
        return 100.0 * self.errors / self.attempts if self.attempts else 0.0

    @property
    def expected_samples(self) -> int:
        return int(self.duration_s * 1_000_000 / self.interval_usec) if self.interval_usec else 0


class Profile:
    """Frames interned to ids; weights per (thread, stack) and per (thread, status)."""

    # Samples counted by identity before they are folded into the tables (see `add`).
    MAX_PENDING = 4096

    def __init__(self, stats: RunStats | None = None) -> None:
        self.stats = stats or RunStats()
        self._frames: list[Frame] = []
        self._frame_ids: dict[Frame, int] = {}
        self._stacks: dict[tuple[int, tuple[int, ...]], int] = {}
        self._status_counts: dict[int, dict[int, int]] = {}
        self.thread_names: dict[int, str] = {}
        self._stack_cache: dict[tuple[Frame, ...], tuple[int, ...]] = {}
        # id(sample) -> [sample, weight not yet folded in]. The native core hands out one
        # ThreadSample object per distinct (thread, status, stack), so a repeated sample is
        # counted here without hashing its frames; holding the object keeps its id unique.
        self._pending: dict[int, list] = {}

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
            ids = tuple(self.frame_id(f) for f in sample.frames)
            if len(self._stack_cache) < 200_000:
                self._stack_cache[sample.frames] = ids
        key = (sample.thread_id, ids)
        self._stacks[key] = self._stacks.get(key, 0) + weight
        per_thread = self._status_counts.setdefault(sample.thread_id, {})
        per_thread[sample.status] = per_thread.get(sample.status, 0) + weight

    def add_all(self, samples: Iterable[ThreadSample]) -> None:
        for s in samples:
            self.add(s)

    def collect(self, timestamp_us: int, threads: Sequence[ThreadSample], weight: int = 1) -> None:
        """`SampleSink` interface: the profile keeps only the aggregate, not the timeline."""
        for t in threads:
            self.add(t, weight)

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
