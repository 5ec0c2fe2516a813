"""speedscope's file format (`--speedscope`): open the file at speedscope.app or with `speedscope FILE`.

The file follows speedscope's published schema (https://www.speedscope.app/file-format-schema.json):
`shared.frames` holds every frame once (`name` "func (file.py:12)", `file` the full path, `line`),
and each sampled thread is one `sampled` profile named after the thread, whose `samples` are
stacks (frame indexes, root first) in time order and whose `weights` are the microseconds each
sample stands for. speedscope's "Time Order" view then shows each thread's real timeline, and
"Left Heavy" and "Sandwich" the aggregate. An --async-aware task marker is a frame named
`<task> NAME` with no file; with `--async-mode all` (several stacks of one thread per tick) each
task has a timeline of its own (`_lanes`).

The collector is streaming so the time order is kept: it stores each thread's samples as arrays
(stack index, time) and, when writing, lets a sample last until the next sampling tick (the last
one for one sampling interval), merging runs of identical consecutive stacks into one sample.
Ticks a thread is missing from (filtered out by `--mode`) become an empty stack, so its timeline
stays aligned with the clock. Samples need only be in time order per thread, as `replay` gives
them. Built from a
Profile alone (no sample stream) each thread lists its distinct stacks, weighted by count times
the sampling interval.
"""

from __future__ import annotations

import io
import json
from array import array
from typing import Any, BinaryIO, Sequence

from .. import __version__
from ..model import MAIN_THREAD, Frame, Profile, ThreadSample, task_frame
from .base import Collector, TickClock, short_filename, task_label, task_lanes

SCHEMA_URL = "https://www.speedscope.app/file-format-schema.json"
UNIT = "microseconds"
_IDLE = -1  # a stack index meaning "no Python frames"
_CHUNK = 16384


class _Thread:
    __slots__ = ("tid", "order", "is_main", "stacks", "times", "last_weight", "task")

    def __init__(self, tid: int, order: int, task: str | None = None) -> None:
        self.tid = tid
        self.order = order
        self.is_main = False
        self.task = task  # a lane of the thread: its samples whose innermost task is this one
        self.stacks = array("i")  # per sample: stack index, or _IDLE
        self.times = array("q")  # per sample: µs since the first sample collected, never decreasing
        self.last_weight = 1


class SpeedscopeCollector(Collector):
    format_name = "speedscope"
    default_extension = "speedscope.json"
    cli_flag = "--speedscope"
    cli_help = "speedscope JSON: one time-ordered profile per thread (speedscope.app)"
    streaming = True

    def __init__(self, profile: Profile, **options: Any) -> None:
        super().__init__(profile, **options)
        self._frames: list[dict[str, Any]] = []
        self._frame_ids: dict[Frame, int] = {}
        self._frame_keys: dict[tuple[str, str, int], int] = {}
        self._stacks: list[tuple[int, ...]] = []  # frame indexes, root first
        self._stack_task: list[str | None] = []  # per stack: its innermost task's name, if any
        self._stack_ids: dict[tuple[Frame, ...], int] = {}
        self._threads: dict[int, _Thread] = {}
        self._clock = TickClock()
        self._weights: dict[int, list[tuple[int, int]]] | None = None  # from a Profile alone

    # -- collecting -------------------------------------------------------------------------

    def collect(self, timestamp_us: int, threads: Sequence[ThreadSample], weight: int = 1) -> None:
        if weight <= 0:
            return
        now = self._clock.tick(timestamp_us)
        for sample in threads:
            th = self._threads.get(sample.thread_id)
            if th is None:
                th = self._threads[sample.thread_id] = _Thread(sample.thread_id, len(self._threads))
            if sample.status & MAIN_THREAD:
                th.is_main = True
            times = th.times
            th.stacks.append(self._stack(sample.frames))
            times.append(now if not times or now >= times[-1] else times[-1])
            th.last_weight = weight

    def _stack(self, frames: tuple[Frame, ...]) -> int:
        sid = self._stack_ids.get(frames)
        if sid is None:
            if frames:
                sid = len(self._stacks)
                self._stacks.append(tuple(self._frame(f) for f in reversed(frames)))
                self._stack_task.append(next((f.funcname for f in frames if f.is_task), None))
            else:  # all launcher plumbing, cut to nothing by the profile
                sid = _IDLE
            self._stack_ids[frames] = sid
        return sid

    def _frame(self, frame: Frame) -> int:
        fid = self._frame_ids.get(frame)
        if fid is not None:
            return fid
        key = (frame.funcname, frame.filename, frame.lineno)
        fid = self._frame_keys.get(key)
        if fid is None:
            fid = self._frame_keys[key] = len(self._frames)
            self._frames.append(frame_record(frame))
        self._frame_ids[frame] = fid
        return fid

    # -- writing ----------------------------------------------------------------------------

    def _from_profile(self) -> None:
        """Without a sample stream each thread lists its distinct stacks (count x interval)."""
        interval = self.profile.stats.interval_usec
        self._weights = {}
        for tid, frames, weight in self.stacks():
            if tid not in self._threads:
                self._threads[tid] = _Thread(tid, len(self._threads))
            self._weights.setdefault(tid, []).append((self._stack(frames), weight * interval))

    def timeline(self, th: _Thread, ticks: array, interval: int) -> tuple[array, array]:
        """(stacks, µs weights) in time order, identical neighbours merged.

        A sample lasts until the next sampling tick; ticks the thread missed (filtered out by
        the mode, or gone) become an empty stack until its next sample. The thread's last
        sample, if in the last tick, lasts one sampling interval (times its weight).
        """
        if self._weights is not None:
            pairs = self._weights.get(th.tid, [])
            return array("i", [p[0] for p in pairs]), array("q", [p[1] for p in pairs])
        out_stacks, out_weights = array("i"), array("q")

        def add(stack: int, duration: int) -> None:
            if duration <= 0:
                return
            if out_stacks and out_stacks[-1] == stack:
                out_weights[-1] += duration
            else:
                out_stacks.append(stack)
                out_weights.append(duration)

        stacks, times = th.stacks, th.times
        n, k, nt = len(times), 0, len(ticks)
        for i in range(n):
            t = times[i]
            while k < nt and ticks[k] <= t:
                k += 1
            following = ticks[k] if k < nt else None  # the first tick after this sample
            if i + 1 < n:
                t_next = times[i + 1]
                if following is None or following >= t_next:
                    add(stacks[i], t_next - t)
                else:
                    add(stacks[i], following - t)
                    add(_IDLE, t_next - following)
            elif following is None:
                add(stacks[i], interval * th.last_weight)
            else:
                add(stacks[i], following - t)
        return out_stacks, out_weights

    def _thread_name(self, th: _Thread) -> str:
        name = self.profile.thread_names.get(th.tid)
        name = f"{name} (tid {th.tid})" if name else f"Thread-{th.tid}"
        return f"{name}: {task_label(task_frame(th.task))}" if th.task is not None else name

    def _lanes(self, th: _Thread) -> list[_Thread]:
        """`th`, or a timeline per task (`task_lanes`) with its share of th's samples."""
        lanes = None if self._weights is not None else task_lanes(
            th.times, [self._stack_task[s] if s != _IDLE else None for s in th.stacks])
        if lanes is None:
            return [th]
        out = []
        for task, indexes in lanes:
            lane = _Thread(th.tid, th.order, task)
            lane.is_main, lane.last_weight = th.is_main, th.last_weight
            lane.stacks = array("i", [th.stacks[i] for i in indexes])
            lane.times = array("q", [th.times[i] for i in indexes])
            out.append(lane)
        return out

    def build(self) -> dict[str, Any]:
        """The whole file as plain Python objects (for tests and small profiles)."""
        out = io.BytesIO()
        self.dump(out)
        return json.loads(out.getvalue())

    def dump(self, fh: BinaryIO) -> None:
        if self._clock.origin is None and self._weights is None:
            self._from_profile()
        interval = self.profile.stats.interval_usec
        ticks = self._clock.ticks
        if any(ticks[i] >= ticks[i + 1] for i in range(len(ticks) - 1)):
            ticks = array("q", sorted(set(ticks)))  # a replay interleaves threads by blocks
        shift = ticks[0] if ticks else 0
        threads = [lane for th in sorted(self._threads.values(), key=lambda th: (not th.is_main, th.order))
                   for lane in self._lanes(th)]
        stats = self.profile.stats
        head = {
            "$schema": SCHEMA_URL,
            "name": " ".join(filter(None, ("Python", stats.python_version))) + f" (PID {stats.pid}, {stats.mode} mode)",
            "activeProfileIndex": next((i for i, th in enumerate(threads) if th.is_main), 0),
            "exporter": f"heatline {__version__}",
            "shared": {"frames": self._frames},
        }
        stack_text = [("[" + ",".join(map(str, s)) + "]").encode("ascii") for s in self._stacks]
        fh.write(json.dumps(head, separators=(",", ":"))[:-1].encode("ascii"))
        fh.write(b',"profiles":[')
        for i, th in enumerate(threads):
            stacks, weights = self.timeline(th, ticks, interval)
            start = th.times[0] - shift if th.times else 0
            if i:
                fh.write(b",")
            fh.write(
                json.dumps(
                    {"type": "sampled", "name": self._thread_name(th), "unit": UNIT,
                     "startValue": start, "endValue": start + sum(weights)},
                    separators=(",", ":"),
                )[:-1].encode("ascii")
            )
            fh.write(b',"samples":[')
            for first in range(0, len(stacks), _CHUNK):
                if first:
                    fh.write(b",")
                fh.write(b",".join([b"[]" if s == _IDLE else stack_text[s] for s in stacks[first:first + _CHUNK]]))
            fh.write(b'],"weights":[')
            for first in range(0, len(weights), _CHUNK):
                if first:
                    fh.write(b",")
                fh.write(",".join(map(str, weights[first:first + _CHUNK])).encode("ascii"))
            fh.write(b"]}")
        fh.write(b"]}")


def frame_record(frame: Frame) -> dict[str, Any]:
    if frame.is_synthetic:
        return {"name": frame.funcname}
    if frame.is_task:  # no file: speedscope would list "<task>" as one source file
        return {"name": task_label(frame)}
    record: dict[str, Any] = {
        "name": f"{frame.funcname} ({short_filename(frame.filename)}:{frame.lineno})",
        "file": frame.filename,
    }
    if frame.lineno > 0:
        record["line"] = frame.lineno
    return record
