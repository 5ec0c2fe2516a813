"""The sampling loop: ticks at the requested rate, feeds samples to a `Profile`, measures itself.

Sleeps are scheduled against absolute deadlines so the rate does not drift; a late tick fires at
once and the schedule is kept, unless the loop fell more than MAX_CATCH_UP_S behind (sampling
slower than the requested rate, or a stall), where it re-anchors and reports missed samples. Ctrl-C and the
target exiting both end the loop normally, so the caller always gets a profile to write.
"""

from __future__ import annotations

import contextlib
import ctypes
import struct
import time
from random import random
from typing import Callable, ContextManager, Protocol, Sequence, TextIO

from sampler.errors import ProcessGoneError, ReadError
from sampler.model import Profile, RunStats, SampleSink, ThreadSample
from sampler.output_path import point_at_devnull


class SampleSource(Protocol):
    def sample(self) -> list[ThreadSample]: ...

    def alive(self) -> bool: ...

    def thread_names(self) -> dict[int, str]: ...


NAMES_REFRESH_S = 1.0
# Ticks that come late (a busy machine wakes us late) are taken at once, keeping the schedule;
# only a backlog longer than this is dropped.
MAX_CATCH_UP_S = 0.05
# Longest sleep between two looks at the target: at slow rates (`-r 0.5`: one tick every 2 s)
# an exit must still end the run at once, not after several ticks' worth of failed reads.
LIVENESS_POLL_S = 0.1
# A batched source returns to Python at least this often, so that signal handlers (Ctrl-C,
# SIGTERM), the deadline, thread names, sinks and --realtime-stats are served between batches.
BATCH_NS = 50_000_000
MAX_BATCH_TICKS = 4096
# What a failed sample raises: the target changed under the read (a torn or stale pointer).
SAMPLE_ERRORS = (ReadError, OSError, ValueError, IndexError, UnicodeDecodeError, OverflowError, struct.error)


def _tighten_timer_slack() -> None:
    """Ask for 1 ns timer slack so short sleeps end on time (default slack is 50 us)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_TIMERSLACK = 29
        libc.prctl(PR_SET_TIMERSLACK, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass


class SamplingLoop:
    def __init__(
        self,
        source: SampleSource,
        profile: Profile,
        *,
        interval_usec: int,
        duration_s: float | None = None,
        alive: Callable[[], bool] | None = None,
        realtime_stats: TextIO | None = None,
        sinks: Sequence[SampleSink] = (),
        lock: ContextManager[object] | None = None,
    ) -> None:
        # Samples go to the profile only; `sinks` are registered with it, which hands them the
        # samples it took in (launcher frames cut). `lock` is held around every write into the
        # profile, so a reader on another thread (`--live`) can take a delta between batches.
        self.source = source
        self.profile = profile
        self.lock: ContextManager[object] = lock if lock is not None else contextlib.nullcontext()
        for sink in sinks:
            profile.add_sink(sink)
        self.interval = interval_usec / 1e6
        self.duration_s = duration_s
        self.alive = alive or source.alive
        self.realtime = realtime_stats
        self.stopped = False
        self.sample_cost_min = float("inf")
        self.sample_cost_max = 0.0
        self.sample_cost_total = 0.0

    def stop(self) -> None:
        self.stopped = True

    def run(self) -> RunStats:
        stats = self.profile.stats
        stats.interval_usec = int(self.interval * 1e6)
        _tighten_timer_slack()
        start = time.perf_counter()
        stats.start_time = time.time()
        stats.start_monotonic_us = time.monotonic_ns() // 1000
        self._names_due = start  # when a new thread may next trigger a (costly) name look-up
        self._next_report = start + 1.0
        self._start = start
        try:
            # A source that can time its own ticks (the native core) takes a batch of them per
            # call, with the GIL released; any other is called once per tick from here.
            if getattr(self.source, "run", None) is not None:
                self._run_batched(start)
            else:
                self._run_ticks(start)
        except KeyboardInterrupt:
            stats.interrupted = True
        if self.stopped:  # stop() is what a signal handler (SIGTERM, Ctrl-C) calls: the same end
            stats.interrupted = True
        stats.duration_s = time.perf_counter() - start
        if not stats.target_exited:
            self._refresh_names()
        stats.missed = max(0, stats.expected_samples - stats.attempts)
        if self.realtime is not None:
            self._realtime_write("\n")
        return stats

    def _run_ticks(self, start: float) -> None:
        stats = self.profile.stats
        sample = self.source.sample
        clock = time.perf_counter
        deadline = start + self.duration_s if self.duration_s else None
        next_tick = start
        consecutive_errors = 0
        while not self.stopped:
            now = clock()
            if deadline is not None and now >= deadline:
                break
            if now < next_tick:
                wait = next_tick - now
                if deadline is not None:
                    wait = min(wait, deadline - now)
                if wait > LIVENESS_POLL_S:
                    time.sleep(LIVENESS_POLL_S)
                    if not self.alive():
                        stats.target_exited = True
                        break
                    continue
                time.sleep(wait)
                continue
            # Jitter each interval (mean unchanged) so that a target doing periodic work in
            # step with the sampling clock is not always caught at the same phase (aliasing).
            next_tick += self.interval * (0.5 + random())
            if now - next_tick > MAX_CATCH_UP_S:
                # A real stall (the machine or this process was suspended): do not burst
                # through the backlog; the shortfall shows as missed samples instead.
                next_tick = now
            stats.attempts += 1
            t0 = clock()
            try:
                threads = sample()
            except ProcessGoneError:
                stats.attempts -= 1
                stats.target_exited = True
                break
            except SAMPLE_ERRORS:
                stats.errors += 1
                consecutive_errors += 1
                if self._gone_after_errors(consecutive_errors):
                    break
                continue
            consecutive_errors = 0
            cost = clock() - t0
            self._cost(cost, cost, cost)
            self._deliver([(time.monotonic_ns() // 1000, threads)])

    def _run_batched(self, start: float) -> None:
        stats = self.profile.stats
        run = self.source.run
        clock = time.monotonic_ns
        interval_ns = max(1, int(self.interval * 1e9))
        began = clock()
        deadline = began + int(self.duration_s * 1e9) if self.duration_s else None
        next_tick = began
        last_tick = began
        consecutive_errors = 0
        while not self.stopped:
            now = clock()
            if deadline is not None and now >= deadline:
                break
            stop = now + BATCH_NS if deadline is None else min(now + BATCH_NS, deadline)
            batch = run(next_tick, interval_ns, stop, MAX_BATCH_TICKS)
            next_tick = batch.next_tick_ns
            stats.attempts += batch.attempts
            stats.errors += batch.errors
            if batch.ticks:
                consecutive_errors = 0
                last_tick = clock()
                self._cost(batch.cost_total_ns / 1e9, batch.cost_min_ns / 1e9, batch.cost_max_ns / 1e9)
                self._deliver(batch.ticks)
            if batch.gone:
                stats.target_exited = True
                break
            if batch.errors:
                # The native core hands a failed tick back at once, so it is the batch's last.
                consecutive_errors += batch.errors
                if self._gone_after_errors(consecutive_errors):
                    break
            elif clock() - last_tick > LIVENESS_POLL_S * 1e9:
                # Slow rates: no tick for a while, so look at the target instead.
                last_tick = clock()
                if not self.alive():
                    stats.target_exited = True
                    break

    def _gone_after_errors(self, consecutive_errors: int) -> bool:
        """After a failed sample: whether the target is in fact gone (then the failures of its
        last moments are not counted, and the run ends at once rather than sampling a corpse)."""
        if self.alive():
            return False
        stats = self.profile.stats
        stats.attempts -= consecutive_errors
        stats.errors -= consecutive_errors
        stats.target_exited = True
        return True

    def _cost(self, total: float, lowest: float, highest: float) -> None:
        """Time spent taking good samples: their total, and the cheapest and dearest one."""
        self.sample_cost_total += total
        self.sample_cost_min = min(self.sample_cost_min, lowest)
        self.sample_cost_max = max(self.sample_cost_max, highest)

    def _deliver(self, ticks: list[tuple[int, list[ThreadSample]]]) -> None:
        """Good samples, as (timestamp in µs, threads): counted, handed to the profile (which
        feeds its sinks); names and the real-time line refreshed when due. The bookkeeping is
        done once per call: at 100k samples/s every statement per sample counts."""
        profile = self.profile
        collect = profile.collect
        known_threads = profile.thread_names
        unnamed = False
        with self.lock:
            profile.stats.samples += len(ticks)
            for timestamp_us, threads in ticks:
                collect(timestamp_us, threads)
                if not unnamed:
                    for t in threads:
                        if t.thread_id not in known_threads:
                            unnamed = True
                            break
        self._housekeeping(time.perf_counter(), unnamed)

    def _housekeeping(self, t0: float, unnamed: bool) -> None:
        if unnamed and t0 >= self._names_due:
            self._names_due = t0 + NAMES_REFRESH_S
            self._refresh_names()
        if self.realtime is not None and t0 >= self._next_report:
            self._next_report = t0 + 1.0
            self._report(time.perf_counter() - self._start)

    def _refresh_names(self) -> None:
        try:
            names = self.source.thread_names()
        except (ReadError, ProcessGoneError, OSError):
            return
        with self.lock:  # read from the target above, outside the lock: only the update is in it
            for tid, name in names.items():
                self.profile.thread_names[tid] = name
            # Threads without a name (e.g. started from C) are not looked up again and again.
            for tid in self.profile.status_counts:
                self.profile.thread_names.setdefault(tid, "")

    def _report(self, elapsed: float) -> None:
        stats = self.profile.stats
        rate = stats.samples / elapsed if elapsed > 0 else 0.0
        mean = self.sample_cost_total / stats.samples * 1e6 if stats.samples else 0.0
        line = (
            f"\rStats: {rate:,.0f}Hz ({mean:.1f}µs per sample) Min: {self.sample_cost_min * 1e6:.1f}µs "
            f"Max: {self.sample_cost_max * 1e6:.1f}µs N={stats.samples:,} errors={stats.errors:,}"
        )
        self._realtime_write(line)

    def _realtime_write(self, text: str) -> None:
        assert self.realtime is not None
        try:
            self.realtime.write(text)
            self.realtime.flush()
        except OSError:  # the terminal hung up (EIO) or the reader left: sampling goes on
            point_at_devnull(self.realtime)
            self.realtime = None


def format_summary(stats: RunStats) -> str:
    lines = [
        f"Captured {stats.samples:,} samples in {stats.duration_s:,.2f} seconds",
        f"Sample rate: {stats.sample_rate:,.2f} samples/sec",
        f"Error rate: {stats.error_rate:,.2f}",
    ]
    expected = stats.expected_samples
    if stats.missed and expected and not stats.interrupted:
        pct = 100.0 * stats.missed / expected
        lines.append(f"Warning: missed {stats.missed:,} samples from the expected total of {expected:,} ({pct:.2f}%)")
    return "\n".join(lines)
