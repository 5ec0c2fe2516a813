"""sampler/cpython/async_tasks.py against real asyncio targets: on 3.11-3.15 the tasks it lists,
their coroutine chains, awaiters and each thread's running task must be what the target itself
says (3.14/3.15 from the task lists, 3.11-3.13 from asyncio's tables); on earlier versions it must
refuse in one line naming the version."""

from __future__ import annotations

import json
import subprocess

import pytest

from conftest import target, wait_ready
from sampler.cpython.async_tasks import AWAIT_RESUME_OPCODES, AsyncTaskReader
from sampler.cpython.unwinder import Unwinder
from sampler.errors import AsyncUnavailableError


def _tree(interpreter, spawn, *args: str):
    p = spawn(*interpreter.python(interpreter.script_path(target("async_tree.py")), *args))
    wait_ready(p)
    truth = json.loads(p.stdout.readline())
    return p, truth, Unwinder(p.pid)


@pytest.fixture
def tree(interpreter, spawn):
    """The async_tree target, ready, with what it says of itself, and an Unwinder on it."""
    p, truth, unwinder = _tree(interpreter, spawn)
    yield p, truth, unwinder
    unwinder.close()


def test_tasks_are_what_the_target_says(tree):
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
    if (major, minor) not in AWAIT_RESUME_OPCODES:
        pytest.skip(f"{interpreter.label}: {major}.{minor} tells an await by its frame state")
    assert AWAIT_RESUME_OPCODES[major, minor] == {n for n in numbers if n >= 0}


def test_a_thousand_tasks(interpreter, spawn):
    """Every one of many tasks is listed with its whole chain (sets and weak sets far past their
    first table size)."""
    p, truth, unwinder = _tree(interpreter, spawn, "--extra", "1000")
    try:
        if unwinder.runtime.minor < (3, 11):
            pytest.skip(f"{interpreter.label}: no asyncio reading before 3.11")
        tasks = AsyncTaskReader(p.pid, unwinder.memory, unwinder.runtime).tasks()
        assert sorted(t.address for t in tasks) == sorted(s["task"] for s in truth["tasks"].values())
        extra = [t for t in tasks if t.name.startswith("extra-")]
        assert len(extra) == 1000
        assert {len(t.stack) for t in extra} == {5}
    finally:
        unwinder.close()
