"""Firefox Profiler's processed profile format (`--gecko`): open the file at profiler.firefox.com.

The file is a *processed* profile of version 57 (`meta.preprocessedProfileVersion`), the layout
Tachyon writes, checked field by field against the Firefox Profiler's own type definitions
(`src/types/profile.ts`) and the upgraders in `processed-profile-versioning.ts` that describe each
version's changes. The profiler upgrades version-57 files to its current version when it loads
them, so the file keeps working as that format moves on. Layout:

- `meta`: interval (ms), startTime (ms since the epoch of the first sample), categories (the
  first, "Other", is grey: the profiler's default category), markerSchema, sampleUnits, and the
  run's details (sampling mode, rate, PID, Python version) in `meta.extra` and `meta.heatline`.
- `threads`: one entry per sampled thread, named after its `threading` name (`Thread-<tid>` when
  unknown), `isMainThread` from the MAIN_THREAD status bit, each with its own samples, stackTable,
  frameTable, funcTable, resourceTable (one resource per source file), nativeSymbols and markers.
  Sample times are ms since the first sample; `threadCPUDelta` is estimated from the ON_CPU bit
  (the time since the previous sampling tick when on a CPU, 0 when off, null when unknown), so
  the activity graph shows how busy a thread was.
- `shared.stringArray`: every string, starting with "(root)".

--async-aware stacks: asyncio task markers get a category of their own, "asyncio task" (brown),
appended after Tachyon's (which shows them as Native), so the call tree and flame chart colour
them apart from code, and are named `<task> NAME`. An "AsyncTask" interval marker named after
the task running on the thread (the innermost task of its stack) follows it through time, so the
marker chart has a row per task showing when each one ran. With `--async-mode all` a thread holds
every task at each tick, and a track shows one stack at a time: each task gets a track of its
own (`task_lanes`, named "THREAD: <task> NAME"), with no task marker (none is the running one).

Interval markers (phase 1) follow each thread's state: "Has GIL"/"No GIL", "On CPU"/"Off CPU",
"Python Code" (holds the GIL)/"Native Code" (on a CPU without the GIL), "Waiting for GIL",
"Has Exception"/"No Exception" (only in wall and exception modes, where heatline reads the
exception state) and "GC Collecting" (a `<GC>` frame on the stack). A state lasts from the sample
that first shows it to the sample that changes it; a thread missing from a sampling tick (filtered
out by `--mode`, or gone) ends its states there.

The collector is streaming: it keeps the timeline in `array`s of integers (stack index, time in
µs, status byte per sample) so long runs do not hold a Python object per sample; the markers and
CPU estimates are derived from them when the file is written, against the sorted set of sampling
tick times, so samples only need to arrive in time order per thread (as `replay` gives them),
and the big columns are written in chunks.

Tachyon forces its ALL sampling mode for this format and rejects `--mode`; heatline cannot change
the sampling mode from a collector, so it accepts any mode and records it in the file.

--opcodes: as Tachyon, an "Opcode" interval marker (category Opcodes) per run of the same leaf
(instruction, line, column, function, file) on each thread, named by the instruction
("LOAD_ATTR_INSTANCE_VALUE (LOAD_ATTR)") from the table of the target's Python version, with
a matching markerSchema entry. `<native>` frames (--native) are in the Native category.
"""

from __future__ import annotations

import io
import json
import os
import platform
from array import array
from typing import Any, BinaryIO, Callable, Iterable, Iterator, Sequence

from .. import __version__
from ..model import (
    GIL_REQUESTED,
    HAS_EXCEPTION,
    HAS_GIL,
    MAIN_THREAD,
    ON_CPU,
    UNKNOWN,
    Frame,
    ThreadSample,
    task_frame,
)
from .base import TASK_KIND, Collector, StringTable, TickClock, short_filename, task_label, task_lanes
from .opcode_view import instruction, opcode_table

GECKO_FORMAT_VERSION = 32  # meta.version: the Gecko (raw) format version, as Tachyon writes
PROCESSED_PROFILE_VERSION = 57  # meta.preprocessedProfileVersion

# (name, color): indexes match Tachyon's category list.
CATEGORIES: tuple[tuple[str, str], ...] = (
    ("Other", "grey"),
    ("Python", "yellow"),
    ("Native", "blue"),
    ("GC", "orange"),
    ("GIL", "green"),
    ("CPU", "purple"),
    ("Code Type", "lightblue"),
    ("Opcodes", "magenta"),
    ("Exception", "red"),
    (TASK_KIND, "brown"),  # heatline's: --async-aware task markers (Tachyon files them as Native)
)
(CAT_OTHER, CAT_PYTHON, CAT_NATIVE, CAT_GC, CAT_GIL, CAT_CPU, CAT_CODE_TYPE, CAT_OPCODES, CAT_EXCEPTION,
 CAT_TASK) = range(10)

RESOURCE_TYPE_LIBRARY = 1  # the profiler's ResourceType.Library, which Tachyon uses for files

# Markers come in six groups (GIL, CPU, code type, waiting for the GIL, exception, GC): at most
# one interval of each group is open per thread at a time (see `_states`).
MARKERS: tuple[tuple[str, int, str], ...] = (
    ("Has GIL", CAT_GIL, "The thread held the GIL."),
    ("No GIL", CAT_GIL, "The thread did not hold the GIL."),
    ("On CPU", CAT_CPU, "The thread was running on a CPU."),
    ("Off CPU", CAT_CPU, "The thread was not running (sleeping, blocked or waiting)."),
    ("Python Code", CAT_CODE_TYPE, "The thread held the GIL, so it was running Python code."),
    ("Native Code", CAT_CODE_TYPE, "The thread was on a CPU without the GIL: native code."),
    ("Waiting for GIL", CAT_GIL, "The thread had asked for the GIL and was waiting for it."),
    ("Has Exception", CAT_EXCEPTION, "An exception was being raised or handled in the thread."),
    ("No Exception", CAT_EXCEPTION, "No exception was being raised or handled in the thread."),
    ("GC Collecting", CAT_GC, "The garbage collector was running."),
)
(M_HAS_GIL, M_NO_GIL, M_ON_CPU, M_OFF_CPU, M_PYTHON, M_NATIVE, M_WAITING, M_HAS_EXC, M_NO_EXC,
 M_GC) = range(len(MARKERS))
# The running task's marker: one per task, named after it. In `marker_intervals` a task marker is
# TASK_MARKER + the string id of its name, after the fixed markers.
TASK_MARKER = len(MARKERS)
TASK_MARKER_TYPE = "AsyncTask"
TASK_MARKER_DESCRIPTION = "The asyncio task running on the thread: the innermost task of its --async-aware stack."
_GROUPS = 7  # marker groups: the six of `_states`, then the running task
_NO_STATE = -1
_STATUS_BITS = 0x3F  # the model's status flags
GC_BIT = 0x80  # kept with a sample's status: a <GC> frame was on its stack
_FROM_PROFILE = 0x40  # built from an aggregated Profile: no thread states are known
_EXCEPTION_MODES = ("wall", "exception")  # modes in which heatline reads the exception state
_CACHE_LIMIT = 100_000
_CHUNK = 65536


# Tachyon's opcode marker (--opcodes): one interval per run of the same leaf instruction.
OPCODE_MARKER_TYPE = "Opcode"
OPCODE_SCHEMA: dict[str, Any] = {
    "name": OPCODE_MARKER_TYPE,
    "display": ["marker-table", "marker-chart"],
    "tooltipLabel": "{marker.data.opname}",
    "tableLabel": "{marker.data.opname} at line {marker.data.line}",
    "chartLabel": "{marker.data.opname}",
    "description": "The instruction the thread's innermost frame was executing (--opcodes).",
    "fields": [
        {"key": "opname", "label": "Opcode", "format": "string", "searchable": True},
        {"key": "base_opname", "label": "Base Opcode", "format": "string"},
        {"key": "is_specialized", "label": "Specialized", "format": "string"},
        {"key": "line", "label": "Line", "format": "integer"},
        {"key": "column", "label": "Column", "format": "integer"},
        {"key": "function", "label": "Function", "format": "string"},
        {"key": "duration", "label": "Duration", "format": "duration"},
    ],
}


def marker_type(name: str) -> str:
    """`data.type` of a marker, which names its schema: "Has GIL" -> "HasGIL" (as Tachyon)."""
    return name.replace(" ", "")


class _Thread:
    """One thread's tables and timeline."""

    __slots__ = (
        "tid", "order", "is_main", "frame_ids", "func_ids", "resource_ids", "stack_ids",
        "frames", "funcs", "resources", "stack_frame", "stack_prefix", "stack_task", "cache",
        "sample_stack", "sample_time", "sample_status", "sample_weight", "last_time", "last_weight", "task",
        "opcode_runs", "opcode_state",
    )

    def __init__(self, tid: int, order: int) -> None:
        self.tid = tid
        self.order = order
        self.is_main = False
        self.task: str | None = None  # a lane of the thread (`task_lanes`): its samples in this task
        self.frame_ids: dict[tuple[int, int, int], int] = {}
        self.func_ids: dict[tuple[str, str], int] = {}
        self.resource_ids: dict[str, int] = {}
        self.stack_ids: dict[tuple[int, int], int] = {}
        self.frames: list[tuple[int, int, int, int]] = []  # (func, line, column, category)
        self.funcs: list[tuple[int, bool, int, int | None]] = []  # (name, isJS, resource, fileName)
        self.resources: list[int] = []  # name string index
        self.stack_frame = array("i")
        self.stack_prefix = array("i")  # -1: a root
        self.stack_task = array("i")  # the string id of the innermost task's name at the stack, or -1
        self.cache: dict[tuple[Frame, ...], tuple[int, bool]] = {}
        self.sample_stack = array("i")  # -1: no Python frames
        self.sample_time = array("q")  # µs since the first sample collected (never decreasing)
        self.sample_status = array("B")  # status bits, plus GC_BIT when a <GC> frame is on the stack
        self.sample_weight: array | None = None  # only once a sample weighs more than 1
        self.last_time = 0
        self.last_weight = 1
        # --opcodes: (start µs, end µs, leaf key id) per run of one leaf instruction, and the run
        # still open as (leaf key id, start µs)
        self.opcode_runs: list[tuple[int, int, int]] = []
        self.opcode_state: tuple[int, int] | None = None


class GeckoCollector(Collector):
    format_name = "gecko"
    default_extension = "json"
    cli_flag = "--gecko"
    cli_help = "Firefox Profiler JSON with a timeline per thread and GIL/CPU/GC markers"
    streaming = True

    def __init__(self, profile, **options: Any) -> None:
        super().__init__(profile, **options)
        self._table = StringTable(["(root)"])
        self._marker_names = [self._table.intern(name) for name, _cat, _desc in MARKERS]
        self._threads: dict[int, _Thread] = {}
        self._task_names: dict[int, str] = {}  # string id of `<task> NAME` -> NAME
        # µs since the first sample collected, one per sampling tick: in time order while
        # sampling; a replay interleaves threads by blocks, so it may need sorting at the end.
        self._clock = TickClock()
        # --opcodes: the leaf's (opcode, line, column, function, file) -> its id in the runs
        self._leaf_ids: dict[tuple[int, int, int, str, str], int] = {}
        self._leaves: list[tuple[int, int, int, str, str]] = []
        self._opcodes = bool(self.profile.stats.opcodes)

    # -- collecting -------------------------------------------------------------------------

    def collect(self, timestamp_us: int, threads: Sequence[ThreadSample], weight: int = 1) -> None:
        """Append to each thread's arrays; markers and CPU estimates are derived when writing."""
        if weight <= 0:
            return
        now = self._clock.tick(timestamp_us)
        for sample in threads:
            th = self._threads.get(sample.thread_id)
            if th is None:
                th = self._threads[sample.thread_id] = _Thread(sample.thread_id, len(self._threads))
            status = sample.status
            if status & MAIN_THREAD:
                th.is_main = True
            stack, gc = self._stack(th, sample.frames)
            t = now if now >= th.last_time or not th.sample_time else th.last_time
            th.sample_stack.append(stack)
            th.sample_time.append(t)
            th.sample_status.append((status & _STATUS_BITS) | (GC_BIT if gc else 0))
            if weight != 1 and th.sample_weight is None:
                th.sample_weight = array("I", [1]) * (len(th.sample_stack) - 1)
            if th.sample_weight is not None:
                th.sample_weight.append(weight)
            th.last_time = t
            th.last_weight = weight
            if sample.frames and (self._opcodes or sample.frames[0].opcode >= 0):
                self._opcode_run(th, sample.frames[0], t)

    def _opcode_run(self, th: _Thread, leaf: Frame, t: int) -> None:
        """Tachyon's opcode markers: a run lasts while the leaf's instruction, line, column,
        function and file stay the same; a leaf with no instruction (`<native>`) ends a run."""
        self._opcodes = True
        key = (leaf.opcode, leaf.lineno, leaf.col, leaf.funcname, leaf.filename)
        leaf_id = self._leaf_ids.get(key)
        if leaf_id is None:
            leaf_id = self._leaf_ids[key] = len(self._leaves)
            self._leaves.append(key)
        state = th.opcode_state
        if state is not None and state[0] == leaf_id:
            return
        if state is not None:
            th.opcode_runs.append((state[1], t, state[0]))
        th.opcode_state = (leaf_id, t)

    def _stack(self, th: _Thread, frames: tuple[Frame, ...]) -> tuple[int, bool]:
        hit = th.cache.get(frames)
        if hit is not None:
            return hit
        prefix = -1
        gc = False
        for frame in reversed(frames):  # root first; -1 for a stack the profile cut to nothing
            if frame.is_synthetic and frame.funcname == "<GC>":
                gc = True
            fidx = self._frame(th, frame)
            key = (fidx, prefix)
            sidx = th.stack_ids.get(key)
            if sidx is None:
                sidx = th.stack_ids[key] = len(th.stack_frame)
                th.stack_frame.append(fidx)
                th.stack_prefix.append(prefix)
                if frame.is_task:
                    label = self._table.intern(task_label(frame))
                    self._task_names[label] = frame.funcname
                    th.stack_task.append(label)
                else:
                    th.stack_task.append(th.stack_task[prefix] if prefix >= 0 else -1)
            prefix = sidx
        result = (prefix, gc)
        if len(th.cache) < _CACHE_LIMIT:
            th.cache[frames] = result
        return result

    def _frame(self, th: _Thread, frame: Frame) -> int:
        fkey = (frame.filename, frame.funcname)
        func = th.func_ids.get(fkey)
        if func is None:
            func = th.func_ids[fkey] = len(th.funcs)
            if frame.is_synthetic:
                th.funcs.append((self._table.intern(frame.funcname), False, -1, None))
            elif frame.is_task:
                th.funcs.append((self._table.intern(task_label(frame)), False, -1, None))
            else:
                res = th.resource_ids.get(frame.filename)
                if res is None:
                    res = th.resource_ids[frame.filename] = len(th.resources)
                    th.resources.append(self._table.intern(short_filename(frame.filename)))
                th.funcs.append((self._table.intern(frame.funcname), True, res, self._table.intern(frame.filename)))
        key = (func, frame.lineno, frame.col)
        fidx = th.frame_ids.get(key)
        if fidx is None:
            fidx = th.frame_ids[key] = len(th.frames)
            if frame.is_synthetic:
                category = CAT_GC if frame.funcname == "<GC>" else CAT_NATIVE
            elif frame.is_task:
                category = CAT_TASK
            else:
                category = CAT_PYTHON
            th.frames.append((func, frame.lineno, frame.col, category))
        return fidx

    # -- writing ----------------------------------------------------------------------------

    def _sorted_ticks(self) -> array:
        ticks = self._clock.ticks
        if any(ticks[i] >= ticks[i + 1] for i in range(len(ticks) - 1)):
            ticks = array("q", sorted(set(ticks)))
        return ticks

    def _interval_us(self, ticks: array) -> float:
        """The mean time between sampling ticks (the requested interval if unmeasurable)."""
        if len(ticks) > 1:
            return (ticks[-1] - ticks[0]) / (len(ticks) - 1)
        return float(self.profile.stats.interval_usec)

    def _ordered_threads(self) -> list[_Thread]:
        """The threads to write, main first; a thread with several stacks per tick (`--async-mode
        all`) as a track per task (`task_lanes`), each sharing the thread's tables."""
        out = []
        for th in sorted(self._threads.values(), key=lambda th: (not th.is_main, th.order)):
            tasks = [self._task_names.get(th.stack_task[s]) if s >= 0 else None for s in th.sample_stack]
            lanes = task_lanes(th.sample_time, tasks)
            out.extend([th] if lanes is None else [self._lane(th, task, indexes) for task, indexes in lanes])
        return out

    @staticmethod
    def _lane(th: _Thread, task: str | None, indexes: list[int]) -> _Thread:
        lane = _Thread(th.tid, th.order)
        for name in ("is_main", "frame_ids", "func_ids", "resource_ids", "stack_ids", "frames", "funcs",
                     "resources", "stack_frame", "stack_prefix", "stack_task", "cache"):
            setattr(lane, name, getattr(th, name))
        lane.task = task
        lane.sample_stack = array("i", [th.sample_stack[i] for i in indexes])
        lane.sample_time = array("q", [th.sample_time[i] for i in indexes])
        lane.sample_status = array("B", [th.sample_status[i] for i in indexes])
        if th.sample_weight is not None:
            lane.sample_weight = array("I", [th.sample_weight[i] for i in indexes])
        lane.last_time = lane.sample_time[-1]
        lane.last_weight = lane.sample_weight[-1] if lane.sample_weight is not None else 1
        return lane

    def _from_profile(self) -> None:
        """Without a sample stream (a Profile built in-process), lay its stacks out in a row."""
        interval = self.profile.stats.interval_usec
        now = 0
        for tid, frames, weight in self.stacks():
            th = self._threads.get(tid)
            if th is None:
                th = self._threads[tid] = _Thread(tid, len(self._threads))
            stack, _gc = self._stack(th, frames)
            th.sample_stack.append(stack)
            th.sample_time.append(now)
            th.sample_status.append(UNKNOWN | _FROM_PROFILE)
            if th.sample_weight is None:
                th.sample_weight = array("I")
            th.sample_weight.append(weight)
            th.last_time = now
            th.last_weight = weight
            now += weight * interval
        self._clock.origin = 0
        self._clock.ticks = array("q", [0])

    def build(self) -> dict[str, Any]:
        """The whole profile as plain Python objects (for tests and small profiles)."""
        out = io.BytesIO()
        self.dump(out)
        return json.loads(out.getvalue())

    def dump(self, fh: BinaryIO) -> None:
        if self._clock.origin is None and not self._threads:
            self._from_profile()
        ticks = self._sorted_ticks()
        shift = ticks[0] if ticks else 0  # a replay may bring a thread's earlier samples later
        interval_us = self._interval_us(ticks)
        threads = self._ordered_threads()
        # the profile ends where the last sample ends: one interval (times its weight) later
        end_us = max([th.last_time + interval_us * th.last_weight for th in threads], default=0.0) - shift
        for th in threads:
            self._table.intern(self._thread_name(th))
        meta = self._meta(interval_us, end_us, threads, shift)
        w = _Writer(fh)
        w.raw(b'{"meta":')
        w.value(meta)
        w.raw(b',"libs":[],"pages":[],"threads":[')
        for i, th in enumerate(threads):
            if i:
                w.raw(b",")
            self._write_thread(w, th, ticks, shift, interval_us)
        w.raw(b'],"shared":{"stringArray":')
        w.value(self._table.strings)
        w.raw(b"}}")

    def _thread_name(self, th: _Thread) -> str:
        name = self.profile.thread_names.get(th.tid) or f"Thread-{th.tid}"
        return f"{name}: {task_label(task_frame(th.task))}" if th.task is not None else name

    def _meta(self, interval_us: float, end_us: float, threads: list[_Thread], shift: int) -> dict[str, Any]:
        stats = self.profile.stats
        start_ms = stats.start_time * 1000.0
        if self._clock.origin is not None and stats.start_monotonic_us:
            start_ms += (self._clock.origin + shift - stats.start_monotonic_us) / 1000.0
        cpus = os.cpu_count() or 0
        main = [i for i, th in enumerate(threads) if th.is_main]
        schema = [
            {
                "name": marker_type(name),
                "tooltipLabel": name,
                "tableLabel": name,
                "chartLabel": name,
                "description": description,
                "display": ["marker-chart", "marker-table"],
                "fields": [{"key": "tid", "label": "Thread ID", "format": "integer"}],
            }
            for name, _cat, description in MARKERS
        ]
        if self._opcodes:
            schema.append(OPCODE_SCHEMA)
        if self._task_names:  # only --async-aware profiles have tasks (others keep Tachyon's list)
            schema.append({
                "name": TASK_MARKER_TYPE,
                "tooltipLabel": "{marker.name}",
                "tableLabel": "{marker.name}",
                "chartLabel": "{marker.data.task}",
                "description": TASK_MARKER_DESCRIPTION,
                "display": ["marker-chart", "marker-table"],
                "fields": [{"key": "task", "label": "Task", "format": "string"},
                           {"key": "tid", "label": "Thread ID", "format": "integer"}],
            })
        return {
            "interval": interval_us / 1000.0,
            "startTime": start_ms,
            "profilingStartTime": 0,
            "profilingEndTime": end_us / 1000.0,
            "abi": platform.machine(),
            "misc": f"heatline {__version__}",
            "oscpu": f"{platform.system()} {platform.machine()}".strip(),
            "platform": platform.system(),
            "processType": 0,
            "categories": [{"name": n, "color": c, "subcategories": ["Other"]} for n, c in CATEGORIES],
            "stackwalk": 0,
            "toolkit": "",
            "version": GECKO_FORMAT_VERSION,
            "preprocessedProfileVersion": PROCESSED_PROFILE_VERSION,
            "appBuildID": "",
            "physicalCPUs": cpus,
            "logicalCPUs": cpus,
            "CPUName": "",
            "product": "Python",
            "symbolicated": True,
            "markerSchema": schema,
            "importedFrom": f"heatline {__version__}",
            "extensions": {"id": [], "name": [], "baseURL": [], "length": 0},
            "sampleUnits": {"time": "ms", "eventDelay": "ms", "threadCPUDelta": "µs"},
            "initialVisibleThreads": list(range(len(threads))),
            "initialSelectedThreads": main[:1] or ([0] if threads else []),
            "extra": [
                {
                    "label": "heatline",
                    "entries": [
                        {"label": "Sampling mode", "format": "string", "value": stats.mode},
                        {"label": "Requested interval (µs)", "format": "integer", "value": stats.interval_usec},
                        {"label": "All threads", "format": "string", "value": "yes" if stats.all_threads else "no"},
                        {"label": "Samples", "format": "integer", "value": stats.samples},
                        {"label": "Error rate", "format": "percentage", "value": stats.error_rate / 100.0},
                        {"label": "Missed samples", "format": "integer", "value": stats.missed},
                        {"label": "Python", "format": "string", "value": stats.python_version},
                        {"label": "PID", "format": "integer", "value": stats.pid},
                    ],
                }
            ],
            "heatline": {
                "version": __version__,
                "mode": stats.mode,
                "all_threads": stats.all_threads,
                "interval_usec": stats.interval_usec,
                "pid": stats.pid,
                "python_version": stats.python_version,
                "samples": stats.samples,
                "errors": stats.errors,
                "missed": stats.missed,
            },
        }

    def _write_thread(self, w: "_Writer", th: _Thread, ticks: array, shift: int, interval_us: float) -> None:
        stats = self.profile.stats
        pid, version = stats.pid, stats.python_version
        n = len(th.sample_stack)
        first_ms = (th.sample_time[0] - shift) / 1000.0 if n else 0.0
        w.raw(b"{")
        w.fields(
            {
                "name": self._thread_name(th),
                "isMainThread": th.is_main,
                "processType": "default",
                "processName": f"Python {version}".strip(),
                "processStartupTime": 0,
                "processShutdownTime": None,
                "registerTime": first_ms,
                "unregisterTime": None,
                "pausedRanges": [],
                "pid": str(pid),
                "tid": th.tid,
            }
        )
        # samples
        w.raw(b',"samples":{"stack":')
        w.ints(th.sample_stack, null=-1)
        w.raw(b',"time":')
        w.millis(th.sample_time, shift)
        w.raw(b',"weight":')
        if th.sample_weight is None:
            w.raw(b"null")
        else:
            w.ints(th.sample_weight)
        w.raw(b',"weightType":"samples","threadCPUDelta":')
        w.column(self._cpu_deltas(th, ticks), _cpu_text)
        w.raw(b',"length":%d}' % n)
        # stackTable
        w.raw(b',"stackTable":{"frame":')
        w.ints(th.stack_frame)
        w.raw(b',"prefix":')
        w.ints(th.stack_prefix, null=-1)
        w.raw(b',"length":%d}' % len(th.stack_frame))
        # frameTable
        frames = th.frames
        nf = len(frames)
        w.raw(b',"frameTable":')
        w.value(
            {
                "address": [-1] * nf,
                "inlineDepth": [0] * nf,
                "category": [f[3] for f in frames],
                "subcategory": [0] * nf,
                "func": [f[0] for f in frames],
                "nativeSymbol": [None] * nf,
                "innerWindowID": [0] * nf,
                "line": [f[1] if f[1] > 0 else None for f in frames],
                "column": [f[2] + 1 if f[2] >= 0 else None for f in frames],
                "length": nf,
            }
        )
        funcs = th.funcs
        nfu = len(funcs)
        w.raw(b',"funcTable":')
        w.value(
            {
                "name": [f[0] for f in funcs],
                "isJS": [f[1] for f in funcs],
                "relevantForJS": [False] * nfu,
                "resource": [f[2] for f in funcs],
                "fileName": [f[3] for f in funcs],
                "lineNumber": [None] * nfu,
                "columnNumber": [None] * nfu,
                "length": nfu,
            }
        )
        nr = len(th.resources)
        w.raw(b',"resourceTable":')
        w.value(
            {
                "lib": [None] * nr,
                "name": list(th.resources),
                "host": [None] * nr,
                "type": [RESOURCE_TYPE_LIBRARY] * nr,
                "length": nr,
            }
        )
        w.raw(b',"nativeSymbols":{"libIndex":[],"address":[],"name":[],"functionSize":[],"length":0}')
        self._write_markers(w, th, ticks, shift, interval_us)
        w.raw(b"}")

    def _cpu_deltas(self, th: _Thread, ticks: array) -> Iterator[int]:
        """µs of CPU since the previous tick: that whole gap when ON_CPU, 0 when off, -1 unknown."""
        times, statuses = th.sample_time, th.sample_status
        k, nt = 0, len(ticks)
        for i in range(len(times)):
            status = statuses[i]
            if status & UNKNOWN:
                yield -1
            elif not status & ON_CPU:
                yield 0
            else:
                t = times[i]
                while k < nt and ticks[k] < t:
                    k += 1
                yield t - ticks[k - 1] if k > 0 else 0

    def marker_intervals(self, th: _Thread, ticks: array, interval_us: float) -> list[tuple[int, int, int]]:
        """(start µs, end µs, marker) per interval, in start order (times before any shift);
        a marker at or past TASK_MARKER is the running task's (see there).

        A state lasts from the sample that shows it to the next sample that does not; when a
        sampling tick passed without the thread (filtered out by the mode, or gone), its states
        end at that tick. States still open end one sample interval after the last sample.
        """
        if th.sample_status and th.sample_status[0] & _FROM_PROFILE:
            return []
        track_exceptions = self.profile.stats.mode in _EXCEPTION_MODES
        wanted: dict[tuple[int, int], tuple[int, ...]] = {}
        state = [_NO_STATE] * _GROUPS
        since = [0] * _GROUPS
        out: list[tuple[int, int, int]] = []
        times, statuses, stacks, stack_task = th.sample_time, th.sample_status, th.sample_stack, th.stack_task
        if th.task is not None:
            # A task's own track (`--async-mode all`: every task, waiting or not, at each tick):
            # it is not the running one, so no task markers.
            stack_task = array("i", [-1]) * len(stack_task)
        k, nt = 0, len(ticks)
        prev = None
        for i in range(len(times)):
            t = times[i]
            if prev is not None and t > prev:
                while k < nt and ticks[k] <= prev:
                    k += 1
                if k < nt and ticks[k] < t:  # a tick came and went without this thread
                    gone = ticks[k]
                    for g in range(_GROUPS):
                        if state[g] != _NO_STATE:
                            out.append((since[g], gone, state[g]))
                            state[g] = _NO_STATE
            prev = t
            status = statuses[i]
            stack = stacks[i]
            task = stack_task[stack] if stack >= 0 else -1
            target = wanted.get((status, task))
            if target is None:
                target = wanted[(status, task)] = (*_states(status, track_exceptions),
                                                   TASK_MARKER + task if task >= 0 else _NO_STATE)
            for g in range(_GROUPS):
                if state[g] != target[g]:
                    if state[g] != _NO_STATE:
                        out.append((since[g], t, state[g]))
                    state[g] = target[g]
                    since[g] = t
        closing = int(round(th.last_time + interval_us * th.last_weight))
        for g in range(_GROUPS):
            if state[g] != _NO_STATE:
                out.append((since[g], closing, state[g]))
        out.sort()
        return out

    def opcode_intervals(self, th: _Thread, interval_us: float) -> list[tuple[int, int, int]]:
        """(start µs, end µs, leaf id) per run of one leaf instruction; the last run ends with
        the thread's last sample, as the state markers do. None on a task's own track."""
        if th.task is not None or (th.sample_status and th.sample_status[0] & _FROM_PROFILE):
            return []
        runs = list(th.opcode_runs)
        if th.opcode_state is not None:
            runs.append((th.opcode_state[1], int(round(th.last_time + interval_us * th.last_weight)), th.opcode_state[0]))
        return runs

    def _opcode_markers(self, th: _Thread, interval_us: float) -> list[tuple[int, int, int, int, dict[str, Any]]]:
        """(start, end, name string, category, data) of each opcode run with an instruction."""
        runs = self.opcode_intervals(th, interval_us)
        if not runs:
            return []
        table = opcode_table(self.profile)
        out = []
        for start, end, leaf_id in runs:
            opcode, line, col, function, _file = self._leaves[leaf_id]
            if opcode < 0:  # a <native> or <GC> leaf: no instruction to show
                continue
            row = instruction(table, opcode, 0)
            data = {
                "type": OPCODE_MARKER_TYPE,
                "opcode": opcode,
                "opname": row["opname"],
                "base_opname": row["base_opname"],
                "is_specialized": row["is_specialized"],
                "line": line,
                "column": col if col >= 0 else None,
                "function": function,
                "duration": (end - start) / 1000.0,
            }
            out.append((start, end, self._table.intern(row["opname"]), CAT_OPCODES, data))
        return out

    def _write_markers(self, w: "_Writer", th: _Thread, ticks: array, shift: int, interval_us: float) -> None:
        tid = th.tid
        markers = []
        for start, end, m in self.marker_intervals(th, ticks, interval_us):
            if m >= TASK_MARKER:
                data = {"type": TASK_MARKER_TYPE, "task": self._task_names[m - TASK_MARKER], "tid": tid,
                        "duration": (end - start) / 1000.0}
                markers.append((start, end, m - TASK_MARKER, CAT_TASK, data))
            else:
                data = {"type": marker_type(MARKERS[m][0]), "tid": tid, "duration": (end - start) / 1000.0}
                markers.append((start, end, self._marker_names[m], MARKERS[m][1], data))
        markers.extend(self._opcode_markers(th, interval_us))
        markers.sort(key=lambda marker: (marker[0], marker[1], marker[2]))
        w.raw(b',"markers":')
        w.value(
            {
                "data": [m[4] for m in markers],
                "name": [m[2] for m in markers],
                "startTime": [(m[0] - shift) / 1000.0 for m in markers],
                "endTime": [(m[1] - shift) / 1000.0 for m in markers],
                "phase": [1] * len(markers),
                "category": [m[3] for m in markers],
                "length": len(markers),
            }
        )


def _states(status: int, track_exceptions: bool) -> tuple[int, ...]:
    """The marker each group shows for a sample's status byte (_NO_STATE: none)."""
    has_gil = status & HAS_GIL
    on_cpu = status & ON_CPU
    return (
        M_HAS_GIL if has_gil else M_NO_GIL,
        _NO_STATE if status & UNKNOWN else (M_ON_CPU if on_cpu else M_OFF_CPU),
        M_PYTHON if has_gil else (M_NATIVE if on_cpu else _NO_STATE),
        M_WAITING if status & GIL_REQUESTED else _NO_STATE,
        (M_HAS_EXC if status & HAS_EXCEPTION else M_NO_EXC) if track_exceptions else _NO_STATE,
        M_GC if status & GC_BIT else _NO_STATE,
    )


def _cpu_text(value: int) -> str:
    return "null" if value < 0 else str(value)


class _Writer:
    """Writes JSON to a binary file, the big numeric columns in chunks."""

    def __init__(self, fh: BinaryIO) -> None:
        self.fh = fh

    def raw(self, data: bytes) -> None:
        self.fh.write(data)

    def value(self, obj: Any) -> None:
        self.fh.write(json.dumps(obj, separators=(",", ":")).encode("ascii"))

    def fields(self, obj: dict[str, Any]) -> None:
        """The members of `obj` without its braces."""
        self.fh.write(json.dumps(obj, separators=(",", ":")).encode("ascii")[1:-1])

    def column(self, values: Iterable[Any], text: Callable[[Any], str]) -> None:
        fh = self.fh
        fh.write(b"[")
        first = True
        batch: list[str] = []
        for value in values:
            batch.append(text(value))
            if len(batch) >= _CHUNK:
                fh.write(("" if first else ",").encode() + ",".join(batch).encode("ascii"))
                first = False
                batch = []
        if batch:
            fh.write(("" if first else ",").encode() + ",".join(batch).encode("ascii"))
        fh.write(b"]")

    def ints(self, values: Sequence[int], null: int | None = None) -> None:
        fh = self.fh
        fh.write(b"[")
        for start in range(0, len(values), _CHUNK):
            chunk = values[start:start + _CHUNK]
            if null is None:
                text = ",".join(map(str, chunk))
            else:
                text = ",".join("null" if v == null else str(v) for v in chunk)
            if start:
                fh.write(b",")
            fh.write(text.encode("ascii"))
        fh.write(b"]")

    def millis(self, micros: Sequence[int], shift: int = 0) -> None:
        """Integer µs as ms: 1234 -> 1.234 (a float's shortest form is exactly the decimal)."""
        fh = self.fh
        fh.write(b"[")
        for start in range(0, len(micros), _CHUNK):
            chunk = micros[start:start + _CHUNK]
            if start:
                fh.write(b",")
            fh.write(",".join([repr((us - shift) / 1000) for us in chunk]).encode("ascii"))
        fh.write(b"]")
