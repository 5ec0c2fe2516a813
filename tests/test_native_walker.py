"""The native walker against the pure-Python reference, on frozen targets, under every CPython here.

A target running a known shape is frozen (SIGSTOP, then /proc until every thread is stopped), both
walkers sample it with the same settings, and the two lists of `ThreadSample`s must be identical:
thread ids and order, status bits, interpreter ids, and every frame's file, function, line and
columns. A frozen process cannot change between the two reads, so any difference is the walker's.
The target then runs on until it has used more CPU, and is frozen again at another moment: several
freezes per target, each in every mode that can tell something apart. The native walker samples
each freeze twice (the second from its interned stacks), and in wall mode its timed loop (`run`)
must give the same samples at every tick.

Where a frozen stack is caught between two states (a frame half pushed), the reference raises
`ReadError` however often it retries; the native walker must then fail the same way.

The native extension must be built here: if it is not, every test fails with the reason.
"""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import pytest

import sampler.cpython.unwinder as reference_module
from conftest import Interpreter, start_ready, target, wait_ready
from sampler.cpython.unwinder import MAX_DEPTH, TRUNCATED_FRAME, Unwinder
from sampler.errors import HeatlineError, ProcessGoneError, ReadError
from sampler.model import (
    GC_FRAME,
    GIL_REQUESTED,
    HAS_EXCEPTION,
    HAS_GIL,
    MAIN_THREAD,
    ON_CPU,
    UNKNOWN,
    Frame,
    ThreadSample,
)

DEADLINE_S = 30.0  # generous: a machine loaded with CPU hogs still stops and runs a target in far less
MIN_FREEZES = 3
MAX_FREEZES = 12  # freezes until the shape under test was caught at least once
PROGRESS_TICKS = 1  # CPU clock ticks (10 ms each) the target uses between two freezes
# Exception mode checks that the exception is still in flight right after the stack copy, within
# a time window: a walker preempted mid-copy drops the thread. That is timing, not a verdict on the
# frozen stack: take the sample again, up to this many times, before calling a failure a failure.
EXCEPTION_MODE_TRIES = 5

STATUS_NAMES = [(HAS_GIL, "gil"), (ON_CPU, "cpu"), (UNKNOWN, "unknown"), (GIL_REQUESTED, "gil_requested"),
                (HAS_EXCEPTION, "exception"), (MAIN_THREAD, "main")]


class Config(NamedTuple):
    all_threads: bool
    mode: str
    gc: bool = True

    def __str__(self) -> str:
        return f"mode={self.mode} all_threads={self.all_threads} gc={self.gc}"


# cpu mode keeps only threads on a CPU, and a frozen thread never is: both must return [] there.
# Whether the GC frame is added matters only where a collection runs.
CONFIGS = [Config(False, "wall"), Config(True, "wall"), Config(False, "exception"), Config(True, "exception"),
           Config(False, "gil"), Config(True, "gil"), Config(True, "cpu")]
GC_CONFIGS = CONFIGS + [Config(False, "wall", gc=False), Config(True, "wall", gc=False)]
# 2048-frame walks cost the reference tens of ms on 3.9/3.10; the other modes only filter the same
# walk by status, which the other shapes check.
DEEP_CONFIGS = [Config(False, "wall"), Config(True, "wall"), Config(True, "gil")]


# -- the native walker must be there ---------------------------------------------------------------


def _native_module():
    """(the native module, "") or (None, why it cannot be used)."""
    try:
        from sampler.cpython import native as module
    except ImportError as exc:
        return None, f"sampler.cpython.native cannot be imported: {exc}"
    ok, reason = module.native_status()
    if not ok:
        return None, f"the native walker is not built: {reason}"
    return module, ""


@pytest.fixture(scope="module")
def native():
    """The native module; a failure with the reason when it cannot be used (never a skip)."""
    module, why = _native_module()
    if module is None:
        pytest.fail(why)
    return module


@pytest.fixture
def frozen_window(monkeypatch):
    """The reference's exception-mode time window, widened: it guards a copy of a running stack
    against the exception ending meanwhile, and a frozen stack cannot change, so a slow Python
    walk must not drop a thread the native walker keeps."""
    monkeypatch.setattr(reference_module, "GUARD_WINDOW_S", DEADLINE_S)


@pytest.fixture
def attach_once(monkeypatch):
    """Locating a target's runtime (ELF symbols, debug offsets) costs up to a tenth of a second on
    a loaded machine, and each native walker does it through the reference's own code at attach,
    once per setting compared: done once per target instead. The C walk under test is untouched,
    and the attach code is the same on both sides."""
    found: dict[int, object] = {}
    locate = reference_module.locate_runtime

    def once(pid: int, memory):
        if pid not in found:
            found[pid] = locate(pid, memory)
        return found[pid]

    monkeypatch.setattr(reference_module, "locate_runtime", once)


def test_native_walker_is_built():
    module, why = _native_module()
    assert module is not None, why
    assert module.native_status() == (True, "")


# -- freezing a target -----------------------------------------------------------------------------


def _task_states(pid: int) -> list[str] | None:
    """The state letter of each of the process's threads, or None once it is gone."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return None
    states = []
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat", "rb") as fh:
                data = fh.read()
        except (FileNotFoundError, ProcessLookupError):
            continue  # a thread that just ended
        states.append(data[data.rfind(b")") + 2 : data.rfind(b")") + 3].decode())
    return states


def _leader_state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0].decode()
    except FileNotFoundError:
        return "X"


def _cpu_ticks(pid: int) -> int:
    """utime + stime of the whole process, in clock ticks."""
    with open(f"/proc/{pid}/stat", "rb") as fh:
        fields = fh.read().rsplit(b")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def _poll(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.001)


def _ended(proc: subprocess.Popen) -> str:
    """Why a target that should run is gone, in its own words where it left any."""
    proc.wait(timeout=DEADLINE_S)
    return f"the target {proc.args[-1]} ended (status {proc.returncode}): {proc.stderr.read()[-2000:]}"


def _all_stopped(proc: subprocess.Popen) -> bool:
    states = _task_states(proc.pid)
    # a target that died is a zombie until reaped: it would never read as stopped
    assert states is not None and _leader_state(proc.pid) not in "ZX", _ended(proc)
    return bool(states) and all(s in "tT" for s in states)


def _freeze(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGSTOP)
    _poll(lambda: _all_stopped(proc), f"every thread of {proc.pid} is stopped")


def _run_on(proc: subprocess.Popen, ticks: int = PROGRESS_TICKS) -> None:
    """Let a stopped (or running) target run until it has used `ticks` more CPU ticks."""
    start = _cpu_ticks(proc.pid)
    os.kill(proc.pid, signal.SIGCONT)
    _poll(lambda: _cpu_ticks(proc.pid) >= start + ticks or proc.poll() is not None,
          f"process {proc.pid} ran {ticks} more ticks")
    assert proc.poll() is None, _ended(proc)


# -- comparing -------------------------------------------------------------------------------------


class Outcome(NamedTuple):
    samples: list[ThreadSample] | None  # None when the sample raised
    error: str = ""  # "ReadError" or "ProcessGoneError" (the class family, not the subclass)
    detail: str = ""


def _take(walker, mode: str) -> Outcome:
    tries = EXCEPTION_MODE_TRIES if mode == "exception" else 1
    outcome = Outcome(None, "none")
    for _ in range(tries):
        try:
            return Outcome(walker.sample())
        except ProcessGoneError as exc:
            return Outcome(None, "ProcessGoneError", str(exc))
        except ReadError as exc:
            outcome = Outcome(None, "ReadError", f"{type(exc).__name__}: {exc}")
    return outcome


def _status(bits: int) -> str:
    names = [name for bit, name in STATUS_NAMES if bits & bit]
    return "|".join(names) or "0"


def _frame(f: Frame) -> str:
    return f"{f.funcname} {f.filename}:{f.lineno}-{f.end_lineno}:{f.col}-{f.end_col}"


def _show_stack(frames: tuple[Frame, ...], around: int | None = None, width: int = 4) -> str:
    if around is None or len(frames) <= 2 * width + 1:
        picked = range(len(frames))
    else:
        picked = range(max(0, around - width), min(len(frames), around + width + 1))
    lines = [f"        [{i}] {_frame(frames[i])}" for i in picked]
    return f"      {len(frames)} frames (leaf first)\n" + "\n".join(lines)


def _diff_samples(ref: list[ThreadSample], nat: list[ThreadSample]) -> list[str]:
    """What differs, thread by thread, with the frames where the stacks part."""
    out = []
    ref_ids = [s.thread_id for s in ref]
    nat_ids = [s.thread_id for s in nat]
    if ref_ids != nat_ids:
        if sorted(ref_ids) == sorted(nat_ids):
            out.append(f"    same threads in another order: reference {ref_ids}, native {nat_ids}")
        else:
            out.append(f"    threads: reference {ref_ids}, native {nat_ids}")
    by_id = {s.thread_id: s for s in nat}
    for r in ref:
        n = by_id.get(r.thread_id)
        if n is None or tuple(n) == tuple(r):
            continue
        head = f"    thread {r.thread_id}:"
        if n.status != r.status:
            head += f" status reference {_status(r.status)} native {_status(n.status)};"
        if n.interpreter_id != r.interpreter_id:
            head += f" interpreter reference {r.interpreter_id} native {n.interpreter_id};"
        out.append(head)
        if tuple(n.frames) != tuple(r.frames):
            at = next((i for i, (a, b) in enumerate(zip(r.frames, n.frames)) if tuple(a) != tuple(b)),
                      min(len(r.frames), len(n.frames)))
            out.append(f"      stacks part at frame {at}")
            out.append("      reference:\n" + _show_stack(r.frames, at))
            out.append("      native:\n" + _show_stack(tuple(n.frames), at))
    return out


def _wrong_types(samples: list) -> str:
    """Equal values are not enough: consumers use the attributes (and sinks hash the frames)."""
    for s in samples:
        if not isinstance(s, ThreadSample):
            return f"a sample is a {type(s).__name__}, not a ThreadSample"
        if not isinstance(s.frames, tuple):
            return f"thread {s.thread_id}'s frames are a {type(s.frames).__name__}, not a tuple: {s.frames!r}"
        for f in s.frames:
            if not isinstance(f, Frame):
                return f"thread {s.thread_id} has a frame that is a {type(f).__name__}, not a Frame: {f!r}"
    return ""


def compare(ref: Outcome, nat: Outcome) -> list[str]:
    """Empty when the two outcomes are the same; else lines saying how they differ."""
    if ref.samples is None or nat.samples is None:
        if ref.error == nat.error:
            return []
        return [f"    reference: {_describe(ref)}", f"    native: {_describe(nat)}"]
    wrong = _wrong_types(nat.samples)
    if wrong:
        return [f"    native: {wrong}"]
    if [tuple(s) for s in ref.samples] == [tuple(s) for s in nat.samples]:
        return []
    return _diff_samples(ref.samples, nat.samples) or ["    samples differ (no difference found per thread?)"]


def _describe(o: Outcome) -> str:
    if o.samples is None:
        return f"raised {o.error} ({o.detail})"
    return f"{len(o.samples)} thread samples"


# -- shapes ----------------------------------------------------------------------------------------


def _max_depth(samples: list[ThreadSample]) -> int:
    return max((len(s.frames) for s in samples), default=0)


def _has_func(samples: list[ThreadSample], *names: str) -> bool:
    return any(f.funcname.rsplit(".", 1)[-1] in names for s in samples for f in s.frames)


@dataclass(frozen=True)
class Shape:
    name: str
    script: str
    args: tuple[str, ...]
    what: str  # what the reference must have shown at least once, for the run to count
    seen: Callable[[list[ThreadSample]], bool]  # on the reference's wall, all-threads sample
    configs: list[Config] = field(default_factory=lambda: CONFIGS)
    stops_itself: bool = False  # the target SIGSTOPs itself where it is worth reading
    announce: bool = False  # the script prints no "ready" of its own
    min_freezes: int = MIN_FREEZES


SHAPES = [
    Shape("recursion", "recursion.py", ("160",), "a stack of 150 frames or more",
          lambda s: _max_depth(s) >= 150),
    # deep_recursion.py N stands at N + 2 frames (recurse N..0 and <module>): exactly MAX_DEPTH, kept
    # whole, and one more, cut to MAX_DEPTH and the marker
    Shape("at_max_depth", "deep_recursion.py", (str(MAX_DEPTH - 2),), f"a whole stack of {MAX_DEPTH} frames",
          lambda s: any(len(x.frames) == MAX_DEPTH and x.frames[-1].funcname == "<module>" for x in s),
          configs=DEEP_CONFIGS),
    Shape("beyond_max_depth", "deep_recursion.py", (str(MAX_DEPTH - 1),),
          f"a stack cut at {MAX_DEPTH} frames with the <truncated> marker",
          lambda s: any(len(x.frames) == MAX_DEPTH + 1 and x.frames[-1] == TRUNCATED_FRAME for x in s),
          configs=DEEP_CONFIGS),
    Shape("threads", "diff_threads.py", (), "the main thread and at least 20 others",
          lambda s: len(s) >= 21 and _has_func(s, "waiting_key") and _has_func(s, "blocking_coroutine")),
    Shape("generators_coroutines", "gen_coro.py", (), "a generator's or a coroutine's frame",
          lambda s: _has_func(s, "produce", "coro_work")),
    Shape("init_shim", "diff_init.py", (), "Inner.__init__ called through cls() in Outer.__init__",
          lambda s: any([f.funcname.rsplit(".", 1)[-1] for f in x.frames[:3]] == ["spin", "__init__", "__init__"]
                        for x in s)),
    Shape("callback_from_c", "callback_from_c.py", (), "the sort key called back from sorted()",
          lambda s: _has_func(s, "keyf")),
    Shape("exception_handled", "diff_exceptions.py", (), "a thread with an exception being handled",
          lambda s: any(x.status & HAS_EXCEPTION for x in s)),
    Shape("subinterpreters", "diff_subinterpreters.py", (), "threads of two subinterpreters",
          lambda s: len({x.interpreter_id for x in s if _has_func([x], "sub_loop", "sub_sleep")}) == 2),
    Shape("fresh_code", "diff_fresh_code.py", (), "a function compiled moments ago",
          lambda s: any(x.frames and x.frames[0].funcname.startswith("fresh_") for x in s)),
    Shape("gc_running", "diff_gc.py", (), "a stop inside a collection (gc callback or finalizer)",
          lambda s: _has_func(s, "on_gc", "__del__"), configs=GC_CONFIGS, stops_itself=True,
          min_freezes=6),  # each of its three stops twice
]


@dataclass
class Run:
    """What one target's freezes found."""

    freezes: int = 0
    shown: bool = False
    gc_frames: int = 0
    errors_both: int = 0
    mismatches: dict[str, list[str]] = field(default_factory=dict)  # difference -> where it showed

    def report(self, shape: Shape, interpreter: Interpreter) -> str:
        parts = [f"  {shape.name} on {interpreter.label} ({', '.join(where)}):\n{diff}"
                 for diff, where in self.mismatches.items()]
        return f"{len(parts)} differences between the reference and the native walker:\n" + "\n".join(parts[:6])


def _compare_frozen(pairs, shape: Shape, interpreter: Interpreter, run: Run) -> None:
    for config, (ref_walker, nat_walker) in pairs.items():
        ref = _take(ref_walker, config.mode)
        nat = _take(nat_walker, config.mode)
        if ref.samples is None and nat.samples is None and ref.error == nat.error:
            run.errors_both += 1
        if config == Config(True, "wall") and ref.samples is not None:
            run.shown = run.shown or shape.seen(ref.samples)
            run.gc_frames += sum(1 for s in ref.samples if s.frames[:1] == (GC_FRAME,))
        diff = compare(ref, nat)
        if not diff:
            # again: a stack seen before comes from the native walker's interned copies
            diff = [f"{line} (sampled again)" for line in compare(ref, _take(nat_walker, config.mode))]
        if not diff and config.mode == "wall" and ref.samples is not None:
            diff = _batch_differs(ref.samples, nat_walker)
        if diff:
            # the same difference usually shows in several modes: said once, with where it showed
            run.mismatches.setdefault("\n".join(diff), []).append(f"freeze {run.freezes + 1} {config}")


BATCH_TICKS = 3


def _batch_differs(expected: list[ThreadSample], walker) -> list[str]:
    """The timed loop's path (`run`), which the product samples through: on a frozen target every
    tick must hold the same samples as `sample()`, stamped in order within the call."""
    before = time.monotonic_ns() // 1000
    start = time.monotonic_ns()
    try:
        batch = walker.run(start, 1_000_000, start + int(DEADLINE_S * 1e9), BATCH_TICKS)
    except HeatlineError as exc:
        return [f"    run() raised {type(exc).__name__}: {exc}"]
    after = time.monotonic_ns() // 1000
    problems = []
    if batch.errors or batch.gone or len(batch.ticks) != BATCH_TICKS or batch.attempts != BATCH_TICKS:
        problems.append(f"    run(): {len(batch.ticks)} ticks, {batch.attempts} attempts, {batch.errors} errors, "
                        f"gone={batch.gone} (asked for {BATCH_TICKS} good ticks of a frozen target)")
    stamps = [stamp for stamp, _ in batch.ticks]
    if stamps != sorted(stamps) or any(not before <= t <= after for t in stamps):
        problems.append(f"    run(): tick stamps {stamps} out of order or outside the call [{before}, {after}] (µs)")
    for i, (_, samples) in enumerate(batch.ticks):
        diff = compare(Outcome(expected), Outcome(list(samples)))
        if diff:
            problems.append(f"    run() tick {i}:")
            problems.extend(diff)
            break
    return problems


def _configured(reference: Unwinder, config: Config) -> Unwinder:
    """The reference walker with other settings, without attaching again: it reads them on each
    sample, and copies share its attachment (memory, runtime, code cache) as one walker would."""
    walker = copy.copy(reference)
    walker.all_threads, walker.mode, walker.gc = config
    return walker


@pytest.mark.parametrize("shape", SHAPES, ids=[s.name for s in SHAPES])
def test_frozen_stacks_match(native, frozen_window, attach_once, interpreter, spawn, shape: Shape):
    """Both walkers return the same samples of a frozen target, freeze after freeze."""
    if shape.announce:
        proc = start_ready(spawn, interpreter, target(shape.script), *shape.args)
    else:
        proc = spawn(interpreter, target(shape.script), *shape.args)
        wait_ready(proc)
    pid = proc.pid
    run = Run()

    def next_freeze() -> None:
        if shape.stops_itself:
            if run.freezes:
                os.kill(pid, signal.SIGCONT)
            # the line comes right before the stop, so the poll cannot see the previous one
            line = proc.stdout.readline()
            assert line.startswith("stopping in "), (line, proc.stderr.read() if proc.poll() is not None else "")
            _poll(lambda: _all_stopped(proc), f"process {pid} stopped itself")
        else:
            _run_on(proc)
            _freeze(proc)

    next_freeze()
    reference = Unwinder(pid)
    pairs = {c: (_configured(reference, c), native.NativeUnwinder(pid, all_threads=c.all_threads, mode=c.mode, gc=c.gc))
             for c in shape.configs}
    try:
        while run.freezes < shape.min_freezes or (not run.shown and run.freezes < MAX_FREEZES):
            if run.freezes:
                next_freeze()
            _compare_frozen(pairs, shape, interpreter, run)
            run.freezes += 1
    finally:
        for walkers in pairs.values():
            for w in walkers:
                w.close()
    print(f"{shape.name} on {interpreter.label}: {run.freezes} freezes, {run.errors_both} reads refused by both, "
          f"{run.gc_frames} samples with the GC frame")
    assert not run.mismatches, run.report(shape, interpreter)
    assert run.shown, (f"{shape.name} on {interpreter.label}: in {run.freezes} freezes the reference never "
                       f"showed {shape.what}")


# -- targets that go away, and processes that are no targets ---------------------------------------


def test_both_walkers_see_the_target_exit(native, interpreter, spawn):
    """A target that exits: both walkers raise ProcessGoneError, while it is a zombie and once reaped."""
    proc = start_ready(spawn, interpreter, target("exits_mid_run.py"), "0.3")
    pid = proc.pid
    # held while both walkers attach, so that it cannot exit first on a slow machine
    _freeze(proc)
    walkers = [Unwinder(pid, all_threads=True), native.NativeUnwinder(pid, all_threads=True)]
    try:
        os.kill(pid, signal.SIGCONT)
        _poll(lambda: (_task_states(pid) or ["Z"])[0] in "ZX", f"process {pid} exited")
        for stage in ("a zombie", "reaped"):
            outcomes = [_take(w, "wall") for w in walkers]
            assert [o.error for o in outcomes] == ["ProcessGoneError"] * 2, (stage, outcomes)
            assert [w.alive() for w in walkers] == [False, False], stage
            proc.wait(timeout=DEADLINE_S)
    finally:
        for w in walkers:
            w.close()
    assert proc.returncode == 3


def _refusal(make: Callable[[], object]) -> tuple[str, str]:
    try:
        walker = make()
    except HeatlineError as exc:
        return type(exc).__name__, str(exc)
    walker.close()
    return "", "attached"


def test_both_walkers_refuse_the_same_processes(native, spawn):
    """No such process, and a process that is no Python: the same error, word for word."""
    probe = spawn("true")
    probe.wait()
    not_python = spawn("sleep", "60")
    _poll(lambda: os.path.realpath(f"/proc/{not_python.pid}/exe").endswith("sleep"), "sleep runs")
    for pid in (probe.pid, not_python.pid):
        ref = _refusal(lambda: Unwinder(pid))
        nat = _refusal(lambda: native.NativeUnwinder(pid))
        assert ref[0], f"the reference attached to {pid}"
        assert nat == ref, pid
