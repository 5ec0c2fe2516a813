"""`--async-aware` through the native core against the pure-Python reference, on frozen targets.

`async_tree.py` holds a known task tree still (tasks parked in awaits, one awaited by two others,
one five coroutines deep) while its main task spins on the CPU, and a second thread's loop runs a
task blocked in a plain call. The target is frozen (SIGSTOP, every thread stopped), and
`NativeUnwinder(async_mode=...)` and `Unwinder(async_mode=...)` sample it: their samples must be
identical, in `running` mode (the C walk, cut at the running task's coroutine frame, then the
awaiter frames) and in `all` mode (every leaf task). Each side samples several times per freeze:
a task shown under several awaiters takes them in turn, and both must turn alike. The native
side also takes the same freeze through its timed loop (`run`), tick for tick. Then the target
runs on and is frozen again at another moment of its spin.

`async_split.py` (two worker tasks under a supervisor, always switching) is frozen too, in
running mode: there the running task has awaiters with coroutine chains of their own, and a
freeze may catch the loop between two tasks (the thread left out, or the marker alone).

Every CPython 3.11+ here, the sid root's 3.14 and 3.15 included.
"""

from __future__ import annotations

import time

import pytest

from conftest import ALL_INTERPRETERS, target, wait_ready
from sampler.cpython.unwinder import Unwinder
from test_async_aware import _minor
from test_native_walker import DEADLINE_S, Outcome, _freeze, _run_on, _take, attach_once, compare, native  # noqa: F401

FREEZES = 3
SAMPLES_PER_FREEZE = 4  # > 2: the shared worker's two watchers each get a turn
RUN_TICKS = 5


@pytest.fixture(params=[p for p in ALL_INTERPRETERS if _minor(p.values[0]) >= (3, 11)])
def readable(request):
    """Every interpreter whose asyncio tasks heatline reads (3.11 on)."""
    return request.param


def _tasks_in(samples) -> set[str]:
    return {f.funcname for s in samples for f in s.frames if f.filename == "<task>"}


def _pair(native_module, pid: int, mode: str):
    ref = Unwinder(pid, async_mode=mode)
    nat = native_module.NativeUnwinder(pid, async_mode=mode)
    return ref, nat


def _ready_reader(walker, deadline: float) -> None:
    """A target started moments ago may not have asyncio's data in place for the reader yet:
    sample until the reader is there (never a sleep: each try is a sample)."""
    while walker.tasks._reader_or_none() is None:
        assert time.monotonic() < deadline, "the asyncio reader never became available"
        walker.sample()


def _compare_freezes(native_module, proc, mode: str, want: set[str]) -> set[str]:
    """Freeze `proc` FREEZES times; at each, both walkers' samples must match. Returns the task
    names the reference showed."""
    ref, nat = _pair(native_module, proc.pid, mode)
    seen: set[str] = set()
    try:
        deadline = time.monotonic() + DEADLINE_S
        _ready_reader(ref, deadline)
        _ready_reader(nat, deadline)
        for freeze in range(FREEZES):
            _freeze(proc)
            try:
                for k in range(SAMPLES_PER_FREEZE):
                    r, n = _take(ref, "wall"), _take(nat, "wall")
                    diff = compare(r, n)
                    assert not diff, f"{mode} mode, freeze {freeze}, sample {k}:\n" + "\n".join(diff)
                    if r.samples is not None:
                        seen |= _tasks_in(r.samples)
                if mode == "running":
                    # the timed loop, on the same freeze: every tick the reference's next sample
                    batch = nat.run(time.monotonic_ns(), 1_000_000, time.monotonic_ns() + int(DEADLINE_S * 1e9), RUN_TICKS)
                    assert batch.errors == 0 or not batch.ticks, batch
                    for _ts, samples in batch.ticks:
                        diff = compare(_take(ref, "wall"), Outcome(samples))
                        assert not diff, f"run(), freeze {freeze}:\n" + "\n".join(diff)
            finally:
                _run_on(proc)
    finally:
        ref.close()
        nat.close()
    missing = want - {name.split(" (", 1)[0] for name in seen}
    assert not missing, f"{mode} mode: the reference never showed {sorted(missing)} (saw {sorted(seen)})"
    return seen


def _start(spawn, interpreter, script: str):
    proc = spawn(interpreter, target(script))
    wait_ready(proc)  # the script's own: its tasks are in place
    return proc


def test_async_tree_running_and_all(native, attach_once, readable, spawn):
    proc = _start(spawn, readable, "async_tree.py")
    # running: the main thread runs Task-1 (spinning in main); all: every leaf task
    _compare_freezes(native, proc, "running", {"Task-1"})
    seen = _compare_freezes(native, proc, "all", {"shared-worker", "watcher-1", "watcher-2", "gathered-1"})
    # the shared worker has two awaiters: its marker says so
    assert any(name.startswith("shared-worker (2 parents)") for name in seen), sorted(seen)


def test_async_split_running(native, attach_once, readable, spawn):
    proc = _start(spawn, readable, "async_split.py")
    _compare_freezes(native, proc, "running", {"Task-1", "supervisor"})

