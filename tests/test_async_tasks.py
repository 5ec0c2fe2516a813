"""sampler/cpython/async_tasks.py against real asyncio targets: on 3.11-3.15 the tasks it lists,
their coroutine chains, awaiters and each thread's running task must be what the target itself
says (3.14/3.15 from the task lists, 3.11-3.13 and pure-Python asyncio from asyncio's tables); on
earlier versions it must refuse in one line naming the version."""

from __future__ import annotations

import json
import subprocess

import pytest

from conftest import target, wait_ready
from sampler.cpython import async_tasks
from sampler.cpython.async_tasks import AsyncTaskReader
from sampler.cpython.unwinder import Unwinder
from sampler.cpython.versions import ASYNCIO_TRAITS
from sampler.dump import read_consistently
from sampler.errors import AsyncUnavailableError, ReadError


# Runs async_tree.py with `_asyncio` blocked: every task, loop and table is asyncio's Python one.
PURE = ("import runpy, sys; sys.modules['_asyncio'] = None; sys.argv = [{0!r}]; "
        "runpy.run_path({0!r}, run_name='__main__')")


def _tree(interpreter, spawn, *args: str, pure: bool = False):
    script = interpreter.script_path(target("async_tree.py"))
    p = spawn(*interpreter.python(*(["-c", PURE.format(script)] if pure else [script]), *args))
    wait_ready(p)
    truth = json.loads(p.stdout.readline())
    return p, truth, Unwinder(p.pid)


@pytest.fixture(params=[False, True], ids=["c-asyncio", "pure-python"])
def tree(interpreter, spawn, request):
    """The async_tree target, ready, with what it says of itself, and an Unwinder on it; on
    asyncio's C tasks, then on its pure-Python ones (`_asyncio` blocked)."""
    p, truth, unwinder = _tree(interpreter, spawn, pure=request.param)
    yield p, truth, unwinder
    unwinder.close()


def test_tasks_are_what_the_target_says(tree):
    """Pure-Python asyncio too: its tasks from its tables, each running loop's thread from the
    loop itself (no thread state names it), on every version."""
    p, truth, unwinder = tree
    if unwinder.runtime.minor < (3, 11):
        with pytest.raises(AsyncUnavailableError, match=f"Python {unwinder.runtime.version_string}: .*3.11"):
            AsyncTaskReader(p.pid, unwinder.memory, unwinder.runtime)
        return
    reader = AsyncTaskReader(p.pid, unwinder.memory, unwinder.runtime)
    tasks = {t.name: t for t in reader.tasks()}
    # Task-1 (asyncio.run's) and the unnamed task have default names (3.14+: numbers until asked).
    assert sorted(tasks) == sorted(truth["tasks"])
    assert any(name.startswith("Task-") for name in tasks)
    by_address = {t.address: t.name for t in tasks.values()}
    gi_iframe = unwinder.runtime.layout["gen.gi_iframe"]
    for name, said in truth["tasks"].items():
        task = tasks[name]
        assert (task.address, task.coro) == (said["task"], said["coro"]), name
        assert task.coro_frame == task.coro + gi_iframe
        assert task.thread_id == said["thread"], name  # the thread running (3.14+: that made) it
        # Awaiters: two watchers of one task, gather's children, a TaskGroup's, a pure-Python one's.
        assert sorted(by_address[a] for a in task.awaited_by) == said.get("awaited_by", []), name
    shared = tasks["shared-worker"]
    assert [f.funcname for f in shared.stack] == truth["tasks"]["shared-worker"]["stack"]
    assert all(f.filename.endswith("async_tree.py") and f.lineno > 0 for f in shared.stack)
    assert [f.funcname for f in tasks["watcher-1"].stack] == ["watcher"]
    if "py-task" in tasks:
        assert [f.funcname for f in tasks["py-task"].stack] == ["leaf"]
    # Each thread's running task: the main task on the main thread (on the CPU), the side thread's
    # main task (blocked in a plain call), and no other.
    running = {t: by_address.get(a, a) for t, a in reader.running().items()}
    assert running == {thread: name for name, thread in truth["running"].items()}
    assert reader.task(shared.address, shared.thread_id) == shared


def test_await_resume_opcodes_are_the_interpreters(interpreter):
    """3.11/3.12 tell an await by the RESUME after it: its numbers must be the version's own."""
    code = (
        "import dis, opcode, sys; names = [*opcode._specialized_instructions] "
        "if hasattr(opcode, '_specialized_instructions') and sys.version_info < (3, 12) else []; "
        "free = [op for op in range(256) if opcode.opname[op].startswith('<')]; "
        "m = {**dis.opmap, **dict(zip(names, free))}; "
        "print(*sys.version_info[:2], *(m.get(n, -1) for n in ('RESUME', 'RESUME_QUICK', 'INSTRUMENTED_RESUME')))"
    )
    out = subprocess.run(interpreter.python("-c", code), capture_output=True, text=True, timeout=60, check=True)
    major, minor, *numbers = map(int, out.stdout.split())
    traits = ASYNCIO_TRAITS.get((major, minor))
    if traits is None or traits.awaiting_state is not None:
        pytest.skip(f"{interpreter.label}: {major}.{minor} tells an await by its frame state (or is not read)")
    assert traits.await_resume_opcodes == {n for n in numbers if n >= 0}


def test_a_thousand_tasks(interpreter, spawn):
    """Every one of many tasks is listed with its whole chain (sets and weak sets far past their
    first table size)."""
    p, truth, unwinder = _tree(interpreter, spawn, "--extra", "1000")
    try:
        if unwinder.runtime.minor < (3, 11):
            pytest.skip(f"{interpreter.label}: no asyncio reading before 3.11")
        # Given the sampler's code cache, the reader fills that one (and shares its epochs).
        tasks = AsyncTaskReader(p.pid, unwinder.memory, unwinder.runtime, unwinder.codes).tasks()
        assert "leaf" in {info.name for info in unwinder.codes.entries.values()}
        assert sorted(t.address for t in tasks) == sorted(s["task"] for s in truth["tasks"].values())
        extra = [t for t in tasks if t.name.startswith("extra-")]
        assert len(extra) == 1000
        assert {len(t.stack) for t in extra} == {5}
    finally:
        unwinder.close()


def _many(interpreter, spawn, *args: str):
    p = spawn(*interpreter.python(interpreter.script_path(target("async_many.py")), *args), stdin=subprocess.PIPE)
    wait_ready(p)
    return p, json.loads(p.stdout.readline()), Unwinder(p.pid)


def test_what_is_remembered_follows_tasks_that_move(interpreter, spawn):
    """Coroutines and names are remembered across readings while their bytes stay the same: idle
    tasks resumed between two readings must be read at their new line, the others as before."""
    p, info, unwinder = _many(interpreter, spawn, "200", "--step")
    try:
        if unwinder.runtime.minor < (3, 11):
            pytest.skip(f"{interpreter.label}: no asyncio reading before 3.11")
        reader = AsyncTaskReader(p.pid, unwinder.memory, unwinder.runtime)

        def leaves() -> dict[str, tuple[str, int]]:
            # The busy task runs on: a reading may be torn, and is taken again then.
            tasks = read_consistently(reader.tasks, "task list")
            return {t.name: (t.stack[-1].funcname, t.stack[-1].lineno) for t in tasks if t.name.startswith("idle-")}

        before = leaves()
        p.stdin.write("\n")
        p.stdin.flush()
        assert p.stdout.readline().strip() == "stepped"
        after = leaves()
        assert len(before) == len(after) == info["idle"] == 200
        for i in range(200):
            name = f"idle-{i}"
            if i % 2:  # in asyncio.sleep, untouched
                assert after[name] == before[name], name
            else:  # from `await fut` to `await step`, two lines down
                assert after[name] == ("parked", before[name][1] + 2), (name, before[name], after[name])
    finally:
        unwinder.close()


def test_a_reading_stops_at_the_task_cap(interpreter, spawn, monkeypatch):
    """Past MAX_TASKS a reading stops, says so (`truncated`) and returns that many tasks; past
    MAX_COROUTINES it fails."""
    p, info, unwinder = _many(interpreter, spawn, "300")
    try:
        if unwinder.runtime.minor < (3, 11):
            pytest.skip(f"{interpreter.label}: no asyncio reading before 3.11")
        reader = AsyncTaskReader(p.pid, unwinder.memory, unwinder.runtime)
        everything = read_consistently(reader.tasks, "task list")
        assert not reader.truncated and len(everything) == info["idle"] + 2  # and the main task, busy
        monkeypatch.setattr(async_tasks, "MAX_TASKS", 100)
        capped = read_consistently(reader.tasks, "task list")
        assert reader.truncated
        # Before 3.14 done tasks are dropped after the cap; none is done here.
        assert len(capped) == 100 and {t.address for t in capped} <= {t.address for t in everything}
        busy = read_consistently(lambda: reader.task(info["busy"]), "task")  # one task is still read whole
        assert busy.name == "busy" and busy.stack[0].funcname == "busy"
        # The coroutines of one reading are capped too: past the cap, a failed reading.
        monkeypatch.setattr(async_tasks, "MAX_COROUTINES", 50)
        with pytest.raises(ReadError, match="more than 50 coroutines"):
            reader.tasks()
    finally:
        unwinder.close()


# Pure-Python asyncio with three finished tasks still referenced (so still in asyncio's weak set).
DONE_TASKS = """
import sys
sys.modules['_asyncio'] = None
import asyncio
async def quick():
    pass
async def main():
    done = [asyncio.create_task(quick(), name=f"done-{i}") for i in range(3)]
    await asyncio.gather(*done)
    print("ready", flush=True)
    await asyncio.get_running_loop().create_future()
asyncio.run(main())
"""


def test_pure_python_done_tasks_are_left_out(interpreter, spawn):
    """asyncio's tables keep a finished task while it is referenced: it is no task to show."""
    p = spawn(*interpreter.python("-c", DONE_TASKS))
    wait_ready(p)
    unwinder = Unwinder(p.pid)
    try:
        if unwinder.runtime.minor < (3, 11):
            pytest.skip(f"{interpreter.label}: no asyncio reading before 3.11")
        reader = AsyncTaskReader(p.pid, unwinder.memory, unwinder.runtime)
        assert [t.name for t in read_consistently(reader.tasks, "task list")] == ["Task-1"]
    finally:
        unwinder.close()
