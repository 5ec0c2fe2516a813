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

On 3.14+ the native core reuses a running task's awaiter frames while the remote bytes they
were made from read the same (walker.c, cached_suffix): a target whose parent task awaits one
child task after another, each named alike and likely at the address of the last, from two
different lines, is frozen again and again with that reuse allowed for an hour, and the native
samples must still show the line the parent awaits at now, as the reference does.

Every CPython 3.11+ here, the sid root's 3.14 and 3.15 included.
"""

from __future__ import annotations

import subprocess
import time
from typing import Callable

import pytest

from conftest import ALL_INTERPRETERS, target, wait_ready
from sampler.cpython import async_tasks
from sampler.cpython.unwinder import Unwinder
from sampler.model import ThreadSample
from test_async_aware import _minor
from test_native_walker import DEADLINE_S, Outcome, _freeze, _run_on, _take, attach_once, compare, native  # noqa: F401

FREEZES = 3
MAX_FREEZES = 40  # until the parent was caught at both its await lines (and at least FREEZES)
REUSE_FREEZES = 16

# One parent, awaiting a child task from line AWAIT_A or AWAIT_B, forever; each child spins
# without awaiting, so it is the running task and the parent's line is in its awaiters.
ALTERNATING = """\
import asyncio
import random


def crunch(n):
    x = 0
    for i in range(n):
        x = (x + i) & 0xFFFF
    return x


async def child():
    crunch(20_000)


async def parent():
    while True:
        # at random: a child's address (freed ones are reused) says nothing of the line
        if random.random() < 0.5:
            await asyncio.create_task(child(), name="child")  # AWAIT_A
        else:
            await asyncio.create_task(child(), name="child")  # AWAIT_B


async def main():
    task = asyncio.create_task(parent(), name="parent")
    await asyncio.sleep(0)
    print("ready", flush=True)
    await task


asyncio.run(main())
"""
SAMPLES_PER_FREEZE = 4  # > 2: the shared worker's two watchers each get a turn
RUN_TICKS = 5


# asyncio imported only after "ready": an attach before it, as `heatline run` makes (3.14+ then
# finds the task offsets, in `_asyncio`'s image, only later).
LATE_IMPORT = """\
import sys
import time

print("ready", flush=True)
sys.stdin.readline()
import asyncio


async def main():
    while True:
        time.sleep(0.001)
        await asyncio.sleep(0)


asyncio.run(main())
"""


@pytest.fixture(autouse=True)
def fresh_relations(monkeypatch):
    """Before 3.14 each reader reuses its derivation of who awaits whom for a while from when it
    made it: the two walkers' readers, made at different moments, could disagree about a task
    created since. Both derive afresh at every reading here (on a frozen target: the same)."""
    monkeypatch.setattr(async_tasks, "RELATIONS_TTL_S", 0.0)
    monkeypatch.setattr(async_tasks, "RELATIONS_COST_FACTOR", 0)


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


def _compare_freezes(native_module, interpreter, proc, mode: str, want: set[str],
                     enough: Callable[[list[ThreadSample]], bool] | None = None, freezes: int = FREEZES) -> set[str]:
    """Freeze `proc` `freezes` times, and more (up to MAX_FREEZES) until `enough`, fed each of the
    reference's samples, says yes; at each freeze both walkers' samples must match. Returns the
    task names the reference showed."""
    ref, nat = _pair(native_module, proc.pid, mode)
    seen: set[str] = set()
    satisfied = enough is None
    try:
        deadline = time.monotonic() + DEADLINE_S
        _ready_reader(ref, deadline)
        _ready_reader(nat, deadline)
        freeze = 0
        while freeze < freezes or not satisfied:
            assert freeze < MAX_FREEZES, f"{mode} mode: the target was never caught where the test needs it"
            _freeze(proc)
            try:
                for k in range(SAMPLES_PER_FREEZE):
                    r, n = _take(ref, "wall"), _take(nat, "wall")
                    diff = compare(r, n)
                    assert not diff, f"{mode} mode, freeze {freeze}, sample {k}:\n" + "\n".join(diff)
                    if r.samples is not None:
                        seen |= _tasks_in(r.samples)
                        satisfied = satisfied or enough(r.samples)
                if mode == "running":
                    # the timed loop, on the same freeze: every tick the reference's next sample
                    stop = time.monotonic_ns() + int(DEADLINE_S * 1e9)
                    batch = nat.run(time.monotonic_ns(), 1_000_000, stop, RUN_TICKS)
                    assert batch.errors == 0 or not batch.ticks, batch
                    for _ts, samples in batch.ticks:
                        diff = compare(_take(ref, "wall"), Outcome(samples))
                        assert not diff, f"run(), freeze {freeze}:\n" + "\n".join(diff)
            finally:
                _run_on(proc)
            freeze += 1
        if mode == "running" and _minor(interpreter) >= (3, 14):
            # not merely asked each time: the C side reused what it had
            assert nat.stats()["suffix_hits"] > 0, "the native core never reused a task's awaiter frames"
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
    _compare_freezes(native, readable, proc, "running", {"Task-1"})
    seen = _compare_freezes(native, readable, proc, "all", {"shared-worker", "watcher-1", "watcher-2", "gathered-1"})
    # the shared worker has two awaiters: its marker says so
    assert any(name.startswith("shared-worker (2 parents)") for name in seen), sorted(seen)


def test_async_split_running(native, attach_once, readable, spawn):
    proc = _start(spawn, readable, "async_split.py")
    _compare_freezes(native, readable, proc, "running", {"Task-1", "supervisor"})


def test_reused_awaiters_follow_the_parent(native, attach_once, readable, spawn, tmp_path, monkeypatch):
    """A child task (each one new, named alike) runs while its parent awaits it from one line or
    the other: with the reuse window an hour long, only the bytes the awaiter frames
    were made from can tell the native core that the parent moved on."""
    monkeypatch.setattr(native, "SUFFIX_REUSE_NS", 3600 * 10**9)
    script = tmp_path / "alternating.py"
    script.write_text(ALTERNATING)
    lines = {n: i + 1 for i, text in enumerate(ALTERNATING.splitlines()) for n in ("AWAIT_A", "AWAIT_B") if n in text}
    caught: set[int] = set()

    def both_lines(samples: list[ThreadSample]) -> bool:
        caught.update(f.lineno for s in samples for f in s.frames
                      if f.funcname.endswith("parent") and f.filename != "<task>")
        return set(lines.values()) <= caught

    proc = spawn(readable, str(script))
    wait_ready(proc)
    # each freeze after the first may meet a child at an address the cache knows, the parent
    # at the other line: 1 in 4 or so
    _compare_freezes(native, readable, proc, "running", {"child", "parent"}, both_lines, REUSE_FREEZES)



def test_asyncio_imported_after_attach(native, attach_once, readable, spawn, tmp_path):
    """Attached before the target imports asyncio, the native core shows no thread until a task
    runs, then the reference's samples (on 3.14+ it reads the running task from the thread
    state from then on, with offsets it was handed late)."""
    script = tmp_path / "late.py"
    script.write_text(LATE_IMPORT)
    proc = spawn(readable, str(script), stdin=subprocess.PIPE)
    wait_ready(proc)
    ref, nat = _pair(native, proc.pid, "running")
    try:
        assert nat.sample() == [] and ref.sample() == []  # no task can run yet
        proc.stdin.write("go\n")
        proc.stdin.flush()
        deadline = time.monotonic() + DEADLINE_S
        while not _tasks_in(_take(nat, "wall").samples or []):
            assert time.monotonic() < deadline, "the native core never showed the task"
        _freeze(proc)
        try:
            for k in range(SAMPLES_PER_FREEZE):
                diff = compare(_take(ref, "wall"), _take(nat, "wall"))
                assert not diff, f"sample {k}:\n" + "\n".join(diff)
        finally:
            _run_on(proc)
    finally:
        ref.close()
        nat.close()
